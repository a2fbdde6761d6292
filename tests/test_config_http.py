"""Config's part of the HTTP call: URLs the client cannot send are refused at load, naming
the variable, and the client's settings (client certificate, proxy, trace context)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme

from scheduler.config import loader as config
from scheduler.http.client.client import check_url

BASE = {"SCHEDULER_JOB_A_SCHEDULE": "* * * * *", "SCHEDULER_JOB_A_URL": "/x"}


def problems(**env: str) -> list[str]:
    with pytest.raises(config.ConfigError) as caught:
        config.load({**BASE, **env})
    return caught.value.problems


@pytest.mark.parametrize(
    "url, says",
    [
        ("http://b\u00fccher..de/x", "cannot be encoded for DNS (label empty or too long)"),
        ("http://a..b/x", "an empty label"),
        ("http://-bad-.example/x", "the label '-bad-'"),
        ("http://" + "a" * 64 + ".example/x", "the label 'aaaa"),
        ("http://h:0/x", "the port must be a number from 1 to 65535"),
        ("http://h:99999/x", "the port must be a number from 1 to 65535"),
        ("http://h:80a/x", "the port must be a number from 1 to 65535"),
        ("http://[fe80::zz]/x", "IPv6 address"),
        ("http://ex ample.com/x", "the label 'ex ample'"),
    ],
)
def test_a_url_the_client_cannot_send_is_refused_naming_the_variable(url: str, says: str) -> None:
    for env in ({"SCHEDULER_JOB_A_URL": url}, {"SCHEDULER_API_URL": url}):
        (problem,) = [p for p in problems(**env) if "SCHEDULER_JOB_A_URL" in p or "SCHEDULER_API_URL" in p][:1]
        name = next(iter(env))
        assert problem.startswith(f"{name}: "), problem
        assert says in problem, problem


@pytest.mark.parametrize(
    "url",
    ["http://b\u00fccher.example/x", "http://app:8000/api", "https://10.0.0.1/x", "http://[::1]:8080/x",
     "http://my_service.internal./x", "http://u:p@h/x"],
)
def test_urls_the_client_can_send_are_accepted(url: str) -> None:
    settings = config.load({**BASE, "SCHEDULER_JOB_A_URL": url})
    assert settings.jobs[0].url == url
    assert check_url(url) is None


def test_a_password_in_a_refused_url_is_not_shown() -> None:
    (problem,) = problems(SCHEDULER_JOB_A_URL="http://user:hunter22@a..b/x")
    assert "hunter22" not in problem


def test_client_settings_default_to_off() -> None:
    s = config.load(BASE)
    assert (s.tls_client_cert, s.tls_client_key, s.http_proxy, s.no_proxy, s.traceparent) == (None, None, None, "", False)


def test_proxy_settings_are_read_and_the_proxy_url_is_a_secret() -> None:
    s = config.load({**BASE, "SCHEDULER_HTTP_PROXY": "http://u:pw-123456@proxy:3128",
                     "SCHEDULER_NO_PROXY": "app, .internal", "SCHEDULER_TRACEPARENT": "true"})
    assert (s.http_proxy, s.no_proxy, s.traceparent) == ("http://u:pw-123456@proxy:3128", "app, .internal", True)
    assert "pw-123456" not in repr(s)
    assert "pw-123456" in config.secret_values(s)


@pytest.mark.parametrize(
    "proxy, says",
    [("https://proxy:3128", "expected an http:// proxy URL"), ("http://proxy:3128/path", "without a path"),
     ("http://secret-pw@pro..xy:3128", "an empty label")],
)
def test_a_bad_proxy_url_is_refused_without_showing_it(proxy: str, says: str) -> None:
    (problem,) = problems(SCHEDULER_HTTP_PROXY=proxy)
    assert problem.startswith("SCHEDULER_HTTP_PROXY: ") and says in problem
    assert "secret-pw" not in problem


def test_client_certificate_files_are_checked_at_load(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("client")
    cert_file, key_file, other_key = tmp_path / "c.pem", tmp_path / "k.pem", tmp_path / "other.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    ca.issue_cert("someone-else").private_key_pem.write_to_path(str(other_key))

    s = config.load({**BASE, "SCHEDULER_TLS_CLIENT_CERT": str(cert_file), "SCHEDULER_TLS_CLIENT_KEY": str(key_file)})
    assert (s.tls_client_cert, s.tls_client_key) == (str(cert_file), str(key_file))

    (mismatch,) = problems(SCHEDULER_TLS_CLIENT_CERT=str(cert_file), SCHEDULER_TLS_CLIENT_KEY=str(other_key))
    assert mismatch.startswith("SCHEDULER_TLS_CLIENT_CERT: cannot load the certificate")
    (missing,) = problems(SCHEDULER_TLS_CLIENT_CERT=str(tmp_path / "nope.pem"))
    assert missing.startswith("SCHEDULER_TLS_CLIENT_CERT: expected the path of a PEM file")
    (alone,) = problems(SCHEDULER_TLS_CLIENT_KEY=str(key_file))
    assert alone.startswith("SCHEDULER_TLS_CLIENT_KEY: set SCHEDULER_TLS_CLIENT_CERT too")
