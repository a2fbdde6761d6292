"""What the HTTP client keeps of an answer: response heads capped in bytes and fields, and
the start of an error body (charset, control characters, secrets), with memory that stays
flat whatever the target sends. Real servers on 127.0.0.1 (tests/test_http1.py's Server)."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc

import pytest

from scheduler.dispatch import EXCERPT_BYTES, Dispatcher, Fire
from scheduler.model import Claim
from scheduler.http.client.client import ERRORS, BodyTooLarge, HeadersTooLarge, Http1Client
from scheduler.observe import Redactor
from tests.test_dispatch import SLOT, make_settings
from tests.test_http1 import DEADLINE_S, Server, resp, run

MB = 1024 * 1024


def streaming(head: bytes, chunk: bytes, total: int):
    """An action: write head, then `total` bytes as repeats of one chunk, until done or the
    client goes away."""

    async def action(conn, writer: asyncio.StreamWriter):
        try:
            writer.write(head)
            sent = 0
            while sent < total:
                writer.write(chunk)
                sent += len(chunk)
                await writer.drain()
        except ConnectionError:
            pass
        return None

    return action


async def peak_bytes_of(send) -> tuple[object, int]:
    """(what send() returned or raised, tracemalloc's peak in bytes while it ran)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        try:
            result = await send()
        except Exception as exc:  # noqa: BLE001 - returned for the test to check
            result = exc
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


# ---------------------------------------------------------------------------
# response head caps
# ---------------------------------------------------------------------------


def test_a_48_mb_header_block_fails_the_attempt_and_memory_stays_flat() -> None:
    line = b"X-Pad: " + b"a" * 1000 + b"\r\n"
    action = streaming(b"HTTP/1.1 200 OK\r\n", line * 64, 48 * MB)

    async def go():
        async with Server(action) as srv:
            c = Http1Client()
            try:
                result, peak = await peak_bytes_of(lambda: c.send("GET", srv.url("/h"), {}, b"", DEADLINE_S))
                left_open = set(c.open)
            finally:
                await c.aclose()
            return result, peak, left_open

    result, peak, left_open = run(go)
    assert isinstance(result, HeadersTooLarge) and isinstance(result, ERRORS)
    assert "over 65536 bytes" in str(result)
    assert peak < 2 * MB, f"peak {peak} bytes"
    assert left_open == set()


def test_one_endless_header_line_is_cut_off_too() -> None:
    # llhttp hands a header over only when its line ends: the raw byte count must stop it.
    action = streaming(b"HTTP/1.1 200 OK\r\nX-Long: ", b"b" * 65536, 48 * MB)

    async def go():
        async with Server(action) as srv:
            c = Http1Client()
            try:
                return await peak_bytes_of(lambda: c.send("GET", srv.url("/h"), {}, b"", DEADLINE_S))
            finally:
                await c.aclose()

    result, peak = run(go)
    assert isinstance(result, HeadersTooLarge)
    assert peak < 2 * MB, f"peak {peak} bytes"


@pytest.mark.parametrize("count, fails", [(100, False), (101, True)])
def test_header_field_count_is_capped(count: int, fails: bool) -> None:
    answer = resp(200, [(f"X-H{i}", "v") for i in range(count - 1)])  # resp adds Content-Length

    async def go():
        async with Server(answer) as srv:
            c = Http1Client()
            try:
                return await c.send("GET", srv.url("/h"), {}, b"", DEADLINE_S)
            except ERRORS as exc:
                return exc
            finally:
                await c.aclose()

    result = run(go)
    if fails:
        assert isinstance(result, HeadersTooLarge) and "more than 100 header fields" in str(result)
    else:
        assert result.status == 200 and len(result.headers) == 100


def test_caps_are_settable() -> None:
    async def go():
        async with Server(resp(200, [("X-A", "x" * 300)])) as srv:
            c = Http1Client(max_header_bytes=256)
            try:
                return await c.send("GET", srv.url("/h"), {}, b"", DEADLINE_S)
            except ERRORS as exc:
                return exc
            finally:
                await c.aclose()

    assert isinstance(run(go), HeadersTooLarge)


# ---------------------------------------------------------------------------
# the error excerpt
# ---------------------------------------------------------------------------


def _fire(srv: Server, scrub=lambda text: text):
    settings = make_settings({"RETRIES": "0"}, SCHEDULER_API_URL=srv.url("/api"))
    d = Dispatcher(settings, scrub=scrub)

    async def go():
        try:
            return await d.send(Fire(settings.jobs[0], Claim(settings.jobs[0].name, SLOT), 1))
        finally:
            await d.aclose()

    return go()


def test_a_50_mb_error_body_costs_less_than_1_mb_and_its_start_is_kept() -> None:
    body_chunk = (b"sync failed: upstream warehouse said relation \"sessions_v2\" does not exist. " * 900)[:65536]
    head = f"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: {50 * MB}\r\n\r\n".encode()
    action = streaming(head, body_chunk, 50 * MB)

    async def go():
        async with Server(action, resp(200)) as srv:
            outcome, peak = await peak_bytes_of(lambda: _fire(srv))
            return outcome, peak

    outcome, peak = run(go)
    assert (outcome.status, outcome.http_status, outcome.error) == ("failed", 500, "HTTP 500")
    assert outcome.excerpt == body_chunk[:EXCERPT_BYTES].decode()
    assert peak < 1 * MB, f"peak {peak} bytes"


def test_a_short_error_body_keeps_the_connection() -> None:
    async def go():
        async with Server(resp(404, [("Content-Type", "text/plain")], b"no such task"), resp(200)) as srv:
            c = Http1Client()
            try:
                first = await c.send("GET", srv.url("/a"), {}, b"", DEADLINE_S)
                second = await c.send("GET", srv.url("/b"), {}, b"", DEADLINE_S)
            finally:
                await c.aclose()
            return first, second, len(srv.conns)

    first, second, conns = run(go)
    assert (first.status, first.excerpt) == (404, "no such task")
    assert (second.status, second.excerpt) == (200, None)
    assert conns == 1


@pytest.mark.parametrize(
    "content_type, body, expected",
    [
        ("text/plain; charset=iso-8859-1", b"caf\xe9 cr\xe8me", "café crème"),
        ("text/plain; charset=\"latin-1\"", b"\xa3100", "£100"),
        ("application/json", "{\"error\": \"café\"}".encode(), "{\"error\": \"café\"}"),
        (None, b"bad \xff\xfe bytes", "bad \ufffd\ufffd bytes"),
        ("text/plain; charset=utf-8", b"cut \xe2\x82", "cut \ufffd"),  # an incomplete character at the end
        ("text/plain; charset=no-such-charset", b"plain", "plain"),
        ("text/plain", b"line1\nline2\r\n\ttab \x1b[31mred\x7f \xc2\x85", "line1\\nline2\\r\\n\\ttab \\x1b[31mred\\x7f \\x85"),
        ("text/plain", "\u00e9".encode() * 600, "\u00e9" * (EXCERPT_BYTES // 2)),  # cut on a character
    ],
    ids=["latin-1", "quoted-latin-1", "utf-8-default", "invalid-utf-8", "truncated-utf-8", "unknown-charset",
         "control-characters", "long-utf-8"],
)
def test_error_excerpt_decoded_by_charset_and_escaped(content_type: str | None, body: bytes, expected: str) -> None:
    headers = [("Content-Type", content_type)] if content_type else []

    async def go():
        async with Server(resp(422, headers, body)) as srv:
            return await _fire(srv)

    outcome = run(go)
    assert (outcome.status, outcome.http_status) == ("failed", 422)
    assert outcome.excerpt == expected


def test_error_excerpt_is_scrubbed_even_where_the_cut_falls_inside_a_secret() -> None:
    secret = "s3cr3t-token-value-0123456789"
    body = ("x" * (EXCERPT_BYTES - 10) + secret + " and again " + secret).encode()
    redactor = Redactor([secret])

    async def go():
        async with Server(resp(500, [], body)) as srv:
            return await _fire(srv, scrub=redactor.scrub)

    excerpt = run(go).excerpt
    assert excerpt == ("x" * (EXCERPT_BYTES - 10) + "*** and again ***")[:EXCERPT_BYTES]
    assert secret[:5] not in excerpt


def test_no_excerpt_for_an_empty_error_body_or_a_success() -> None:
    async def go():
        async with Server(resp(503), resp(200, [], b"fine")) as srv:
            c = Http1Client()
            try:
                return [await c.send("GET", srv.url(p), {}, b"", DEADLINE_S) for p in ("/a", "/b")]
            finally:
                await c.aclose()

    failed, ok = run(go)
    assert failed.excerpt == "" and ok.excerpt is None


# ---------------------------------------------------------------------------
# a kept 2xx body over body_bytes
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("head", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 12582912\r\n\r\n",  # 12 MiB announced
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",  # ends with the connection
], ids=["content-length", "chunked", "until-close"])
def test_a_body_over_body_bytes_is_refused_and_nothing_of_it_stays_without_the_cyclic_collector(head: bytes) -> None:
    """The daemon's collector seldom makes a full pass: what a refused body leaves must go
    by reference counting alone. It did not: the connection, its parser and the error the
    parser kept (with the body in its traceback) made a cycle, one refused body a retry."""
    chunked = b"chunked" in head
    piece = b"x" * 65536
    action = streaming(head, b"10000\r\n" + piece + b"\r\n" if chunked else piece, 12 * MB)

    async def go():
        async with Server(action) as srv:
            c = Http1Client(body_bytes=4 * MB)
            tracemalloc.start()
            try:
                before, _ = tracemalloc.get_traced_memory()
                for _ in range(3):
                    with pytest.raises(BodyTooLarge):
                        await c.send("GET", srv.url("/jobs"), {}, b"", DEADLINE_S)
                after, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
                await c.aclose()
            return after - before, peak - before

    gc.disable()
    try:
        left, peak = run(go)
    finally:
        gc.enable()
    assert left < MB, f"{left} bytes left after 3 refusals"
    if b"Content-Length" in head:
        assert peak < MB, f"peak {peak} bytes: an announced length over the limit is refused before the body is read"
    else:
        assert peak < 6 * MB, f"peak {peak} bytes"
