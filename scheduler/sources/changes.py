"""What a change of source jobs is: the merged view of every source (env names win, the file
before the URL), and, to the engine, the names added, changed and removed."""

from __future__ import annotations

from ..config.loader import JobSpec
from .document import Rejection

_ENV_CLASH = "also defined in the environment (SCHEDULER_JOB_{}_*); the environment's definition applies"


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


def merge(old_jobs: dict[str, JobSpec], old_source_of: dict[str, str], goods: list[tuple[str, dict[str, JobSpec]]],
          clashes: dict[tuple[str, str], Rejection], env: set[str], names: set[str]
          ) -> tuple[dict[str, JobSpec], dict[str, str], set[str]]:
    """The merged view for `names` from each source's good jobs (`goods`, the file first):
    (jobs, source of each, the names that changed). The old view is copied, never edited;
    `clashes` (a name refused in a source, by the environment or the file) is kept up to date."""
    jobs, source_of = dict(old_jobs), dict(old_source_of)  # the old view stays whole
    changed: set[str] = set()
    if not jobs and len(goods) == 1:  # the first read of the only source: all of it at once
        (src, of_source), = goods
        jobs = {n: j for n, j in of_source.items() if n not in env}
        source_of = dict.fromkeys(jobs, src)
        changed = set(jobs)
        names = (env & of_source.keys()) | {n for n, _ in clashes}  # the clashes are left to the loop
    for name in names:
        if clashes:  # said again below if it still holds
            for src, _ in goods:
                clashes.pop((name, src), None)
        winner = None
        for src, of_source in goods:
            job = of_source.get(name)
            if job is None:
                continue
            if name in env:
                clashes[(name, src)] = Rejection(name, src, _ENV_CLASH.format(name.upper().replace("-", "_")))
            elif winner is None:
                winner = job, src
            else:
                clashes[(name, src)] = Rejection(name, src, "also defined in SCHEDULER_JOBS_FILE; the file's definition applies")
        if winner is None:
            if jobs.pop(name, None) is not None:
                changed.add(name)
                del source_of[name]
        elif jobs.get(name) is not winner[0]:
            jobs[name], source_of[name] = winner
            changed.add(name)
        else:
            source_of[name] = winner[1]
    return jobs, source_of, changed
