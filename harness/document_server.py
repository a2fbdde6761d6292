"""A jobs document served over real HTTP on 127.0.0.1, in a thread of the calling process,
counting what it sent: the body of each GET in pieces, with a Content-Length or chunked
(no length announced), so a test or a bench sees whether the reader hung up before the end.

    server = DocumentServer(jobs_document(10))   # at server.jobs_url (server.url + server.path)
    server.serve(big_bytes, chunked=True)   # from the next request on
    server.answers[-1].sent, server.answers[-1].complete
    server.close()

Nothing here imports the ``scheduler`` package.
"""

from __future__ import annotations

import json
import secrets
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness.ports import LOOPBACK, free_port

PIECE = 64 * 1024


@dataclass
class Answer:
    """One GET: how many body bytes went out, and whether all of them did."""

    size: int
    chunked: bool = False
    sent: int = 0
    complete: bool = False
    closed_early: bool = False  # the reader closed the connection before the end


def oversized_document(size: int) -> bytes:
    """A JSON document of `size` bytes or a little more: one job over and over (quick to
    make; a reader that refuses the size never sees that the names repeat)."""
    item = b'{"name":"tenant-digest","schedule":"H H * * *","url":"/api/digest/0"},'
    return b'{"jobs":[' + item * (size // len(item) + 1) + b'{"name":"last","schedule":"H H * * *","url":"/"}]}'


def jobs_document(jobs: int, *, at_least: int = 0) -> bytes:
    """{"jobs": [...]} with `jobs` valid jobs, or as many as make `at_least` bytes."""
    item = '{"name":"tenant-%d-digest","schedule":"H H * * *","url":"/api/digest/%d"}'
    parts: list[str] = []
    size, i = 0, 0
    while i < jobs or size < at_least:
        part = item % (i, i)
        parts.append(part)
        size += len(part) + 1
        i += 1
    return ('{"jobs":[' + ",".join(parts) + "]}").encode()


class DocumentServer:
    """GET `path`: the current document (an ETag on it, 304 on a match); `status` other
    than 200 answers that status with a short body; `hang_up` closes without an answer.

    The path is drawn at random and any other answers 404, uncounted: a daemon of another
    test still polling the port this one was given never counts as this test's reader."""

    def __init__(self, body: bytes = b'{"jobs": []}', *, chunked: bool = False) -> None:
        self.body, self.chunked, self.status, self.hang_up = body, chunked, 200, False
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path != outer.path:
                    self.send_error(404)
                    return
                outer._answer(self)

        self.path = f"/jobs-{secrets.token_hex(6)}"
        self.httpd = ThreadingHTTPServer((LOOPBACK, free_port()), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.jobs_url = self.url + self.path
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="document-server", daemon=True)
        self._thread.start()

    def serve(self, body: bytes, *, chunked: bool = False) -> None:
        with self._lock:
            self.body, self.chunked, self.status, self.hang_up = body, chunked, 200, False

    def gets(self) -> int:
        return len(self.answers)

    def _answer(self, h: BaseHTTPRequestHandler) -> None:
        with self._lock:
            body, chunked, status, hang_up = self.body, self.chunked, self.status, self.hang_up
        if hang_up:
            self.answers.append(Answer(0))
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return
        if status != 200:
            text = json.dumps({"error": "unavailable"}).encode()
            self.answers.append(Answer(len(text)))
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(text)))
            h.end_headers()
            h.wfile.write(text)
            return
        etag = f'"{len(body)}-{hash(body[:4096]) & 0xFFFFFFFF:x}"'
        if h.headers.get("If-None-Match") == etag:
            h.send_response(304)
            h.send_header("ETag", etag)
            h.end_headers()
            return
        answer = Answer(len(body), chunked)
        self.answers.append(answer)
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("ETag", etag)
        if chunked:
            h.send_header("Transfer-Encoding", "chunked")
        else:
            h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        view = memoryview(body)
        try:
            for start in range(0, len(body), PIECE):
                piece = view[start:start + PIECE]
                h.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                answer.sent += len(piece)
            if chunked:
                h.wfile.write(b"0\r\n\r\n")
            h.wfile.flush()
            answer.complete = True
        except OSError:  # the reader hung up
            answer.closed_early = True
            h.close_connection = True

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)
