"""A rediss:// URL to a real redis-server whose certificate a private CA signed: the CA named
in the URL's query, as docs/guarantees.md's "Redis over TLS" says."""

from __future__ import annotations

import trustme

from harness.ports import free_port
from tests.support import run_cli

JOB = {"SCHEDULER_JOB_TICK_SCHEDULE": "every 1m", "SCHEDULER_JOB_TICK_URL": "http://127.0.0.1:9/tick",
       "SCHEDULER_HTTP_PORT": "0"}


def test_a_private_ca_named_in_the_url_query_is_trusted(redis_factory, tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ca_file, cert_file, key_file = tmp_path / "ca.pem", tmp_path / "server.crt", tmp_path / "server.key"
    ca.cert_pem.write_to_path(str(ca_file))
    for blob in cert.cert_chain_pems:
        blob.write_to_path(str(cert_file), append=True)
    cert.private_key_pem.write_to_path(str(key_file))
    tls_port = free_port()
    redis_factory(extra_args=["--tls-port", str(tls_port), "--tls-cert-file", str(cert_file),
                              "--tls-key-file", str(key_file), "--tls-ca-cert-file", str(ca_file),
                              "--tls-auth-clients", "no"])
    url = f"rediss://127.0.0.1:{tls_port}/0"

    trusted = run_cli(["status"], {**JOB, "SCHEDULER_REDIS_URL": f"{url}?ssl_ca_certs={ca_file}"}, cwd=tmp_path)
    assert trusted.returncode == 0, trusted.stderr
    assert "leader   none" in trusted.stdout

    untrusted = run_cli(["status"], {**JOB, "SCHEDULER_REDIS_URL": url}, cwd=tmp_path)
    assert untrusted.returncode == 1
    assert "certificate verify failed" in untrusted.stderr
