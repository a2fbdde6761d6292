"""Security properties end to end: real daemons, a real redis-server, real HTTP(S) receivers.

- No token, signing secret or Redis password in any output, whatever goes wrong.
- A redirect is never followed, so the token never reaches another origin.
- TLS certificates are verified unless a CA bundle says otherwise.
- Redis keys stay inside `{<namespace>}:`, and two namespaces never interfere.
- A job URL is http(s) or a path, never another scheme.
"""

from __future__ import annotations

import base64
import re
import shutil
import ssl
import subprocess
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.e2e import log_events
from tests.support import Receiver, free_port, run_cli, wait_until

TOKEN = "tok-S3cr3t-7f3a9c1e55b2d4"
SIGNING_B64 = base64.b64encode(b"signing-key-for-security-tests-0042").decode()
SIGNING = "whsec_" + SIGNING_B64
REDIS_PASSWORD = "pw-R3d1s:9d8c/7b@x"  # characters that a URL must percent-encode
WRONG_PASSWORD = "pw-Wr0ng-6e5f4a3b"


def secret_forms() -> dict[str, str]:
    quoted = urllib.parse.quote(REDIS_PASSWORD, safe="")
    return {
        "token": TOKEN,
        "signing secret": SIGNING,
        "signing secret's base64": SIGNING_B64,
        "redis password": REDIS_PASSWORD,
        "redis password, percent-encoded": quoted,
        "wrong redis password": WRONG_PASSWORD,
    }


def leaks(outputs: dict[str, str]) -> list[str]:
    return [f"{what} in {label}" for label, text in outputs.items() for what, secret in secret_forms().items() if secret in text]


def redis_url(port: int, password: str) -> str:
    return f"redis://:{urllib.parse.quote(password, safe='')}@127.0.0.1:{port}/0"


def daemon_env(receiver_url: str, prefix: str, **settings: str) -> dict[str, str]:
    env = {
        "SCHEDULER_API_URL": receiver_url,
        "SCHEDULER_API_TOKEN": TOKEN,
        "SCHEDULER_SIGNING_SECRET": SIGNING,
        "SCHEDULER_LOG_LEVEL": "DEBUG",
        "SCHEDULER_LOG_FORMAT": "json",
        "SCHEDULER_HTTP_PORT": "0",
        "SCHEDULER_LEASE_TTL": "3s",
        "SCHEDULER_LEASE_RENEW": "1s",
        "SCHEDULER_SHUTDOWN_GRACE": "2s",
        "SCHEDULER_JOB_TICK_SCHEDULE": "every 1s",
        "SCHEDULER_JOB_TICK_URL": f"/{prefix}/tick",
        "SCHEDULER_JOB_TICK_RETRIES": "1",
        "SCHEDULER_JOB_REPORT_SCHEDULE": "0 3 * * *",
        "SCHEDULER_JOB_REPORT_URL": f"/{prefix}/report",
    }
    env.update({f"SCHEDULER_{k.upper()}": v for k, v in settings.items()})
    return env


def cli_outputs(env: dict[str, str], cwd, commands) -> dict[str, str]:
    """Run CLI commands in parallel; label -> stdout + stderr."""

    def one(args):
        out = run_cli(args, env, cwd=cwd)
        return f"{' '.join(args)} (exit {out.returncode})", out.stdout + out.stderr

    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(pool.map(one, commands))


CONTROL_COMMANDS = [
    ["check", "--json"], ["status"], ["status", "--json"],
    ["pause", "tick"], ["resume", "tick"], ["trigger", "report"], ["trigger", "report", "--id", "sec-1"],
]


