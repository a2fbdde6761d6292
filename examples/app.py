"""How an application takes cron-sidecar's calls: authenticate, verify, fence, dedupe.

    APP_TOKEN=... APP_SIGNING_SECRET=whsec_... python examples/app.py   (or APP_TOKEN_FILE=...)

Per call: the bearer token (constant-time compare), the Standard Webhooks signature, the
fencing token (lower than the highest seen for the job: a deposed leader, 409), then the
Idempotency-Key (work already done: 200 again, not redone). A real app keeps `done` and
`fences` in its database, written in the same transaction as the work. Logs JSON lines.
"""

import hmac
import json
import logging
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def secret(name: str) -> str:
    if os.environ.get(name + "_FILE"):
        with open(os.environ[name + "_FILE"]) as f:
            return f.read().rstrip("\r\n")
    return os.environ.get(name) or sys.exit(f"set {name} or {name}_FILE")


TOKEN = ("Bearer " + secret("APP_TOKEN")).encode()
WEBHOOK = Webhook(secret("APP_SIGNING_SECRET"))
lock = threading.Lock()
done: dict[str, float] = {}  # idempotency key -> when its work finished
running: set[str] = set()  # keys whose work is under way
fences: dict[str, int] = {}  # job -> highest fencing token seen


def log(event: str, **fields) -> None:  # logging is thread-safe: one whole line per call
    logging.info(json.dumps({"ts": round(time.time(), 3), "event": event, **fields}))


def do_work(job: str, payload) -> None:
    log("working", job=job, payload=payload)  # the job's real work goes here


class Handler(BaseHTTPRequestHandler):
    def handle_call(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        key = self.headers.get("Idempotency-Key", "").strip('"')
        job = self.headers.get("X-Scheduler-Job", "")
        info = {"method": self.command, "path": self.path, "job": job, "key": key,
                "attempt": self.headers.get("X-Scheduler-Attempt")}
        if not hmac.compare_digest(self.headers.get("Authorization", "").encode(), TOKEN):
            return self.reply(401, "rejected", "bad bearer token", **info)
        try:  # the signature covers webhook-id (= the key), webhook-timestamp and the body
            payload = WEBHOOK.verify(body, dict(self.headers), json_parse=bool(body))
        except WebhookVerificationError as exc:
            return self.reply(401, "rejected", f"bad signature: {exc}", **info)
        if not key or not job:
            return self.reply(400, "rejected", "no Idempotency-Key or X-Scheduler-Job", **info)
        signed = payload if isinstance(payload, dict) else {}  # prefer the signed body's copy
        fence = int(signed.get("fencing_token") or self.headers.get("X-Scheduler-Fencing-Token") or 0)
        with lock:  # decide and mark under the lock, work and answer outside it
            seen = fences.get(job, 0)
            if fence < seen:
                verdict = (409, "rejected", f"stale fencing token {fence} < {seen}")
            elif key in done:
                verdict = (200, "duplicate", "already done; not redone")
            elif key in running:  # a retry while the first call still works: come back later
                verdict = (503, "busy", "in progress; retry later")
            else:
                verdict = None
                running.add(key)
            fences[job] = max(seen, fence)
        if verdict:
            return self.reply(*verdict, **info)
        try:
            do_work(job, payload)
            with lock:
                done[key] = time.time()
        except Exception as exc:  # not done: the sidecar retries with the same key
            return self.reply(500, "failed", repr(exc), **info)
        finally:
            with lock:
                running.discard(key)
        self.reply(200, "done", "work done", verified=True, fencing_token=fence, **info)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_call

    def reply(self, status: int, event: str, reason: str, **fields) -> None:
        log(event, status=status, reason=reason, **fields)
        data = json.dumps({"status": event, "reason": reason}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status == 503:
            self.send_header("Retry-After", "1")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:  # one JSON line per call instead
        pass


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    address = (os.environ.get("APP_HOST", "0.0.0.0"), int(os.environ.get("APP_PORT", "8000")))
    server = ThreadingHTTPServer(address, Handler)
    log("listening", host=address[0], port=server.server_address[1])
    server.serve_forever()
