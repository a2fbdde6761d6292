"""The docs pages (docs/) and env.example stay in step with the configuration the code accepts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scheduler.config.loader import GLOBAL_DEFAULTS, JOB_FIELDS, SECRETS
from tests.support import REPO_ROOT, run_cli

README = REPO_ROOT / "README.md"
DOCS = REPO_ROOT / "docs"
ENV_EXAMPLE = REPO_ROOT / "env.example"

GLOBAL_NAMES = list(GLOBAL_DEFAULTS) + [f"{name}_FILE" for name in SECRETS]

# `SCHEDULER_X=value` or `# SCHEDULER_X=value`, one per line.
_ASSIGNMENT = re.compile(r"^\s*(?:#\s*)?(SCHEDULER_[A-Z0-9_<>]+)=(.*)$")


def _mentions(text: str, name: str) -> bool:
    """`name` as a whole variable name (SCHEDULER_API_TOKEN does not match inside
    SCHEDULER_API_TOKEN_FILE)."""
    return re.search(rf"(?<![A-Z0-9_]){re.escape(name)}(?![A-Z0-9_])", text) is not None


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return re.sub(r"\s+#.*$", "", value)  # an unquoted value's trailing comment


def _assignments(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        m = _ASSIGNMENT.match(line)
        if m:
            found.setdefault(m.group(1), []).append(_unquote(m.group(2)))
    return found


@pytest.fixture(scope="module")
def readme() -> str:
    return README.read_text()


@pytest.fixture(scope="module")
def configuration() -> str:
    return (DOCS / "configuration.md").read_text()


@pytest.fixture(scope="module")
def jobs_page() -> str:
    return (DOCS / "jobs.md").read_text()


@pytest.fixture(scope="module")
def http_call() -> str:
    return (DOCS / "http-call.md").read_text()


@pytest.fixture(scope="module")
def env_example() -> str:
    return ENV_EXAMPLE.read_text()


@pytest.mark.parametrize("name", GLOBAL_NAMES)
def test_global_setting_is_documented_on_the_configuration_page(configuration: str, name: str) -> None:
    assert _mentions(configuration, name), f"docs/configuration.md does not mention {name}"


@pytest.mark.parametrize("name", GLOBAL_NAMES)
def test_global_setting_is_listed_in_env_example(env_example: str, name: str) -> None:
    assert name in _assignments(env_example), f"env.example has no `{name}=` line"


@pytest.mark.parametrize("field", list(JOB_FIELDS))
def test_job_field_is_documented_on_the_jobs_page(jobs_page: str, field: str) -> None:
    assert f"`{field}`" in jobs_page, f"docs/jobs.md does not document job field {field}"


@pytest.mark.parametrize("field", list(JOB_FIELDS))
def test_job_field_is_listed_in_env_example(env_example: str, field: str) -> None:
    assert f"SCHEDULER_JOB_<NAME>_{field}" in _assignments(env_example), (
        f"env.example has no `SCHEDULER_JOB_<NAME>_{field}=` line"
    )


@pytest.mark.parametrize("name", [n for n, d in GLOBAL_DEFAULTS.items() if d is not None])
def test_env_example_shows_the_code_default(env_example: str, name: str) -> None:
    values = _assignments(env_example).get(name)
    assert values, f"env.example has no `{name}=` line"
    assert values == [GLOBAL_DEFAULTS[name]] * len(values), (
        f"env.example shows {name}={values}, the code's default is {GLOBAL_DEFAULTS[name]!r}"
    )


@pytest.mark.parametrize("field", [f for f, d in JOB_FIELDS.items() if d is not None])
def test_env_example_shows_the_job_field_default(env_example: str, field: str) -> None:
    name = f"SCHEDULER_JOB_<NAME>_{field}"
    values = _assignments(env_example).get(name)
    assert values == [JOB_FIELDS[field]], (
        f"env.example shows {name}={values}, the code's default is {JOB_FIELDS[field]!r}"
    )


def test_env_example_is_a_valid_configuration(tmp_path: Path) -> None:
    result = run_cli(["check", "--env-file", str(ENV_EXAMPLE.resolve())], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "configuration OK" in result.stdout
    assert not list(tmp_path.iterdir()), "check must not create files"


def _verify_snippet(page: str) -> str:
    """The Python block of "The HTTP call" that shows how an app verifies a signature."""
    blocks = re.findall(r"```python\n(.*?)```", page, re.S)
    (block,) = [b for b in blocks if "Webhook(secret).verify(" in b]
    return block


def test_no_page_shows_the_verify_call_that_parses_json() -> None:
    # Without json_parse=False the library parses the body first: JSONDecodeError on every
    # GET or DELETE job (empty body) and on a plain-text BODY.
    for path in [README, *DOCS.rglob("*.md")]:
        for call in re.findall(r"Webhook\(secret\)\.verify\([^)]*\)", path.read_text()):
            assert "json_parse=False" in call, (path.name, call)


def test_the_verify_snippet_accepts_every_kind_of_call(http_call: str, tmp_path: Path) -> None:
    import base64
    import json
    import time

    from standardwebhooks.webhooks import WebhookVerificationError

    from tests.support import Daemon, Receiver

    secret = "whsec_" + base64.b64encode(b"k" * 24).decode()
    snippet = _verify_snippet(http_call)
    with Receiver() as app:
        env = {
            "SCHEDULER_API_URL": app.url,
            "SCHEDULER_SIGNING_SECRET": secret,
            "SCHEDULER_STATE_FILE": str(tmp_path / "state.db"),
            "SCHEDULER_HTTP_PORT": "0",
            "SCHEDULER_LOG_FORMAT": "json",
        }
        jobs = {"get": ("GET", None), "delete": ("DELETE", None), "post": ("POST", None), "text": ("PUT", "plain words")}
        for name, (method, body) in jobs.items():
            env[f"SCHEDULER_JOB_{name.upper()}_SCHEDULE"] = "every 1s"
            env[f"SCHEDULER_JOB_{name.upper()}_URL"] = f"/{name}"
            env[f"SCHEDULER_JOB_{name.upper()}_METHOD"] = method
            if body:
                env[f"SCHEDULER_JOB_{name.upper()}_BODY"] = body
        with Daemon(env, cwd=tmp_path):
            app.wait_for(lambda reqs: {r.path for r in reqs} >= {f"/{n}" for n in jobs}, timeout=20)
        requests = {r.path: r for r in app.requests}
    verify_only = "\n".join(line for line in snippet.splitlines() if not line.startswith("payload"))
    for name in jobs:
        request = requests[f"/{name}"]
        scope = {"secret": secret, "body": request.body, "headers": request.headers, "json": json}
        if name == "text":  # a raw BODY is the app's own format; only the check applies
            exec(verify_only, scope)
        else:
            exec(snippet, scope)  # the page's lines, as written
            assert scope["payload"] == (json.loads(request.body) if request.body else None)
        # The page says the token is the store's clock in ms plus the acquisitions.
        token = int(request.header("X-Scheduler-Fencing-Token"))
        assert abs(token - time.time() * 1000) < 10 * 60 * 1000, token
        tampered = {**request.headers, "webhook-id": request.header("webhook-id") + "x"}
        with pytest.raises(WebhookVerificationError):
            exec(snippet, {**scope, "headers": tampered})


def test_the_fencing_token_is_described_as_seeded_from_the_clock(http_call: str) -> None:
    # the Redis ACQUIRE script and LocalStore.acquire seed the epoch with the clock in ms.
    assert "fencing counter" not in http_call
    assert re.search(r"seeds? the epoch\s+with the store's clock in milliseconds", http_call)
    envelope = re.search(r'"fencing_token": (\d+)', http_call)
    assert envelope and int(envelope.group(1)) > 2**32, "the envelope example shows a small counter"


def test_the_state_format_table_names_the_formats_the_code_writes() -> None:
    from scheduler import __version__
    from scheduler.store.redis.scripts import FORMAT
    from scheduler.store.sqlite.schema import VERSION

    upgrades = (DOCS / "upgrades.md").read_text()
    minor = ".".join(__version__.split(".")[:2])
    row = re.search(rf"^\| {re.escape(minor)}\.x \| (\d+): .*\| (\d+): ", upgrades, re.MULTILINE)
    assert row, f"no row for {minor}.x in docs/upgrades.md's state format table"
    assert (int(row.group(1)), int(row.group(2))) == (FORMAT, VERSION)


RELEASE_DOCS = ("CHANGELOG.md", "COMPATIBILITY.md", "SECURITY.md")


def _slug(heading: str) -> str:
    """A heading's anchor as Markdown renderers make it: lower case, punctuation dropped."""
    return re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower()).replace(" ", "-")


