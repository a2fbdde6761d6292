"""Logs: one event a line, JSON or text, every known secret scrubbed."""

from __future__ import annotations

from collections.abc import Sequence

import json
import logging
import sys
from datetime import datetime, UTC





_json_string = json.encoder.encode_basestring_ascii  # what json.dumps writes for a str
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def _extras(record: logging.LogRecord) -> dict:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class Redactor(logging.Filter):
    """Replaces every known secret with *** in each record, whatever path it came by
    (a message, an extra field, an exception from a library that quotes a URL)."""

    def __init__(self, secrets: list[str]):
        super().__init__()
        # A JSON line holds a secret as JSON wrote it: a quote, a backslash or a non-ASCII
        # character escaped, which the plain value would not match.
        kept = {s for s in secrets if s and len(s) >= 4}
        forms = kept | {_json_string(s)[1:-1] for s in kept}
        self.secrets = sorted(forms, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text


class _Scrubbing(logging.Formatter):
    redactor: Redactor | None = None

    def _format(self, record: logging.LogRecord) -> str:
        raise NotImplementedError

    def format(self, record: logging.LogRecord) -> str:
        line = self._format(record)
        return self.redactor.scrub(line) if self.redactor else line


class JsonFormatter(_Scrubbing):
    def _format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        # `event` and `level` are this project's own keys (kept for existing queries);
        # `message` and `severity` are what Cloud Logging, Datadog and Elastic read as the
        # line's text and level without a remapping rule.
        out = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "severity": record.levelname,
            "logger": record.name,
            "event": text,
            "message": text,
        }
        out.update(_extras(record))
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class TextFormatter(_Scrubbing):
    def _format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S.%f")[:-3]
        fields = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        line = f"{ts} {record.levelname:<7} {record.getMessage()}" + (f"  {fields}" if fields else "")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup_logging(fmt: str, level: str, secrets: Sequence[str] = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    formatter = JsonFormatter() if fmt == "json" else TextFormatter()
    formatter.redactor = Redactor(list(secrets))
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Library chatter (connection pools, request lines) carries URLs and headers; keep it quiet.
    for name in ("httpx", "httpcore", "asyncio"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