def test_no_secret_in_any_output_of_daemons_and_commands(redis_factory, receiver, daemon_factory, tmp_path):
    # Per path: 200, then 401 (final), then 500 (retried), and so on.
    answers, seen, lock = (200, 401, 500), {}, threading.Lock()

    def handler(request):
        with lock:
            n = seen[request.path] = seen.get(request.path, -1) + 1
        return answers[n % 3]

    receiver.set_handler(handler)
    good = redis_factory(password=REDIS_PASSWORD)
    other = redis_factory(password="pw-the-real-one-f00d")
    down_port = free_port()

    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    (secrets_dir / "token").write_text(TOKEN + "\n")
    (secrets_dir / "signing").write_text(SIGNING + "\n")
    (secrets_dir / "redis").write_text(redis_url(good.port, REDIS_PASSWORD) + "\n")

    envs = {
        "standalone": daemon_env(receiver.url, "sa", state_file=str(tmp_path / "sa.db")),
        "standalone dry run": daemon_env(receiver.url, "dry", state_file=str(tmp_path / "dry.db"), log_format="text"),
        "redis": daemon_env(receiver.url, "rd", redis_url=redis_url(good.port, REDIS_PASSWORD), namespace="sec"),
        "redis down": daemon_env(receiver.url, "down", redis_url=redis_url(down_port, REDIS_PASSWORD)),
        "wrong redis password": daemon_env(receiver.url, "wrong", redis_url=redis_url(other.port, WRONG_PASSWORD)),
    }
    daemons = {}
    for label, env in envs.items():
        args = ("run", "--dry-run") if label == "standalone dry run" else ("run",)
        daemons[label] = daemon_factory(env, cwd=tmp_path, args=args)
    # Commands only: every secret read from a _FILE.
    envs["redis via _FILE"] = {
        **{k: v for k, v in daemon_env(receiver.url, "rf", namespace="sec").items()
           if k not in ("SCHEDULER_API_TOKEN", "SCHEDULER_SIGNING_SECRET")},
        "SCHEDULER_API_TOKEN_FILE": str(secrets_dir / "token"),
        "SCHEDULER_SIGNING_SECRET_FILE": str(secrets_dir / "signing"),
        "SCHEDULER_REDIS_URL_FILE": str(secrets_dir / "redis"),
    }

    # Every failure path at least once: 401 and 500 answers, retries, a store that is down,
    # a store that refuses the password.
    receiver.wait_for(lambda rs: all(sum(r.path == f"/{p}/tick" for r in rs) >= 3 for p in ("sa", "rd")),
                      timeout=20, message="fires of the standalone and redis daemons")
    for label in ("redis down", "wrong redis password"):
        daemons[label].wait_for_output("unreachable", timeout=15)
    daemons["standalone dry run"].wait_for_output("dry run", timeout=15)

    # Every command, against each kind of store (processes are costly: a few per kind).
    outputs = {}
    per_kind = {
        "redis": CONTROL_COMMANDS,
        "standalone": [["status"], ["trigger", "report"]],
        "redis via _FILE": [["status", "--json"], ["check"]],
        "redis down": [["status"], ["trigger", "report"]],
        "wrong redis password": [["status"], ["pause", "tick"]],
    }
    with ThreadPoolExecutor(max_workers=len(per_kind)) as pool:
        results = pool.map(lambda kind: (kind, cli_outputs(envs[kind], tmp_path, per_kind[kind])), per_kind)
        for kind, texts in results:
            outputs.update({f"`{name}` ({kind})": text for name, text in texts.items()})
    # Configuration errors about the secrets themselves.
    bad = {
        "SCHEDULER_JOB_TICK_SCHEDULE": "every 1s", "SCHEDULER_JOB_TICK_URL": "/t",
        "SCHEDULER_REDIS_URL": f"redis://:{REDIS_PASSWORD}@127.0.0.1:notaport/0",
        "SCHEDULER_SIGNING_SECRET": SIGNING_B64,  # the prefix missing
        "SCHEDULER_API_TOKEN": TOKEN, "SCHEDULER_API_TOKEN_FILE": str(secrets_dir / "token"),
    }
    config_error = run_cli(["check"], bad, cwd=tmp_path)
    assert config_error.returncode == 78, config_error
    outputs["config errors"] = config_error.stdout + config_error.stderr

    for d in daemons.values():
        d.terminate()
    for label, d in daemons.items():
        assert d.wait(15) == 0, f"{label} exited with {d.returncode}"
        outputs[f"daemon: {label}"] = d.output()
    assert not [label for label, text in outputs.items() if "Traceback" in text]

    fired = [e for e in log_events(daemons["standalone"], "fired")]
    assert {e["outcome"] for e in fired} >= {"ok", "failed"}, "the 401/500 answers were not exercised"
    assert "state store unreachable" in outputs["daemon: wrong redis password"]
    assert leaks(outputs) == []


