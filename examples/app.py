"""How an application takes cron-sidecar's calls: authenticate, verify, fence, dedupe.

    APP_TOKEN=... APP_SIGNING_SECRET=whsec_... python examples/app.py   (or APP_TOKEN_FILE=...)

Per call: the bearer token (constant-time compare), the Standard Webhooks signature, the
fencing token (lower than the highest seen for the job: a deposed leader, 409), then the
Idempotency-Key (work already done: 200 again, not redone). A real app keeps `done` and
`fences` in its database, written in the same transaction as the work. Logs JSON lines.

It also owns its users' triggers, in a SQLite table (APP_DB, default ./app-triggers.db),
and serves them to the sidecar (SCHEDULER_JOBS_URL=/internal/cron-jobs):
    GET  /internal/cron-jobs      {"jobs": [...]} with an ETag; 304 on If-None-Match
    POST /triggers                {"name", "schedule", ...any job field}: create or replace
    DELETE /triggers/<name>       delete
The trigger routes need the same bearer token (a real app has its own user auth there).
With SIDECAR_URL (the sidecar's port, http://localhost:9464) and SIDECAR_CONTROL_TOKEN, a
saved or deleted trigger is in force at once: the app calls POST /api/v1/sources/refresh
after its write, instead of waiting for the sidecar's next refresh.
"""

import hashlib
import hmac
import json
import logging
import os
import re
import sqlite3
import sys
import threading
import time
import urllib.request
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


db = sqlite3.connect(os.environ.get("APP_DB", "app-triggers.db"), check_same_thread=False)
db.execute("CREATE TABLE IF NOT EXISTS triggers (name TEXT PRIMARY KEY, job TEXT NOT NULL)")
NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")


def jobs_document() -> tuple[bytes, str]:
    """Every trigger as the sidecar's document of jobs, and its ETag (a hash of the bytes)."""
    with lock:
        rows = db.execute("SELECT job FROM triggers ORDER BY name").fetchall()
    body = json.dumps({"jobs": [json.loads(job) for (job,) in rows]}).encode()
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def refresh_sidecar() -> str:
    """Ask the sidecar to read the triggers now (any replica answers; the leader has them in
    force within a second). Without SIDECAR_URL, the sidecar's own refresh picks them up."""
    url, token = os.environ.get("SIDECAR_URL"), os.environ.get("SIDECAR_CONTROL_TOKEN")
    if not url or not token:
        return "picked up at the sidecar's next refresh"
    request = urllib.request.Request(url.rstrip("/") + "/api/v1/sources/refresh", data=b"{}", method="POST",
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()
        return "in force now"
    except OSError as exc:  # the write stands; the sidecar's own refresh picks it up
        log("sidecar refresh failed", error=str(exc))
        return "picked up at the sidecar's next refresh"


def do_work(job: str, payload) -> None:
    log("working", job=job, payload=payload)  # the job's real work goes here


class Handler(BaseHTTPRequestHandler):
    def handle_call(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/internal/cron-jobs" or (self.path.startswith("/triggers") and not self.path.endswith("/run")):
            return self.triggers(body)
        return self.handle_fire(body)

    def handle_fire(self, body: bytes) -> None:
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

    def triggers(self, body: bytes) -> None:
        if not hmac.compare_digest(self.headers.get("Authorization", "").encode(), TOKEN):
            return self.reply(401, "rejected", "bad bearer token", path=self.path)
        if self.command == "GET" and self.path == "/internal/cron-jobs":
            document, etag = jobs_document()
            if self.headers.get("If-None-Match") == etag:  # unchanged: the sidecar's usual refresh
                self.send_response(304)
                self.send_header("ETag", etag)
                return self.end_headers()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("ETag", etag)
            self.send_header("Content-Length", str(len(document)))
            self.end_headers()
            return self.wfile.write(document)
        if self.command == "POST" and self.path == "/triggers":
            try:
                job = json.loads(body)
                assert isinstance(job, dict) and NAME.fullmatch(str(job.get("name", "")))
            except (ValueError, AssertionError):
                return self.reply(400, "rejected", "expected a JSON object with a name of a-z 0-9 -")
            job.setdefault("url", f"/triggers/{job['name']}/run")
            with lock:
                db.execute("INSERT OR REPLACE INTO triggers VALUES (?, ?)", (job["name"], json.dumps(job)))
                db.commit()
            return self.reply(201, "trigger saved", refresh_sidecar(), trigger=job["name"])
        if self.command == "DELETE" and self.path.startswith("/triggers/"):
            name = self.path.removeprefix("/triggers/")
            with lock:
                gone = db.execute("DELETE FROM triggers WHERE name = ?", (name,)).rowcount
                db.commit()
            if gone:
                refresh_sidecar()
            return self.reply(200 if gone else 404, "trigger deleted" if gone else "rejected",
                              "deleted" if gone else "no such trigger", trigger=name)
        return self.reply(404, "rejected", "no such route", path=self.path)

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
