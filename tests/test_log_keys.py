"""The daemon's log lines as log platforms read them: the text under `message` and the level
under `severity` beside the project's own `event` and `level`, the app's error excerpt
escaped once, and with SCHEDULER_TRACEPARENT=true the trace id the app's spans carry."""

from __future__ import annotations

import json
import logging

from scheduler.observe.logs import JsonFormatter, Redactor, TextFormatter
from tests.e2e import log_events
from tests.support import wait_until

# A quote, a backslash, a newline and a control character: the excerpt escapes the control
# characters (SPEC 7) and leaves the rest as the app wrote it.
APP_ERROR = b'no "such" task\\ here\nline two\x01end'
EXCERPT = 'no "such" task\\ here\\nline two\\x01end'


def env(receiver_url: str, tmp_path, fmt: str) -> dict[str, str]:
    return {
        "SCHEDULER_API_URL": receiver_url,
        "SCHEDULER_STATE_FILE": str(tmp_path / "state.db"),
        "SCHEDULER_HTTP_PORT": "0",
        "SCHEDULER_LOG_FORMAT": fmt,
        "SCHEDULER_TRACEPARENT": "true",
        "SCHEDULER_JOB_BROKEN_SCHEDULE": "every 2s",
        "SCHEDULER_JOB_BROKEN_URL": "/broken",
        "SCHEDULER_JOB_BROKEN_RETRIES": "1",
    }


def answer_500(request):
    return 500, {"Content-Type": "text/plain; charset=utf-8", "Retry-After": "0"}, APP_ERROR


def sent_trace_ids(receiver, slot: str) -> set[str]:
    return {r.header("traceparent").split("-")[1] for r in receiver.requests if r.header("x-scheduler-slot") == slot}


def test_a_json_fired_line_has_message_severity_the_excerpt_escaped_once_and_the_trace_id(receiver, daemon_factory, tmp_path):
    receiver.set_handler(answer_500)
    daemon = daemon_factory(env(receiver.url, tmp_path, "json"), cwd=tmp_path)
    fired = wait_until(lambda: log_events(daemon, "fired"), timeout=15)[0]
    daemon.terminate()
    daemon.wait(15)

    raw = next(line for line in daemon.output().splitlines() if line.startswith("{") and '"fired"' in line)
    assert json.loads(raw) == fired  # the whole line is one JSON object
    assert fired["message"] == fired["event"] == "fired"
    assert (fired["level"], fired["severity"]) == ("warning", "WARNING")
    # RETRIES=1, and the default RETRY_FOR (half the 2 s period) may add one at its deadline
    assert fired["attempt"] >= 2 and fired["http_status"] == 500
    # Decoded once, the excerpt is the SPEC's text: control characters as \n and \x01, the
    # quote and the backslash as the app sent them.
    assert fired["excerpt"] == EXCERPT
    # Both attempts of the slot carried one trace id; the fired and retrying lines name it.
    assert sent_trace_ids(receiver, fired["slot"]) == {fired["trace_id"]}
    retrying = [e for e in log_events(daemon, "retrying") if e["slot"] == fired["slot"]]
    assert retrying and all(e["trace_id"] == fired["trace_id"] and e["message"] == "retrying" for e in retrying)
    # Lines that are not about a fire carry no trace id.
    leader = log_events(daemon, "became leader")
    assert leader and all("trace_id" not in e for e in leader)


def test_a_text_fired_line_shows_the_excerpt_escaped_once_and_the_trace_id(receiver, daemon_factory, tmp_path):
    receiver.set_handler(answer_500)
    daemon = daemon_factory(env(receiver.url, tmp_path, "text"), cwd=tmp_path)
    daemon.wait_for_output(" fired ", timeout=15)
    daemon.terminate()
    daemon.wait(15)

    line = next(line for line in daemon.output().splitlines() if " fired " in line)
    slot = line.split(" slot=")[1].split(" ")[0]
    (trace,) = sent_trace_ids(receiver, slot)
    assert f" trace_id={trace} " in line
    assert line.endswith(f" excerpt={EXCERPT}")


def test_a_secret_with_characters_json_escapes_is_scrubbed_from_both_formats() -> None:
    """The JSON line holds `"`, `\\` and non-ASCII escaped: the secret must be found in that form too."""
    secrets = ['pa"zq\\word', "pässwörd-1"]
    record = logging.LogRecord("scheduler.store", logging.WARNING, "", 0, "cannot connect: %s", (
        f"redis://:{secrets[0]}@127.0.0.1 then {secrets[1]}",), None)
    for formatter in (JsonFormatter(), TextFormatter()):
        formatter.redactor = Redactor(secrets)
        line = formatter.format(record)
        assert ":***@127.0.0.1 then ***" in line, line
        assert "zq" not in line and "rd-1" not in line, line
