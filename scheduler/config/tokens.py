"""The control API's named tokens (SPEC section 8, "Audit and roles"): SCHEDULER_CONTROL_TOKENS
holds `name:role:secret` entries, comma- (or newline-) separated, beside the single
SCHEDULER_CONTROL_TOKEN, which is an operator named `control-token`.

A message about an entry names it by its position only: a swapped field (`name:secret:role`)
or a missing colon would otherwise put the secret in the message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .reader import Secret

OPERATOR, VIEWER = "operator", "viewer"
ROLES = (OPERATOR, VIEWER)
SINGLE_NAME = "control-token"  # the name SCHEDULER_CONTROL_TOKEN goes by in the audit log
_NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_SEPARATORS = re.compile(r"[,\n]")


@dataclass(frozen=True)
class NamedToken:
    name: str
    role: str  # OPERATOR or VIEWER
    secret: Secret  # its repr shows no value

    @property
    def operator(self) -> bool:
        return self.role == OPERATOR


def control_tokens(text: str) -> tuple[NamedToken, ...]:
    """`name:role:secret,...` to NamedTokens; ValueError listing every bad entry, by position."""
    found: list[NamedToken] = []
    problems: list[str] = []
    entries = [e.strip() for e in _SEPARATORS.split(text)]
    for n, entry in enumerate((e for e in entries if e), 1):
        name, _, rest = entry.partition(":")
        role, colon, secret = rest.partition(":")
        name, role, secret = name.strip(), role.strip(), secret.strip()
        if not colon:
            problems.append(f"entry {n} is not name:role:secret")
        elif not _NAME_RE.fullmatch(name):
            problems.append(f"entry {n}: the name must be 1-64 of A-Z a-z 0-9 . _ -")
        elif role not in ROLES:
            problems.append(f"entry {n}: the role must be {OPERATOR} or {VIEWER}")
        elif not secret:
            problems.append(f"entry {n}: the secret is empty")
        else:
            found.append(NamedToken(name, role, Secret(secret)))
    if not entries or not any(entries):
        problems.append("expected name:role:secret entries, comma-separated")
    names = [t.name for t in found]
    for name in sorted({x for x in names if names.count(x) > 1}):
        problems.append(f"the name {name!r} is given to {names.count(name)} tokens; each needs its own")
    secrets = [t.secret for t in found]
    if len(set(secrets)) < len(secrets):
        problems.append("two entries have the same secret; each token needs its own, or the audit log cannot "
                        "tell who acted")
    if problems:
        raise ValueError("; ".join(problems))
    return tuple(found)


def tokens_apart(got: dict[str, Any], problems: list[str]) -> None:
    """SCHEDULER_CONTROL_TOKEN is an operator named `control-token`: no named token may take
    that name or its secret."""
    single, named = got["control_token"], got["control_tokens"] or ()
    if single is None:
        return
    if any(t.name == SINGLE_NAME for t in named):
        problems.append(f"SCHEDULER_CONTROL_TOKENS: the name {SINGLE_NAME!r} is SCHEDULER_CONTROL_TOKEN's; "
                        "give the entry another name")
    if any(t.secret == single for t in named):
        problems.append("SCHEDULER_CONTROL_TOKENS: an entry has the same secret as SCHEDULER_CONTROL_TOKEN; "
                        "each token needs its own")


def all_tokens(single: str | None, named: tuple[NamedToken, ...]) -> tuple[NamedToken, ...]:
    """Every token the control API accepts: the single one first, as an operator."""
    first = (NamedToken(SINGLE_NAME, OPERATOR, Secret(single)),) if single else ()
    return first + tuple(named)
