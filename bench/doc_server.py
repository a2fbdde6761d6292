"""The document server of the jobs-from-URL benchmarks (sources.py, sources_cluster.py,
latency.py --jobs-from url): another process serving the files given on its command line at
any path, with an ETag and 304s; a POST switches to the next file; `GET /_counts` answers the
GETs it has had so far per path (JSON), so a bench can count the refreshes a daemon made by
giving each daemon its own path.

    python -c "$SERVER" PORT FILE [FILE...]
"""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path

from bench import lifecycle, timing
from harness.ports import free_port

SERVER = r"""
import hashlib, json, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
docs = [open(p, "rb").read() for p in sys.argv[2:]]
state = {"i": 0}
counts = {}
lock = threading.Lock()
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_POST(self):  # switch to the next document
        state["i"] = (state["i"] + 1) % len(docs)
        self.send_response(204); self.send_header("Content-Length", "0"); self.end_headers()
    def do_GET(self):
        if self.path == "/_counts":
            with lock:
                body = json.dumps(counts).encode()
            self.send_response(200); self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body); return
        with lock:
            counts[self.path] = counts.get(self.path, 0) + 1
        body = docs[state["i"]]
        etag = '"%s"' % hashlib.sha1(body).hexdigest()[:16]
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304); self.send_header("ETag", etag); self.end_headers(); return
        self.send_response(200); self.send_header("ETag", etag)
        self.send_header("Content-Type", "application/json"); self.send_header("Content-Length", str(len(body)))
        self.end_headers(); self.wfile.write(body)
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def serve(*files: Path) -> int:
    """Start the server on a free port (stopped at `lifecycle.cleanup()`); its port, once it answers."""
    port = free_port()
    lifecycle.spawn([sys.executable, "-c", SERVER, str(port), *map(str, files)])
    timing.wait_for(lambda: _answers(port), 20, what="the document server")
    return port


def counts(port: int) -> dict[str, int]:
    """GETs per path so far (`/_counts` itself not counted)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_counts", timeout=5) as r:
        return json.loads(r.read())


def switch(port: int) -> None:
    """Serve the next file from now on."""
    urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/switch", method="POST"), timeout=5).read()


def _answers(port: int) -> bool:
    try:
        counts(port)
        return True
    except OSError:
        return False


def write_jobs(path: Path, jobs: dict[str, str], url_prefix: str = "/j/") -> Path:
    """The jobs of `daemons.write_env_file(path, jobs)` as a document {"jobs": [...]}: the same
    names (an env job's name: lower case, `-` for `_`), schedules and URLs."""
    names = {name: name.lower().replace("_", "-") for name in jobs}
    doc = {"jobs": [{"name": names[n], "schedule": s, "url": f"{url_prefix}{names[n]}"} for n, s in jobs.items()]}
    path.write_text(json.dumps(doc))
    return path
