"""The folder rules of the package, held over its `ast` imports: every import, at the top,
inside a function or under TYPE_CHECKING. A rule a reviewer has to remember is a rule that
breaks, so each one is here.

    env / .env / jobs file / app's URL -> config, sources -> schedule -> engine -> store -> dispatch
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "scheduler"

# wing -> the other wings it may import. `version` is the package's __init__ (__version__).
EVERYTHING = {"model", "background", "collector", "version", "schedule", "http.client", "http.server", "config",
              "store", "store.redis", "store.sqlite", "observe", "dispatch", "origins", "sources", "engine", "control",
              "notify"}
ALLOWED: dict[str, set[str]] = {
    "version": set(),
    "model": set(),  # the values every wing speaks: stdlib only
    "background": set(),
    "collector": set(),
    "schedule": {"model"},  # pure slot math: never "now", never I/O
    "http.client": set(),  # stdlib and httptools
    "http.server": set(),
    "http": set(),  # the face of both sides: a docstring
    # config reads a URL as the client will send it (one reading of a URL, never two)
    "config": {"schedule", "model", "http.client"},
    "store": {"model"},  # the protocol and the read-only view
    "store.redis": {"store", "model", "version"},  # the backends never import each other
    "store.sqlite": {"store", "model"},
    "observe": {"http.server"},  # observe.routes only, see below
    "dispatch": {"config", "http.client", "model", "origins", "version"},
    "origins": {"http.client"},  # the calls to each origin: limits and their adaptation
    "sources": {"config", "schedule", "http.client", "model", "background", "collector", "version"},
    # the engine: the store's protocol, never a backend, never http.server, control or cli
    # the leader's events: the engine and the watcher call in through a Protocol and a callback
    "notify": {"config", "http.client", "model", "version", "dispatch", "observe"},
    "engine": {"store", "schedule", "dispatch", "observe", "config", "model", "background", "collector"},
    "control": {"config", "sources", "store", "schedule", "observe", "http.server", "model", "version"},
    "cli": EVERYTHING,
    "main": {"cli"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def wing(module: str) -> str:
    parts = module.split(".")[1:]
    if not parts:
        return "version"
    if parts[0] in ("store", "http") and len(parts) > 1 and parts[1] in ("redis", "sqlite", "client", "server"):
        return f"{parts[0]}.{parts[1]}"
    if parts[0] == "__main__":
        return "main"
    return parts[0]


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """Every module of the package that `module` imports, wherever the import stands."""
    is_face = path.name == "__init__.py"
    package = module if is_face else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "scheduler"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.split(".")[0] == "scheduler":
                target = node.module
            else:
                continue
            subs = {f"{target}.{a.name}" for a in node.names} & known
            found |= subs if subs and len(subs) == len(node.names) else {target} | subs
    return {m for m in found if m in known and m != module}


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: imports_of(m, p, known) for m, p in mods.items()}


def violations(edges: dict[str, set[str]]) -> list[str]:
    out = []
    for mod, targets in sorted(edges.items()):
        mine = wing(mod)
        for target in sorted(targets):
            theirs = wing(target)
            if theirs == mine:
                continue
            if theirs not in ALLOWED.get(mine, set()):
                out.append(f"{mod} ({mine}) imports {target} ({theirs})")
            elif theirs == "http.server" and mine == "observe" and mod != "scheduler.observe.routes":
                out.append(f"{mod}: only observe.routes may reach the HTTP server")
            elif mine == "engine" and target == "scheduler.observe.routes":
                out.append(f"{mod}: the engine never reaches the HTTP server, not even through observe.routes")
        if mod.count(".") and (PKG / Path(*mod.split(".")[1:]) / "__init__.py").exists():
            foreign = [t for t in targets if not t.startswith(mod + ".")]
            if foreign:
                out.append(f"{mod}: a face imports only its own modules, not {foreign}")
    return out


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_every_import_follows_the_folder_rules():
    assert violations(graph()) == []


def test_no_import_cycle_not_even_under_type_checking():
    assert cycles(graph()) == []


def test_every_module_sits_in_a_wing_with_rules():
    assert {wing(m) for m in modules()} <= set(ALLOWED)


@pytest.mark.parametrize("bad, expected", [
    ({"scheduler.engine.leader": {"scheduler.store.redis.store"}}, "imports scheduler.store.redis.store (store.redis)"),
    ({"scheduler.store.sqlite.store": {"scheduler.store.redis.scripts"}}, "(store.redis)"),
    ({"scheduler.schedule.slots": {"scheduler.config.loader"}}, "(config)"),
    ({"scheduler.engine.fires": {"scheduler.observe.routes"}}, "not even through observe.routes"),
    ({"scheduler.observe.metrics": {"scheduler.http.server.server"}}, "only observe.routes"),
    ({"scheduler.model": {"scheduler.schedule.slots"}}, "(schedule)"),
])
def test_the_rules_catch_a_wrong_import(bad, expected):
    (problem,) = violations(bad)
    assert expected in problem


def test_the_cycle_check_sees_one_hidden_behind_type_checking(tmp_path):
    mods = {"a": tmp_path / "a.py", "b": tmp_path / "b.py"}
    mods["a"].write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import B\n")
    mods["b"].write_text("def f():\n    from .a import A\n")
    known = {"pkg.a", "pkg.b"}
    edges = {f"pkg.{m}": imports_of(f"pkg.{m}", p, known) for m, p in mods.items()}
    assert cycles(edges) == [["pkg.a", "pkg.b"]]


def test_importing_the_engine_loads_no_backend_no_http_server_and_no_control():
    code = ("import sys, scheduler.engine, scheduler.store, scheduler.observe; "
            "print(sorted(m for m in sys.modules if m.startswith(('scheduler.store.redis', 'scheduler.store.sqlite', "
            "'scheduler.http.server', 'scheduler.control', 'scheduler.cli', 'scheduler.observe.routes', 'redis'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stdout


def borrowed(path: Path) -> list[str]:
    """What a module of the Redis store takes from another object's insides: a private
    attribute (`_x`) read on anything but `self`, or a bare class-level annotation (an
    attribute declared for a mixin to borrow from the class that mixes it) outside a
    dataclass."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                out.append(f"{path.name}:{node.lineno} reads {ast.unparse(node)}")
        elif isinstance(node, ast.ClassDef) and not any("dataclass" in ast.unparse(d) for d in node.decorator_list):
            bare = [s.target for s in node.body if isinstance(s, ast.AnnAssign) and s.value is None]
            out += [f"{path.name}:{t.lineno} declares {ast.unparse(t)} in {node.name}" for t in bare]
    return out


def test_the_redis_stores_parts_borrow_nothing_from_each_other():
    # Each part depends on the key names (Keys) and one caller, as redis-py's command
    # mixins depend on execute_command only; the store composes them.
    assert [b for p in sorted((PKG / "store" / "redis").glob("*.py")) for b in borrowed(p)] == []