def test_a_redis_password_given_in_the_url_query_is_masked_too(redis_factory, receiver, daemon_factory, tmp_path):
    """redis-py takes `?password=` as well as the userinfo; neither may be printed."""
    redis = redis_factory(password=REDIS_PASSWORD)
    url = f"redis://127.0.0.1:{redis.port}/0?password={urllib.parse.quote(REDIS_PASSWORD, safe='')}"
    env = daemon_env(receiver.url, "q", redis_url=url, namespace="secq")
    daemon = daemon_factory(env, cwd=tmp_path)
    outputs = cli_outputs(env, tmp_path, [["status"], ["trigger", "report"]])
    daemon.wait_for_output("became leader", timeout=15)
    redis.kill()
    outputs.update({f"{k}, redis down": v for k, v in cli_outputs(env, tmp_path, [["status"], ["pause", "tick"]]).items()})
    daemon.wait_for_output("unreachable", timeout=15)
    daemon.terminate()
    daemon.wait(15)
    outputs["daemon"] = daemon.output()
    assert leaks(outputs) == []


# ---------------------------------------------------------------------------------------
# redirects
# ---------------------------------------------------------------------------------------

def test_a_redirect_is_not_followed_and_the_token_stays_with_its_origin(daemon_factory, tmp_path):
    with Receiver() as a, Receiver() as b:
        codes = {f"/r{c}": c for c in (301, 302, 303, 307, 308)}
        a.set_handler(lambda request: (codes[request.path], {"Location": f"{b.url}/stolen{request.path}"}, b""))
        env = {
            "SCHEDULER_API_URL": a.url,
            "SCHEDULER_API_TOKEN": TOKEN,
            "SCHEDULER_STATE_FILE": str(tmp_path / "state.db"),
            "SCHEDULER_HTTP_PORT": "0",
            "SCHEDULER_LOG_FORMAT": "json",
        }
        for path in codes:
            env[f"SCHEDULER_JOB_{path[1:].upper()}_SCHEDULE"] = "every 1s"
            env[f"SCHEDULER_JOB_{path[1:].upper()}_URL"] = path
        daemon = daemon_factory(env, cwd=tmp_path)
        a.wait_for(lambda rs: all(sum(r.path == p for r in rs) >= 2 for p in codes), timeout=15)
        wait_until(lambda: {e["job"] for e in log_events(daemon, "fired")} >= {p[1:] for p in codes}, timeout=10)
        time.sleep(0.5)  # a follow-up to B, if any, would be on its way by now
        daemon.terminate()
        assert daemon.wait(15) == 0
        assert b.requests == [], f"followed to another origin: {[(r.method, r.path, r.header('authorization')) for r in b.requests]}"
        assert all(r.header("authorization") == f"Bearer {TOKEN}" for r in a.requests)
        fired = log_events(daemon, "fired")
        for path, code in codes.items():
            mine = [e for e in fired if e["job"] == path[1:]]
            assert mine and all(e["outcome"] == "failed" and e["http_status"] == code for e in mine), mine
            # A redirect is final: one attempt per slot, no retry.
            assert all(e["attempt"] == 1 for e in mine), mine


# ---------------------------------------------------------------------------------------
# TLS
# ---------------------------------------------------------------------------------------

def make_self_signed(tmp_path) -> tuple[str, str]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    try:
        from cryptography import x509  # noqa: F401
    except ImportError:
        pass
    else:
        return _cryptography_cert(cert, key)
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("neither the cryptography package nor the openssl command is available to make a certificate")
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=30,
    )
    return str(cert), str(key)


def _cryptography_cert(cert_path, key_path) -> tuple[str, str]:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return str(cert_path), str(key_path)


