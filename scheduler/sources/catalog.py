"""The jobs as they stand now: the environment's, plus those of SCHEDULER_JOBS_FILE and
SCHEDULER_JOBS_URL, with where each came from and the definitions that were refused.

The daemon keeps one Catalog current from its sources; `check`, `status` and the other
commands read the sources once into one. Either way the operations (operations.py) see
one `Settings` whose `jobs` are all of them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable

from ..config.loader import JobSpec, Settings


class Catalog:
    def __init__(self, settings: Settings, rejected: Callable[[], list[dict]] | None = None):
        self.base = settings
        self._view: Settings | None = settings
        self._update: tuple | None = None
        self._rejected = rejected  # the sources' refused definitions, read when asked

    def update(self, jobs: dict[str, JobSpec], source_of: dict[str, str], rejected: list[dict]) -> None:
        """The sources' new view (dicts that are replaced on a change, never edited). The
        merged Settings is built when it is asked for: a refresh that changed 1,000 of
        100,000 jobs does not sort them all on the event loop."""
        self._update, self._view = (jobs, source_of, tuple(rejected)), None

    def view(self) -> Settings:
        if self._view is None:
            assert self._update is not None
            jobs, source_of, rejected = self._update
            merged = tuple(self.base.jobs) + tuple(jobs[n] for n in sorted(jobs))
            self._view = dataclasses.replace(self.base, jobs=merged, source_of=source_of, rejected=rejected)
        if self._rejected is None:
            return self._view
        return dataclasses.replace(self._view, rejected=tuple(self._rejected()))


def read_once(settings: Settings) -> tuple[Settings, list[dict]]:
    """The settings with the sources' jobs, read once as the daemon would, and the sources'
    states. Nothing is logged: the caller reports what it found."""
    if not (settings.jobs_file or settings.jobs_url):
        return settings, []
    from .watch import JobSources

    silent = logging.getLogger("scheduler.sources.once")
    silent.addHandler(logging.NullHandler())
    silent.propagate = False
    sources = JobSources(settings, logger=silent)

    async def read() -> None:
        try:
            await sources.read_once()
        finally:
            await sources.aclose()

    asyncio.run(read())
    catalog = Catalog(settings)
    catalog.update(sources.current(), sources.source_of(), sources.rejected())
    return catalog.view(), sources.states()
