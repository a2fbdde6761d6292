"""What every migrated app below shares: take cron-sidecar's calls on one port, checking the
bearer token and the Standard Webhooks signature, and answer a repeated Idempotency-Key
without doing the work again. Each route is `(method, path) -> work(job, payload)`; a
route whose work returns bytes answers them (the jobs document), unsigned but with the token.

    APP_TOKEN=... APP_SIGNING_SECRET=whsec_... APP_PORT=8000 (default)
"""

import hmac
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def log(event: str, **fields) -> None:
    print(json.dumps({"ts": round(time.time(), 3), "event": event, **fields}), flush=True)


def serve(routes: dict, documents: dict | None = None) -> None:
    token = ("Bearer " + (os.environ.get("APP_TOKEN") or sys.exit("set APP_TOKEN"))).encode()
    webhook = Webhook(os.environ.get("APP_SIGNING_SECRET") or sys.exit("set APP_SIGNING_SECRET"))
    done: set[str] = set()  # a real app keeps these keys in its database, with the work
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def answer(self, status: int, body: bytes = b"{}", kind: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def handle_call(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if not hmac.compare_digest(self.headers.get("Authorization", "").encode(), token):
                log("rejected", path=self.path, reason="bad bearer token")
                return self.answer(401)
            if documents and (self.command, self.path) in documents:  # the sidecar reads its jobs
                return self.answer(200, documents[(self.command, self.path)]())
            work = routes.get((self.command, self.path))
            if work is None:
                return self.answer(404)
            try:
                payload = webhook.verify(body, dict(self.headers), json_parse=False)
            except WebhookVerificationError as exc:
                log("rejected", path=self.path, reason=f"bad signature: {exc}")
                return self.answer(401)
            key, job = self.headers["Idempotency-Key"], self.headers["X-Scheduler-Job"]
            with lock:
                if key in done:
                    log("duplicate", job=job, key=key)
                    return self.answer(200)
            work(job, json.loads(body) if body else payload)
            with lock:
                done.add(key)
            log("done", job=job, key=key, verified=True)
            self.answer(200)

        do_GET = do_POST = do_PUT = do_DELETE = handle_call

        def log_message(self, *args) -> None:
            pass

    address = (os.environ.get("APP_HOST", "127.0.0.1"), int(os.environ.get("APP_PORT", "8000")))
    server = ThreadingHTTPServer(address, Handler)
    log("listening", host=address[0], port=server.server_address[1])
    server.serve_forever()
