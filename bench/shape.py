#!/usr/bin/env python3
"""The shape of `scheduler/`: what is over the size limits, and any import cycle.

Prints modules over 300 lines, classes over 250, functions (and methods) over 60, and the
cycles among the package's modules. Read with `ast`, nothing is imported or run.

A cycle is counted among the imports that run when a module is loaded: those at module
level, outside `if TYPE_CHECKING:`. Imports inside a function, and those only for the type
checker, are listed apart (they cannot fail at import time, but they still tie modules
together).

    uv run python bench/shape.py
    uv run python bench/shape.py --modules 300 --classes 250 --functions 60
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "scheduler"


def _span(node: ast.AST) -> int:
    """Lines a definition takes, decorators included."""
    first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])  # type: ignore[attr-defined]
    return node.end_lineno - first + 1  # type: ignore[attr-defined]


def _definitions(tree: ast.Module) -> Iterator[tuple[str, str, ast.AST]]:
    """(kind, qualified name, node) for every class and function, nested ones too."""
    def walk(node: ast.AST, prefix: str) -> Iterator[tuple[str, str, ast.AST]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                yield "class", prefix + child.name, child
                yield from walk(child, prefix + child.name + ".")
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                yield "function", prefix + child.name, child
                yield from walk(child, prefix + child.name + ".")
            else:
                yield from walk(child, prefix)
    yield from walk(tree, "")


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _targets(node: ast.Import | ast.ImportFrom, modules: set[str], package: str) -> set[str]:
    """The package's modules (dotted, below `scheduler`) that an import statement names;
    `package` is the importing module's own package, for relative imports."""
    root = PACKAGE.name
    if isinstance(node, ast.Import):
        return {a.name[len(root) + 1:] for a in node.names if a.name.startswith(root + ".")} & modules
    if node.level:
        parts = package.split(".") if package else []
        parts = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
        base = ".".join(parts + ([node.module] if node.module else []))
    elif (node.module or "").split(".")[0] == root:
        base = (node.module or "")[len(root):].lstrip(".")
    else:
        return set()
    subs = {f"{base}.{a.name}" if base else a.name for a in node.names} & modules
    return subs if subs else ({base} & modules)


def _imports(tree: ast.Module, modules: set[str], package: str) -> tuple[set[str], set[str]]:
    """(imports run at load time, imports inside functions or under TYPE_CHECKING)."""
    eager: set[str] = set()
    other: set[str] = set()

    def walk(node: ast.AST, deferred: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                (other if deferred else eager).update(_targets(child, modules, package))
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                walk(child, True)
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    walk(ast.Module(body=[stmt], type_ignores=[]), True)
                for stmt in child.orelse:
                    walk(ast.Module(body=[stmt], type_ignores=[]), deferred)
            else:
                walk(child, deferred)
    walk(tree, False)
    return eager, other - eager


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (or one importing itself), Tarjan's."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modules", type=int, default=300, help="module line limit (default 300)")
    ap.add_argument("--classes", type=int, default=250, help="class line limit (default 250)")
    ap.add_argument("--functions", type=int, default=60, help="function line limit (default 60)")
    a = ap.parse_args()

    files = sorted(PACKAGE.rglob("*.py"))
    name = {f: _module(f) for f in files}  # dotted below `scheduler`; a folder's face is the folder
    modules = set(name.values())
    trees = {name[f]: ast.parse(f.read_text(), str(f)) for f in files}
    lines = {name[f]: len(f.read_text().splitlines()) for f in files}
    packages = {name[f]: name[f] if f.name == "__init__.py" else name[f].rpartition(".")[0] for f in files}

    big_modules = sorted(((n, m) for m, n in lines.items() if n > a.modules), reverse=True)
    big: dict[str, list[tuple[int, str]]] = {"class": [], "function": []}
    limit = {"class": a.classes, "function": a.functions}
    for module, tree in trees.items():
        for kind, name, node in _definitions(tree):
            if _span(node) > limit[kind]:
                big[kind].append((_span(node), f"{module}.{name}"))

    eager: dict[str, set[str]] = {}
    every: dict[str, set[str]] = {}
    for module, tree in trees.items():
        now, later = _imports(tree, modules, packages[module])
        eager[module] = now
        every[module] = now | later

    print(f"{PACKAGE.name}/: {len(files)} modules, {sum(lines.values())} lines")
    print(f"modules over {a.modules} lines: {len(big_modules)}")
    for n, m in big_modules:
        print(f"  {n:5d}  {m.replace('.', '/')}.py")
    for kind, plural in (("class", "classes"), ("function", "functions")):
        rows = sorted(big[kind], reverse=True)
        print(f"{plural} over {limit[kind]} lines: {len(rows)}")
        for n, name in rows:
            print(f"  {n:5d}  {name}")
    load_cycles = _cycles(eager)
    print(f"import cycles (at load time): {len(load_cycles)}")
    for cycle in load_cycles:
        print("  " + " <-> ".join(cycle))
    other_cycles = [c for c in _cycles(every) if c not in load_cycles]
    print(f"import cycles counting imports inside functions and under TYPE_CHECKING: {len(other_cycles)}")
    for cycle in other_cycles:
        print("  " + " <-> ".join(cycle))
    return 1 if big_modules or big["class"] or big["function"] or load_cycles else 0


if __name__ == "__main__":
    sys.exit(main())