class TLSServer:
    """An HTTPS server on 127.0.0.1 that answers 200 and records each request's path."""

    def __init__(self, cert: str, key: str):
        self.paths: list[str] = []
        self.handshake_errors: list[str] = []
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                outer.paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = _handle

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self):
                sock, addr = self.socket.accept()
                return context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

            def finish_request(self, request, client_address):
                try:
                    request.do_handshake()
                except (ssl.SSLError, OSError) as exc:
                    outer.handshake_errors.append(str(exc))
                    return
                super().finish_request(request, client_address)

            def handle_error(self, request, client_address):
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_tls_is_verified_by_default_and_a_ca_bundle_makes_a_private_cert_valid(daemon_factory, tmp_path):
    cert, key = make_self_signed(tmp_path)
    server = TLSServer(cert, key)
    try:
        def env(path, state, **extra):
            return {
                "SCHEDULER_API_TOKEN": TOKEN,
                "SCHEDULER_STATE_FILE": str(tmp_path / state),
                "SCHEDULER_HTTP_PORT": "0",
                "SCHEDULER_LOG_FORMAT": "json",
                "SCHEDULER_JOB_TLS_SCHEDULE": "every 1s",
                "SCHEDULER_JOB_TLS_URL": f"https://127.0.0.1:{server.port}{path}",
                "SCHEDULER_JOB_TLS_RETRIES": "0",
                **extra,
            }

        default = daemon_factory(env("/default", "default.db"), cwd=tmp_path)
        explicit_true = daemon_factory(env("/true", "true.db", SCHEDULER_TLS_VERIFY="true"), cwd=tmp_path)
        with_ca = daemon_factory(env("/with-ca", "ca.db", SCHEDULER_TLS_VERIFY=cert), cwd=tmp_path)
        wait_until(lambda: server.paths.count("/with-ca") >= 2, timeout=15, message="fires through the CA bundle")
        wait_until(lambda: len(log_events(default, "fired")) >= 2 and len(log_events(explicit_true, "fired")) >= 2,
                   timeout=15, message="fires with verification on")
        for d in (default, explicit_true, with_ca):
            d.terminate()
        for d in (default, explicit_true, with_ca):
            assert d.wait(15) == 0
    finally:
        server.close()

    for d in (default, explicit_true):
        fired = log_events(d, "fired")
        assert fired and all(e["outcome"] == "failed" for e in fired), fired
        assert all(re.search(r"certificate verify failed|CERTIFICATE_VERIFY_FAILED", e.get("error") or "") for e in fired), fired
    assert "/default" not in server.paths and "/true" not in server.paths, "a request went through an unverified connection"
    assert server.handshake_errors, "the client never aborted a handshake"
    ok = log_events(with_ca, "fired")
    assert ok and all(e["outcome"] == "ok" and e["http_status"] == 200 for e in ok), ok


# ---------------------------------------------------------------------------------------
# Redis namespaces
# ---------------------------------------------------------------------------------------

