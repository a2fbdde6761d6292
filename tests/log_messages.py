"""Every message the daemon logs at WARNING or above, read from the source with ast.

A call `<logger>.warning|error|exception|critical(<message>, ...)` anywhere in scheduler/ gives
its message: a string as written; an f-string by its longest literal part (the rest is the
values of the moment); each branch of `a if c else b`. A message held in a variable is looked
up where VARIABLES says it comes from; a variable no entry names fails `messages()`, so a new
one is never left out silently.
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass

from tests.support import REPO_ROOT

LEVELS = ("warning", "error", "exception", "critical")
PACKAGE = REPO_ROOT / "scheduler"

# (file, variable) of a log call -> where its messages are written: (file, function), whose
# every string is one; or (file, "call:<name>"), the first argument of each `<name>(` call there.
VARIABLES: dict[tuple[str, str], list[tuple[str, str]]] = {
    # settings.warnings: the advice on missing auth and timeouts, and the ignored SCHEDULER_* names
    ("cli/program.py", "line"): [("config/advice.py", "setting_warnings"), ("config/names.py", "_IGNORED")],
    # the store's own warnings at the first lease call
    ("engine/lease.py", "warning"): [("store/redis/quarantine.py", "configuration_warnings"),
                                     ("store/sqlite/schema.py", "newer_problem")],
    # LeaseKeeper.failed(message, ...): a store call that failed, by step
    ("engine/lease.py", "message"): [("engine/lease.py", "call:failed")],
}


@dataclass(frozen=True)
class Message:
    file: str  # under scheduler/
    line: int
    level: str
    text: str  # the message, or its longest literal part


def _text(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        parts = [v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str)]
        return [re.sub(r"^\W+|\W+$", "", max(parts, key=len))] if parts else []
    if isinstance(node, ast.IfExp):
        return _text(node.body) + _text(node.orelse)
    return []


def _strings_in(tree: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    """The strings a function makes (not its docstring), each f-string by its longest literal part."""
    inner = {id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for v in node.values}
    doc = tree.body[0].value if tree.body and isinstance(tree.body[0], ast.Expr) else None
    found = []
    for node in ast.walk(tree):
        if node is doc or id(node) in inner:
            continue
        if isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str)):
            found += [t for t in _text(node) if len(t) >= 20]  # not a key, a format or a fragment
    return found


def _resolve(file: str, where: str) -> list[str]:
    tree = ast.parse((PACKAGE / file).read_text())
    if where.startswith("call:"):
        name = where[len("call:"):]
        return [t for node in ast.walk(tree)
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == name and node.args
                for t in _text(node.args[0])]
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == where:
            return _strings_in(node)
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == where for t in node.targets):
            return _text(node.value)
    raise AssertionError(f"scheduler/{file} has no {where}")


@functools.cache
def messages() -> list[Message]:
    out: list[Message] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        file = path.relative_to(PACKAGE).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in LEVELS and node.args):
                continue
            if node.func.attr == "warning" and isinstance(node.func.value, ast.Name) and node.func.value.id == "warnings":
                continue  # the warnings module, not a logger
            first = node.args[0]
            texts = _text(first)
            if not texts and isinstance(first, ast.Name):
                sources = VARIABLES.get((file, first.id))
                assert sources, f"scheduler/{file}:{node.lineno} logs the variable {first.id}: say in VARIABLES where it comes from"
                texts = [t for source in sources for t in _resolve(*source)]
            assert texts, f"scheduler/{file}:{node.lineno}: a log message this module cannot read: {ast.unparse(first)}"
            out += [Message(file, node.lineno, node.func.attr, t) for t in texts]
    return out