def test_the_release_documents_are_linked_from_the_readme_and_their_links_resolve(readme: str) -> None:
    for name in RELEASE_DOCS:
        assert f"]({name})" in readme, f"README.md does not link {name}"
        text = (REPO_ROOT / name).read_text()
        for target, anchor in re.findall(r"\]\(([A-Za-z/._-]+\.md)(?:#([^)]+))?\)", text):
            assert (REPO_ROOT / target).is_file(), f"{name} links {target}, which is not there"
            if anchor:
                headings = (REPO_ROOT / target).read_text()
                anchors = {_slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", headings, re.MULTILINE)}
                assert anchor in anchors, f"{name} links {target}#{anchor}, which no heading makes"


def test_compatibility_covers_every_public_surface_before_and_after_1_0() -> None:
    text = (REPO_ROOT / "COMPATIBILITY.md").read_text()
    for surface in ("Environment names", "Metric names", "HTTP headers sent to the app", "CLI JSON output",
                    "`/api/v1`", "State formats", "Log keys"):
        assert surface in text, f"COMPATIBILITY.md says nothing of {surface}"
    assert "before 1.0" in text and "from 1.0" in text


def test_security_policy_names_a_private_channel_no_host_and_the_versions_fixed() -> None:
    from scheduler import __version__

    text = (REPO_ROOT / "SECURITY.md").read_text()
    assert "open a private security advisory on the repository's host" in text
    assert not re.search(r"https?://|github|gitlab|bitbucket|codeberg|@", text, re.I), "SECURITY.md names a host or address"
    minor = ".".join(__version__.split(".")[:2])
    assert re.search(rf"^\| {re.escape(minor)}\.x\b.*\| yes", text, re.MULTILINE), f"SECURITY.md does not say {minor}.x gets fixes"
    for topic in ("SCHEDULER_API_TOKEN", "Documents are untrusted", "SCHEDULER_CONTROL_TOKEN", "state store's records"):
        assert topic in text, f"SECURITY.md does not cover {topic}"