def test_redis_keys_stay_in_their_namespace_and_namespaces_do_not_interfere(redis_server, receiver, daemon_factory, tmp_path):
    namespaces = {"a": "team-a", "b": "team.b:2"}
    envs = {
        side: {
            "SCHEDULER_REDIS_URL": redis_server.url,
            "SCHEDULER_NAMESPACE": ns,
            "SCHEDULER_API_URL": receiver.url,
            "SCHEDULER_HTTP_PORT": "0",
            "SCHEDULER_LOG_FORMAT": "json",
            "SCHEDULER_LEASE_TTL": "3s",
            "SCHEDULER_LEASE_RENEW": "1s",
            "SCHEDULER_JOB_TICK_SCHEDULE": "every 1s",
            "SCHEDULER_JOB_TICK_URL": f"/{side}/tick",
            "SCHEDULER_JOB_REPORT_SCHEDULE": "0 3 * * *",
            "SCHEDULER_JOB_REPORT_URL": f"/{side}/report",
        }
        for side, ns in namespaces.items()
    }
    daemons = {side: daemon_factory(env, cwd=tmp_path) for side, env in envs.items()}
    for d in daemons.values():
        d.wait_for_output("became leader", timeout=15)
    receiver.wait_for(lambda rs: all(any(r.path == f"/{s}/tick" for r in rs) for s in namespaces), timeout=15)

    def cli(side, *args):
        out = run_cli(list(args), envs[side], cwd=tmp_path)
        assert out.returncode == 0, out
        return out.stdout

    # Pause a's tick and trigger b's report: each touches its own namespace only.
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda c: cli(*c), [("a", "pause", "tick"), ("b", "trigger", "report", "--id", "only-b")]))
    wait_until(lambda: log_events(daemons["a"], "skipped: job is paused"), timeout=10)
    paused_at = time.time()
    receiver.wait_for(lambda rs: any(r.path == "/b/report" for r in rs), timeout=10)
    receiver.wait_for(lambda rs: any(r.path == "/b/tick" and r.received_at > paused_at for r in rs), timeout=10)
    client = redis_server.client()
    keys = sorted(client.scan_iter(match="*", count=1000))
    with ThreadPoolExecutor(3) as pool:
        status_a, status_b, _ = pool.map(lambda c: cli(*c), [("a", "status", "--json"), ("b", "status", "--json"),
                                                             ("a", "trigger", "tick")])
    cli("a", "resume", "tick")
    keys += client.scan_iter(match="*", count=1000)
    channels = client.pubsub_channels()
    for d in daemons.values():
        d.terminate()
    for d in daemons.values():
        assert d.wait(15) == 0
    keys_after = sorted(client.scan_iter(match="*", count=1000))

    prefixes = tuple("{%s}:" % ns for ns in namespaces.values())
    assert keys and all(k.startswith(prefixes) for k in keys + keys_after), [k for k in keys + keys_after if not k.startswith(prefixes)]
    assert all(c.startswith(prefixes) for c in channels), channels
    for ns in namespaces.values():
        assert "{%s}:slots" % ns in keys and "{%s}:epoch" % ns in keys, keys
    assert "{team-a}:paused" in keys and "{team.b:2}:paused" not in keys
    assert client.smembers("{team-a}:paused") == set(), "resume did not resume"

    requests = receiver.requests
    assert not [r for r in requests if r.path == "/a/report"], "b's trigger fired a's job"
    skipped = {e["slot"] for e in log_events(daemons["a"], "skipped: job is paused")}
    scheduled = {r.header("x-scheduler-slot") for r in requests if r.path == "/a/tick" and "@manual:" not in r.header("idempotency-key")}
    assert skipped and not skipped & scheduled, "a paused job fired"
    assert not log_events(daemons["b"], "skipped: job is paused"), "a's pause paused b's job"
    assert '"paused": true' in status_a and '"paused": true' not in status_b
    # Each namespace elected its own leader once, fencing with its own namespace's epoch.
    for side, ns in namespaces.items():
        (became,) = log_events(daemons[side], "became leader")
        assert client.get("{%s}:epoch" % ns) == str(became["epoch"])
        tokens = {r.header("x-scheduler-fencing-token") for r in requests if r.path.startswith(f"/{side}/")}
        assert tokens == {str(became["epoch"])}, tokens


# ---------------------------------------------------------------------------------------
# URL schemes
# ---------------------------------------------------------------------------------------

BAD_URLS = [
    "file:///etc/passwd", "FILE:///etc/passwd", "ftp://example.com/x", "gopher://example.com:70/_x",
    "javascript:alert(1)", " javascript:alert(1)", "java\tscript:alert(1)", "data:text/plain,hi",
    "//evil.example/x", "https:evil.example", "http:///x", "ws://example.com/x", "mailto:ops@example.com",
]


def test_a_job_url_with_another_scheme_is_a_config_error_naming_the_variable(tmp_path):
    # One process: every problem is reported at once, each on a line naming its variable.
    env = {}
    for i, url in enumerate(BAD_URLS):
        env[f"SCHEDULER_JOB_BAD{i}_SCHEDULE"] = "every 1m"
        env[f"SCHEDULER_JOB_BAD{i}_URL"] = url
    out = run_cli(["check"], env, cwd=tmp_path)
    assert out.returncode == 78, out
    lines = out.stderr.splitlines()
    accepted = [url for i, url in enumerate(BAD_URLS)
                if not any(line.startswith(f"config error: SCHEDULER_JOB_BAD{i}_URL: ") for line in lines)]
    assert accepted == [], out.stderr
    assert "configuration OK" not in out.stdout
