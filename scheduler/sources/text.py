"""A document of jobs from its bytes: JSON or YAML, with a size limit and a clear error.

A JSON document's `jobs` list can be decoded in pieces of some hundred jobs, each by
json.loads, so that a worker thread decoding 100,000 jobs hands the GIL back to the event
loop between two pieces: one `json.loads` of the whole 9 MB document holds it for about
100 ms, and every fire due meanwhile is that late (measured: the loop's longest stall
100 ms whole, 6-9 ms in pieces, for the same CPU). Anything this path does not expect
(another shape, an error) is decoded again by `json.loads` whole, whose result or error
message is then the answer: both paths give the same value.
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
_SPLIT = re.compile(r"\}[ \t\n\r]*,[ \t\n\r]*\{")  # where one job ends and the next begins, most often
CHUNK_CHARS = 64 * 1024  # about 700 jobs of the size of a usual one


class DocumentError(ValueError):
    """The document as a whole cannot be used: unreadable, not parsable, or not {"jobs": [...]}."""


def parse_bytes(data: bytes, kind: str, in_steps: bool = False) -> Any:
    """The document's data; kind is `json` or `yaml`. `in_steps`: decode a JSON document's
    jobs in pieces (see the module's docstring), for a worker thread beside a running loop."""
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
    """json.loads(text) for a top-level object, its "jobs" list decoded in pieces; raises
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
    """The items of a list whose `[` ends before i, and the index after its `]`.

    Items go by the hundred: up to a `}, {` found past the next CHUNK_CHARS, the text is
    decoded by json.loads as a list of its own (about 1 ms with the GIL held). Such a
    split may fall inside a string or an inner object; then that piece is no valid list,
    and the items up to past the split are decoded one by one instead."""
    ws: Callable[[str, int], Any] = _WS.match  # always a match: it may be empty
    scan = _DECODER.scan_once  # type: ignore[attr-defined]  # the C scanner: (value, end), or StopIteration
    items: list[Any] = []
    i = ws(text, i).end()
    if text[i] == "]":
        return items, i + 1
    while True:
        step = CHUNK_CHARS
        split = _SPLIT.search(text, i + step)
        while split is None and step > 256:  # the last items of the list: smaller pieces
            step //= 4
            split = _SPLIT.search(text, i + step)
        if split is not None:
            try:
                items += json.loads("[" + text[i:split.start() + 1] + "]")
                i = split.end() - 1  # the `{` of the next item
                continue
            except (ValueError, RecursionError):
                pass
        past = split.end() if split is not None else len(text)
        while i < past:
            try:
                item, i = scan(text, i)
            except StopIteration:
                raise ValueError("expected a value") from None
            items.append(item)
            i = ws(text, i).end()
            if text[i] == "]":
                return items, i + 1
            if text[i] != ",":
                raise ValueError("expected a comma")
            i = ws(text, i + 1).end()


def _end(text: str, i: int, doc: dict) -> dict:
    if _WS.match(text, i).end() != len(text):  # type: ignore[union-attr]
        raise ValueError("extra data")
    return doc


def _yaml(data: bytes) -> Any:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: about 10 times faster
    try:
        doc = yaml.load(data, Loader=loader)  # noqa: S506 - a SafeLoader: plain data only
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
        reason = getattr(exc, "problem", None) or type(exc).__name__
        raise DocumentError(f"not valid YAML{at}: {reason}") from None
    except RecursionError:
        raise DocumentError("not valid YAML: nested too deeply") from None
    if b"&" in data:  # no anchor, no alias: nothing is shared, and the walk below is not needed
        check_expansion(doc, expanded_limit(len(data)))
    return doc


def expanded_limit(size: int) -> int:
    """The most values a document of `size` bytes may hold once its YAML aliases are
    expanded. Written out in full, each value takes at least two bytes (a character and a
    separator), so a document without aliases never comes near; a 974-byte nest of aliases
    that expands to 9^9 values (1.45 GB once validated) is refused."""
    return 4 * size + 10_000


def check_expansion(doc: Any, limit: int) -> None:
    """Raise DocumentError when `doc`, with every shared value (a YAML alias) counted once
    per place it appears, holds more than `limit` values, or contains itself. The loader
    shares one object per anchor, so the loaded data is small; what costs memory is every
    later walk over it (validating a job's headers writes them out as text). The count is
    kept per object, so this walk visits each object once, however often it is shared."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()
    stack: list[tuple[Any, bool]] = [(doc, False)]
    while stack:
        node, done = stack.pop()
        if type(node) is dict:
            children: Any = (*node.keys(), *node.values())
        elif type(node) is list:
            children = node
        else:
            continue
        key = id(node)
        if done:
            open_.discard(key)
            total = 1 + sum(sizes.get(id(c), 1) for c in children)
            if total > limit:
                raise DocumentError(f"YAML aliases expand the document to over {limit} values "
                                    "(anchors that repeat a large value are refused)")
            sizes[key] = total
            continue
        if key in sizes:
            continue
        if key in open_:
            raise DocumentError("a YAML alias refers to a value that contains it; "
                                "a document of jobs cannot be recursive")
        open_.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children if type(c) in (dict, list) and id(c) not in sizes)
