"""Reading one configuration variable: the error that lists every problem, the string type
of a secret, and the reader that parses a variable and collects what is wrong with it.

A parser raises ValueError saying what is expected; a parser of a secret never puts the
value in that message, so every message can be shown.
"""

from __future__ import annotations

from collections.abc import Callable


class ConfigError(Exception):
    """Every configuration problem found, one line each."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


class Secret(str):
    """A string that never shows itself in a repr, a log record or a traceback's locals."""

    def __repr__(self) -> str:
        return "Secret('***')"


class Reader:
    """Reads one variable with a parser; a parser raises ValueError saying what is expected."""

    def __init__(self, values: dict[str, str], problems: list[str],
                 from_files: set[str] | frozenset[str] = frozenset()):
        self.values = values
        self.problems = problems
        self.from_files = from_files  # secrets read from NAME_FILE: problems name that variable

    def get(self, name: str, parse: Callable[[str], object], default: str | None = None):
        raw = self.values.get(name, default)
        if raw is None or raw == "":  # unset without a default, or empty (reported already)
            return None
        try:
            return parse(raw)
        except ValueError as exc:
            where = f"{name}_FILE: the file's content" if name in self.from_files else name
            self.problems.append(f"{where}: {exc}")
            return None


def show(text: str, quote: bool = True) -> str:
    """Text fit for a one-line message: control characters escaped; a value (quoted) is
    also cut when long, a variable name (unquoted) never is."""
    shown = text if text.isprintable() else text.encode("unicode_escape").decode("ascii")
    if quote and len(shown) > 80:
        shown = shown[:77] + "..."
    return repr(shown) if quote else shown
