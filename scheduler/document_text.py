"""A document of jobs from its bytes: JSON or YAML, with a size limit and a clear error.

A JSON document's `jobs` list is decoded one job at a time by the standard library's own
decoder (its C scanner for each value), so a worker thread decoding 100,000 jobs hands the
GIL back to the event loop between two jobs; one `json.loads` of the whole 9 MB document
holds it for about 90 ms, long enough to make every fire of that moment late. Anything
this path does not expect (another shape, an error) is decoded again by `json.loads`,
whose result or error message is then the answer: both paths give the same value.
"""

from __future__ import annotations

import json
import re
from json.decoder import scanstring  # type: ignore[attr-defined]
from collections.abc import Callable
from typing import Any

MAX_DOCUMENT_BYTES = 64 * 1024 * 1024  # about 640 bytes a job for 100,000 jobs, with room
_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


class DocumentError(ValueError):
    """The document as a whole cannot be used: unreadable, not parsable, or not {"jobs": [...]}."""


def parse_bytes(data: bytes, kind: str, in_steps: bool = False) -> Any:
    """The document's data; kind is `json` or `yaml`. `in_steps`: decode a JSON document's
    jobs one by one (see the module's docstring): 4 times the CPU of json.loads, spent in a
    worker thread while a leader fires, for the refresh of a running daemon."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise DocumentError(f"the document is {len(data)} bytes, over the limit of {MAX_DOCUMENT_BYTES}")
    if kind == "yaml":
        return _yaml(data)
    if in_steps:
        try:
            return loads_in_steps(data.decode("utf-8"))
        except (ValueError, IndexError, RecursionError):  # decoded again below, for its message
            pass
    try:
        return json.loads(data)
    except UnicodeDecodeError:
        raise DocumentError("not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise DocumentError(f"not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise DocumentError("not valid JSON: nested too deeply") from None


def loads_in_steps(text: str) -> Any:
    """json.loads(text) for a top-level object, its "jobs" list decoded item by item; raises
    ValueError (or IndexError at the end of the text) where the text is not such a document."""
    ws: Callable[[str, int], Any] = _WS.match  # always a match: it may be empty
    value = _DECODER.raw_decode
    i = ws(text, 0).end()
    if text[i] != "{":
        raise ValueError("not an object")
    doc: dict[str, Any] = {}
    i = ws(text, i + 1).end()
    if text[i] == "}":
        return _end(text, i + 1, doc)
    while True:
        if text[i] != '"':
            raise ValueError("expected a key")
        key, i = scanstring(text, i + 1)
        i = ws(text, i).end()
        if text[i] != ":":
            raise ValueError("expected a colon")
        i = ws(text, i + 1).end()
        if key == "jobs" and text[i] == "[":
            doc[key], i = _items(text, i + 1)
        else:
            doc[key], i = value(text, i)
        i = ws(text, i).end()
        if text[i] == "}":
            return _end(text, i + 1, doc)
        if text[i] != ",":
            raise ValueError("expected a comma")
        i = ws(text, i + 1).end()


def _items(text: str, i: int) -> tuple[list, int]:
    """The items of a list whose `[` ends before i, and the index after its `]`."""
    ws: Callable[[str, int], Any] = _WS.match  # always a match: it may be empty
    scan = _DECODER.scan_once  # type: ignore[attr-defined]  # the C scanner: (value, end), or StopIteration
    items: list[Any] = []
    append = items.append
    # json.loads shares one string per distinct key across the document; the scanner, called
    # per item, shares them within an item only: 18 MB more for 100,000 jobs, unless shared here.
    keys: dict[str, str] = {}
    key = keys.setdefault
    i = ws(text, i).end()
    if text[i] == "]":
        return items, i + 1
    try:
        while True:
            item, i = scan(text, i)
            append({key(k, k): v for k, v in item.items()} if type(item) is dict else item)
            c = text[i]
            if c == ",":  # compact: no white space to skip
                i += 1
                if text[i] in " \t\n\r":
                    i = ws(text, i).end()
                continue
            if c in " \t\n\r":
                i = ws(text, i).end()
                c = text[i]
                if c == ",":
                    i = ws(text, i + 1).end()
                    continue
            if c == "]":
                return items, i + 1
            raise ValueError("expected a comma")
    except StopIteration:
        raise ValueError("expected a value") from None


def _end(text: str, i: int, doc: dict) -> dict:
    if _WS.match(text, i).end() != len(text):  # type: ignore[union-attr]
        raise ValueError("extra data")
    return doc


def _yaml(data: bytes) -> Any:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: about 10 times faster
    try:
        return yaml.load(data, Loader=loader)  # noqa: S506 - a SafeLoader: plain data only
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
        reason = getattr(exc, "problem", None) or type(exc).__name__
        raise DocumentError(f"not valid YAML{at}: {reason}") from None
