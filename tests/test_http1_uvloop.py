"""The HTTP/1.1 client on uvloop, as the container image runs it (the `fast` extra): uvloop's
create_connection takes no happy-eyeballs arguments, and a call must still go out."""

from __future__ import annotations

import asyncio

import pytest

from scheduler.http.client.client import Http1Client
from tests.support import Receiver

uvloop = pytest.importorskip("uvloop")


def test_a_call_goes_out_on_uvloop() -> None:
    receiver = Receiver()
    try:
        async def main() -> int:
            assert not isinstance(asyncio.get_running_loop(), asyncio.BaseEventLoop)  # really uvloop
            client = Http1Client()
            try:
                response = await client.send("POST", receiver.url + "/hello", {"Content-Type": "text/plain"}, b"hi", 5.0)
            finally:
                await client.aclose()
            return response.status

        assert uvloop.run(main()) == 200
        assert [r.path for r in receiver.requests] == ["/hello"]
    finally:
        receiver.close()
