"""The query parameters of the control API's GET routes: each a whole number in a range, or
the request is a 400 with a sentence naming the parameter."""

from __future__ import annotations

from .operations import BadRequest
from ..http.server.server import Request

MAX_ID = 2**53  # above any id a store hands out, and within what SQLite and JSON hold exactly


def whole_number(request: Request, name: str, default: int, most: int) -> int:
    """`?name=` as a whole number from 1 to `most`; `default` when it is not given (0 for
    none, which no given value can be)."""
    given = request.query.get(name)
    if not given:
        return default
    text = given[-1].strip()
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= most:
        raise BadRequest(f"{name} must be a whole number from 1 to {most}")
    return int(text)
