"""The HTTP client's TLS client certificate (mTLS) and its opt-in proxy, against a real TLS
server and a real forwarding/CONNECT proxy on 127.0.0.1. Certificates come from trustme,
made fresh for each test."""

from __future__ import annotations

import asyncio
import base64
import ssl
from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from scheduler.dispatch import Dispatcher, Fire
from scheduler.model import Claim
from scheduler.http.client.client import ERRORS, Http1Client
from tests.test_dispatch import SLOT, make_settings
from tests.test_http1 import DEADLINE_S, Server, parse, resp, run


class TlsServer(Server):
    def __init__(self, context: ssl.SSLContext, *script):
        super().__init__(*script)
        self.context = context
        self.peer_certs: list[dict] = []

    async def __aenter__(self) -> TlsServer:
        async def serve(reader, writer):
            self.peer_certs.append(writer.get_extra_info("peercert"))
            await self._serve(reader, writer)

        self.server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=self.context)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def url(self, path: str = "/") -> str:
        return f"https://127.0.0.1:{self.port}{path}"


@pytest.fixture
def pki(tmp_path: Path):
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    client_cert = ca.issue_cert("scheduler@example.test")
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cert_file, key_file = tmp_path / "client.crt", tmp_path / "client.key"
    for blob in client_cert.cert_chain_pems:
        blob.write_to_path(str(cert_file), append=True)
    client_cert.private_key_pem.write_to_path(str(key_file))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(server)
    ca.configure_trust(server)
    server.verify_mode = ssl.CERT_REQUIRED  # no client certificate, no connection
    return {"ca": str(ca_file), "cert": str(cert_file), "key": str(key_file), "server": server,
            "client_key_pem": client_cert.private_key_pem.bytes(), "tmp": tmp_path}


def test_a_server_that_requires_a_client_certificate_accepts_the_configured_one(pki) -> None:
    async def go():
        async with TlsServer(pki["server"], resp(200)) as srv:
            c = Http1Client(verify=pki["ca"], client_cert=pki["cert"], client_key=pki["key"])
            try:
                response = await c.send("GET", srv.url("/m"), {}, b"", DEADLINE_S)
            finally:
                await c.aclose()
            return response, srv.peer_certs

    response, peers = run(go)
    assert response.status == 200
    (peer,) = peers
    assert ("commonName", "scheduler@example.test") in [pair for rdn in peer["subject"] for pair in rdn] or peer["subjectAltName"]


def test_without_the_client_certificate_the_attempt_fails(pki) -> None:
    async def go():
        async with TlsServer(pki["server"], resp(200)) as srv:
            c = Http1Client(verify=pki["ca"])
            try:
                return await c.send("GET", srv.url("/m"), {}, b"", DEADLINE_S)
            except ERRORS as exc:
                return exc
            finally:
                await c.aclose()

    assert isinstance(run(go), ERRORS)


def test_an_encrypted_key_with_its_password_from_a_file_through_config(pki) -> None:
    key = serialization.load_pem_private_key(pki["client_key_pem"], password=None)
    encrypted = pki["tmp"] / "client-encrypted.key"
    encrypted.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.BestAvailableEncryption(b"open sesame")))
    password_file = pki["tmp"] / "key-password"
    password_file.write_text("open sesame\n")

    async def go():
        async with TlsServer(pki["server"], resp(204)) as srv:
            settings = make_settings(
                {"RETRIES": "0"}, SCHEDULER_API_URL=srv.url("/api"), SCHEDULER_TLS_VERIFY=pki["ca"],
                SCHEDULER_TLS_CLIENT_CERT=pki["cert"], SCHEDULER_TLS_CLIENT_KEY=str(encrypted),
                SCHEDULER_TLS_CLIENT_KEY_PASSWORD_FILE=str(password_file),
            )
            d = Dispatcher(settings)
            try:
                return await d.send(Fire(settings.jobs[0], Claim(settings.jobs[0].name, SLOT), 1))
            finally:
                await d.aclose()

    outcome = run(go)
    assert (outcome.status, outcome.http_status) == ("ok", 204)


# ---------------------------------------------------------------------------
# the proxy
# ---------------------------------------------------------------------------


