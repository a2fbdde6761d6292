"""`python -m scheduler demo`: the real daemon, standalone, firing at a built-in receiver.

The receiver checks each call the way an application should (bearer token, Standard
Webhooks signature, one effect per Idempotency-Key) and prints what it got, so the whole
path can be seen working with one command and nothing to configure.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import secrets
import shutil
import signal
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from ..config import loader as config
from .daemon import run

JOBS = {
    "SCHEDULER_JOB_HEARTBEAT_SCHEDULE": "every 3s",
    "SCHEDULER_JOB_HEARTBEAT_URL": "/demo/heartbeat",
    "SCHEDULER_JOB_REPORT_SCHEDULE": "*/5 * * * * *",
    "SCHEDULER_JOB_REPORT_URL": "/demo/report",
    "SCHEDULER_JOB_REPORT_METHOD": "GET",
}


def start_receiver(token: str, secret: str, out=sys.stdout) -> ThreadingHTTPServer:
    hook = Webhook(secret)
    seen: set[str] = set()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            auth = self.headers.get("Authorization", "")
            token_ok = hmac.compare_digest(auth.encode(), f"Bearer {token}".encode())
            try:
                hook.verify(body, dict(self.headers.items()), json_parse=False)
                signature_ok = True
            except WebhookVerificationError:
                signature_ok = False
            key = self.headers.get("Idempotency-Key", "")
            with lock:
                repeat = key in seen
                seen.add(key)
            ok = token_ok and signature_ok
            print(
                f"app received {self.command} {self.path}  key={key}  attempt={self.headers.get('X-Scheduler-Attempt')}"
                f"  token={'ok' if token_ok else 'BAD'}  signature={'ok' if signature_ok else 'BAD'}"
                f"{'  (repeat: already done, not run again)' if repeat else ''}",
                file=out, flush=True,
            )
            reply = b'{"ok":true}' if ok else b'{"ok":false}'
            self.send_response(200 if ok else 401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="demo-app", daemon=True).start()
    return server


def main() -> int:
    from ..observe import setup_logging

    token = secrets.token_urlsafe(18)
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    server = start_receiver(token, secret)
    state_dir = Path(tempfile.mkdtemp(prefix="cron-sidecar-demo-"))
    env = {
        **JOBS,
        "SCHEDULER_API_URL": f"http://127.0.0.1:{server.server_address[1]}",
        "SCHEDULER_API_TOKEN": token,
        "SCHEDULER_SIGNING_SECRET": secret,
        "SCHEDULER_STATE_FILE": str(state_dir / "state.db"),
        "SCHEDULER_HTTP_PORT": "0",
        "SCHEDULER_LOG_FORMAT": "text",
        "SCHEDULER_SHUTDOWN_GRACE": "5s",
    }
    settings = config.load(env)
    setup_logging(settings.log_format, settings.log_level, config.secret_values(settings))
    print(
        "cron-sidecar demo: the real daemon in standalone mode (state in a temporary SQLite file),\n"
        f"firing two jobs at a built-in app on {env['SCHEDULER_API_URL']} that checks the bearer token\n"
        "and the Standard Webhooks signature of every call. Press Ctrl-C to stop.\n"
        "  heartbeat  every 3s        POST /demo/heartbeat\n"
        "  report     */5 * * * * *   GET  /demo/report\n",
        flush=True,
    )
    # The daemon handles the first Ctrl-C (stop claiming, drain, release). One pressed again
    # after its handler is gone lands here, or in the clean-up below: both end the demo as
    # the first one would, with exit 0 and no traceback.
    code = 0
    try:
        code = asyncio.run(run(settings, stop_on_hangup=True))  # a closed terminal ends the demo
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # clean-up takes well under a second
        server.shutdown()
        shutil.rmtree(state_dir, ignore_errors=True)
    return code
