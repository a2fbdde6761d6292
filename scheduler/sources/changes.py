"""What a change of source jobs is to the engine: the names added, changed and removed."""

from __future__ import annotations

from ..config.loader import JobSpec


def diff(old: dict[str, JobSpec], new: dict[str, JobSpec]) -> tuple[set[str], set[str], set[str]]:
    """(added, changed, removed) job names between two sets of jobs."""
    added: set[str] = set()
    changed: set[str] = set()
    get = old.get
    for name, job in new.items():  # one pass; an unchanged job is mostly the same object
        was = get(name)
        if was is job:
            continue
        if was is None:
            added.add(name)
        elif was != job:
            changed.add(name)
    # Every old name is in new unless new has fewer names than old and the added ones.
    removed = set() if len(new) - len(added) == len(old) else old.keys() - new.keys()
    return added, changed, removed