class Proxy:
    """A forwarding (absolute-form) and CONNECT proxy on 127.0.0.1 that records each request
    head it gets and then pipes bytes both ways."""

    def __init__(self) -> None:
        self.heads: list[bytes] = []

    async def __aenter__(self) -> Proxy:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        self.tasks: set[asyncio.Task] = set()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    @property
    def url(self) -> str:
        return f"http://user:p%40ss@127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.tasks.add(asyncio.current_task())
        head = await reader.readuntil(b"\r\n\r\n")
        self.heads.append(head)
        method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ")
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            up_reader, up_writer = await asyncio.open_connection(host.strip("[]"), int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            first = b""
        else:
            authority = target.split("/")[2]
            host, _, port = authority.rpartition(":")
            up_reader, up_writer = await asyncio.open_connection(host, int(port or 80))
            first = head  # forwarded as it came, absolute form and all
        up_writer.write(first)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True)

    @staticmethod
    async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        finally:
            dst.close()


BASIC = "Basic " + base64.b64encode(b"user:p@ss").decode()


def test_an_http_url_goes_through_the_proxy_in_absolute_form_with_proxy_auth() -> None:
    async def go():
        async with Proxy() as proxy, Server(resp(200), resp(201)) as srv:
            c = Http1Client(proxy=proxy.url)
            try:
                first = await c.send("GET", srv.url("/a?b=1"), {}, b"", DEADLINE_S)
                second = await c.send("GET", srv.url("/c"), {}, b"", DEADLINE_S)  # on the same proxy connection
            finally:
                await c.aclose()
            return proxy.heads, srv.requests, (first.status, second.status), len(srv.conns)

    heads, requests, statuses, conns = run(go)
    assert statuses == (200, 201)
    (head,) = heads
    seen = parse(head)
    assert seen.line.startswith(f"GET http://127.0.0.1:{seen.values('Host')[0].split(':')[1]}/a?b=1 HTTP/1.1")
    assert seen.values("Proxy-Authorization") == [BASIC]
    assert len(requests) == 2 and conns == 1


def test_an_https_url_goes_through_a_connect_tunnel(pki) -> None:
    async def go():
        async with Proxy() as proxy, TlsServer(pki["server"], resp(200)) as srv:
            c = Http1Client(proxy=proxy.url, verify=pki["ca"], client_cert=pki["cert"], client_key=pki["key"])
            try:
                response = await c.send("POST", srv.url("/t"), {}, b"{}", DEADLINE_S)
            finally:
                await c.aclose()
            return proxy.heads, srv.requests, response, srv.port

    heads, requests, response, port = run(go)
    assert response.status == 200
    (head,) = heads
    seen = parse(head)
    assert seen.line == f"CONNECT 127.0.0.1:{port} HTTP/1.1"
    assert seen.values("Proxy-Authorization") == [BASIC]
    (request,) = requests
    assert parse(request).line == "POST /t HTTP/1.1"  # inside the tunnel: origin form, not seen by the proxy


@pytest.mark.parametrize("no_proxy", ["127.0.0.1", "localhost,127.0.0.1", "*"])
def test_hosts_on_the_no_proxy_list_are_reached_directly(no_proxy: str) -> None:
    async def go():
        async with Proxy() as proxy, Server(resp(200)) as srv:
            c = Http1Client(proxy=proxy.url, no_proxy=no_proxy)
            try:
                response = await c.send("GET", srv.url("/a"), {}, b"", DEADLINE_S)
            finally:
                await c.aclose()
            return proxy.heads, response

    heads, response = run(go)
    assert response.status == 200 and heads == []


def test_a_proxy_that_refuses_connect_fails_the_attempt(pki) -> None:
    async def refuse(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    async def go():
        server = await asyncio.start_server(refuse, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        c = Http1Client(proxy=f"http://127.0.0.1:{port}")
        try:
            return await c.send("GET", "https://127.0.0.1:9/x", {}, b"", DEADLINE_S)
        except ERRORS as exc:
            return exc
        finally:
            await c.aclose()
            server.close()

    error = run(go)
    assert isinstance(error, ERRORS) and "proxy refused CONNECT 127.0.0.1:9: HTTP/1.1 403 Forbidden" in str(error)


def test_the_standard_proxy_variables_are_not_used(monkeypatch) -> None:
    # A sidecar's calls to its own app never go through an egress proxy by surprise.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")

    async def go():
        async with Server(resp(200)) as srv:
            settings = make_settings({"RETRIES": "0"}, SCHEDULER_API_URL=srv.url("/api"))
            d = Dispatcher(settings)
            try:
                return await d.send(Fire(settings.jobs[0], Claim(settings.jobs[0].name, SLOT), 1))
            finally:
                await d.aclose()

    assert run(go).status == "ok"
