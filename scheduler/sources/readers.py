"""The two readers of a document of jobs: a file (SCHEDULER_JOBS_FILE) and a URL of the app
(SCHEDULER_JOBS_URL). Each `read` returns the parsed document, UNCHANGED, or raises
SourceError saying what went wrong; what to do then is the watcher's business (watch.py).

The file is polled: `os.stat` once a second, following symlinks, compared on (device,
inode, size, mtime). A Kubernetes ConfigMap volume updates by swapping its `..data`
symlink, which changes the inode the path resolves to, so the swap is seen; an editor that
rewrites in place changes mtime and size. One stat costs a few microseconds of CPU
(bench/sources.py), which is less than the wake-ups of an inotify library's thread would,
and it needs no dependency and no care for watches lost when the watched target is
replaced. SIGHUP forces a read, whatever stat says.
"""

from __future__ import annotations

import os
from typing import Any
from collections.abc import Callable

from .. import __version__, background, collector
from ..config.loader import Settings, mask_url
from ..http.client.client import ERRORS, BodyTooLarge, Http1Client
from ..http.client.url import origin
from .document import MAX_DOCUMENT_BYTES, DocumentError, Parsed, kind_of, parse_bytes, validate

UNCHANGED = object()
USER_AGENT = f"cron-sidecar/{__version__}"


class SourceError(Exception):
    """A read that failed; the message says why, never a secret."""


Validate = Callable[[Any, Parsed | None], Parsed]


class FileReader:
    source = "file"

    def __init__(self, settings: Settings, path: str):
        self.settings, self.path = settings, path
        self.location = path
        self.kind = kind_of(path)
        self._seen: tuple | None = None  # the stat of the last read, good or bad

    def signature(self) -> tuple | None:
        try:
            st = os.stat(self.path)  # follows symlinks: a ConfigMap's ..data swap shows here
        except OSError:
            return None
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def changed(self) -> bool:
        return self.signature() != self._seen or self._seen is None

    async def read(self, previous: Parsed | None, force: bool = False, offload: bool = True):
        sig = self.signature()
        if sig is not None and sig == self._seen and not force:
            return UNCHANGED
        try:
            if sig is not None and sig[2] > MAX_DOCUMENT_BYTES:
                raise SourceError(f"the file is {sig[2]} bytes, over the limit of {MAX_DOCUMENT_BYTES}")
            try:
                with open(self.path, "rb") as f:
                    data = f.read(MAX_DOCUMENT_BYTES + 1)
            except OSError as exc:
                raise SourceError(f"cannot read {self.path!r}: {exc.strerror or type(exc).__name__}") from None
            return await _parse(data, self.kind, self.source, self.settings, previous, offload)
        finally:
            self._seen = sig  # a bad document is read again when it changes, not every second


class UrlReader:
    source = "url"

    def __init__(self, settings: Settings, url: str, client: Http1Client | None = None):
        self.settings, self.url = settings, url
        self.location = mask_url(url)
        self.etag: str | None = None
        # A request may take the refresh period, within 5-30 s: a 64 MiB document needs
        # time on a slow link, a hung app must not hold the source for long.
        self.timeout_s = min(30.0, max(5.0, settings.jobs_refresh_s))
        self.client = client or Http1Client(
            verify=settings.tls_verify, client_cert=settings.tls_client_cert,
            client_key=settings.tls_client_key, key_password=settings.tls_client_key_password,
            proxy=settings.http_proxy, no_proxy=settings.no_proxy, body_bytes=MAX_DOCUMENT_BYTES,
        )

    def headers(self) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if self.settings.api_token and self.settings.api_url and origin(self.url) == origin(self.settings.api_url):
            headers["Authorization"] = f"Bearer {self.settings.api_token}"
        if self.etag is not None:
            headers["If-None-Match"] = self.etag
        return headers

    async def read(self, previous: Parsed | None, force: bool = False, offload: bool = True):
        try:
            response = await self.client.send("GET", self.url, self.headers(), b"", self.timeout_s)
        except TimeoutError:
            raise SourceError(f"no answer within {self.timeout_s:g}s") from None
        except BodyTooLarge:
            raise SourceError(f"the document is over the limit of {MAX_DOCUMENT_BYTES} bytes") from None
        except ERRORS as exc:
            raise SourceError(f"request failed: {type(exc).__name__}: {exc}") from None
        status = response.status
        if status == 304 and self.etag is not None:
            return UNCHANGED
        if 300 <= status < 400:
            where = response.header("location")
            raise SourceError(f"HTTP {status}: redirects are not followed"
                              f"{f' (to {mask_url(where)[:200]!r})' if where else ''}; "
                              "set SCHEDULER_JOBS_URL to the document's own URL")
        if status != 200:
            excerpt = f": {response.excerpt[:200]!r}" if response.excerpt else ""
            raise SourceError(f"HTTP {status}{excerpt}")
        parsed = await _parse(response.body or b"", "json", self.source, self.settings, previous, offload)
        self.etag = response.header("etag")  # only once the document was good
        return parsed

    async def aclose(self) -> None:
        await self.client.aclose()


LARGE_DOCUMENT_BYTES = 1 << 20  # about 10,000 jobs


async def _parse(data: bytes, kind: str, source: str, settings: Settings, previous: Parsed | None, offload: bool) -> Parsed:
    def work() -> Parsed:
        # In a thread, the document is decoded in pieces (document_text.py), so the
        # leader's fires keep their times. The collector waits meanwhile (collector.py);
        # a large document is frozen afterwards: it lives until the next change.
        with collector.paused(freeze=len(data) >= LARGE_DOCUMENT_BYTES):
            return validate(parse_bytes(data, kind, in_steps=offload), source, settings, previous)

    try:
        # In a thread: the GIL is handed back to the event loop every 5 ms, so the fires
        # of a leader keep their times while 100,000 jobs are parsed.
        return await background.beside(work) if offload else work()
    except DocumentError as exc:
        raise SourceError(str(exc)) from None
