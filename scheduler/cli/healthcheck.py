"""`healthcheck`: GET the local /healthz, reading only the port and the host."""

from __future__ import annotations

import os
import re
import sys

from ..config import loader as config
from .exits import EX_CONFIG, EX_FAILURE, EX_OK


_HTTP_LINE = re.compile(r"^[ \t]*(?:export[ \t]+)?SCHEDULER_HTTP_(?:PORT|HOST)[ \t]*=.*$", re.MULTILINE)


def healthcheck(env_file: str | None) -> int:
    """GET the local /healthz. Reads only SCHEDULER_HTTP_PORT and SCHEDULER_HTTP_HOST (process
    environment, else the env file), not the whole configuration: this runs every 30 s."""
    import http.client
    import io

    from dotenv import dotenv_values

    names = ("SCHEDULER_HTTP_PORT", "SCHEDULER_HTTP_HOST")
    values = {"SCHEDULER_HTTP_PORT": config.GLOBAL_DEFAULTS["SCHEDULER_HTTP_PORT"],
              "SCHEDULER_HTTP_HOST": config.GLOBAL_DEFAULTS["SCHEDULER_HTTP_HOST"]}
    path = env_file if env_file is not None else (".env" if os.path.isfile(".env") else None)
    if path is not None and not all(n in os.environ for n in names):
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.reason if isinstance(exc, UnicodeDecodeError) else exc.strerror
            print(f"config error: --env-file: cannot read {path!r}: {why}", file=sys.stderr)
            return EX_CONFIG
        lines = "\n".join(_HTTP_LINE.findall(text))
        if "${" in lines:  # it may refer to other names in the file: python-dotenv reads it all
            found = dotenv_values(stream=io.StringIO(text), interpolate=True)
        else:
            found = dotenv_values(stream=io.StringIO(lines), interpolate=False)
        values.update({n: found[n] or "" for n in names if n in found})
    values.update({n: os.environ[n] for n in names if n in os.environ})
    port_text, host = (values["SCHEDULER_HTTP_PORT"] or "").strip(), (values["SCHEDULER_HTTP_HOST"] or "").strip()
    if not port_text.isdigit() or int(port_text) > 65535:
        print("config error: SCHEDULER_HTTP_PORT: expected a port number 0-65535", file=sys.stderr)
        return EX_CONFIG
    if not host:
        print("config error: SCHEDULER_HTTP_HOST: expected an address, got an empty value", file=sys.stderr)
        return EX_CONFIG
    port = int(port_text)
    if port == 0:
        print("healthcheck: SCHEDULER_HTTP_PORT is 0, so there is no endpoint to ask", file=sys.stderr)
        return EX_FAILURE
    host = "127.0.0.1" if host == "0.0.0.0" else "::1" if host == "::" else host
    connection = http.client.HTTPConnection(host, port, timeout=3.0)
    try:
        connection.request("GET", "/healthz")
        status = connection.getresponse().status
    except (OSError, http.client.HTTPException) as exc:
        print(f"healthcheck: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EX_FAILURE
    finally:
        connection.close()
    if status != 200:
        print(f"healthcheck: /healthz answered {status}", file=sys.stderr)
    return EX_OK if status == 200 else EX_FAILURE
