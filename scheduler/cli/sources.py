"""The daemon's job sources, wired: every replica reads SCHEDULER_JOBS_FILE/URL, hands a change
to the engine, the catalog and the pauses, follows the refresh and accept requests made
through the store by any replica's API or the CLI, and notes its view of the sources there
for `status`."""

from __future__ import annotations

import asyncio
import logging
import time

from ..config import loader as config
from ..sources.catalog import Catalog

log = logging.getLogger("scheduler")

REQUESTS_POLL_S = 0.25  # how often every replica looks for refresh and accept requests
NOTE_SOURCES_S = 60.0  # how often a replica notes its sources' unchanged state for `status`


async def start_sources(settings: config.Settings, engine, catalog: Catalog, metrics, store, api, pauses,
                        on_event=None):
    """Every replica reads SCHEDULER_JOBS_FILE/URL (the leader fires from its current view);
    a change goes to the engine, applied between two claims, to the catalog the control
    API reads, and, for a removed job, to `pauses` (control.pauses: every replica that sees
    the removal drops its pause, leader or not). The API steers the sources, and every
    replica follows the refresh and accept requests made through the store."""
    if not (settings.jobs_file or settings.jobs_url):
        return None
    from ..observe.metrics import SourcesCollector
    from ..sources.watch import JobSources

    env = {j.name for j in settings.jobs}

    def changed(jobs: dict, source_of: dict, names: set[str]) -> None:
        rejected = sources.rejected()
        engine.apply_source_jobs(jobs, source_of, names)
        catalog.update(jobs, source_of, rejected)
        # A job still in its source but rejected (a bad edit the app will fix) keeps its
        # pause: only one gone from every source loses it.
        kept = env | {r["name"] for r in rejected}
        pauses.removed(n for n in names if n not in jobs and n not in kept)

    sources = JobSources(settings, on_change=changed, on_event=on_event)
    catalog._rejected = sources.rejected
    metrics.registry.register(SourcesCollector(sources.states))
    await sources.start(sighup=False)  # SIGHUP is the daemon's (Hangup), in every configuration
    if api is not None:
        api.sources = sources
    sources.follow(follow_requests(store, sources))
    return sources


async def follow_requests(store, sources, interval_s: float = REQUESTS_POLL_S) -> None:
    """Every replica, leader or standby, acts on the refresh and accept requests made through
    the store by any replica's API or the CLI (SPEC section 8): the leader has a refreshed
    set in force within a second of the request, and a standby's view is current when it
    takes over. One small read of the store per interval."""
    from ..store.protocol import StoreUnavailable

    seen: tuple[int, int] | None = None
    told: tuple[list[dict], float] = ([], 0.0)  # what this replica last noted of its sources, and when
    while True:
        told = await note_sources(store, sources, told)
        try:
            now = await store.sources_requests()
        except StoreUnavailable:
            now = seen
        except Exception:  # never let the follower die quietly: log, and look again later
            log.exception("reading the sources' requests failed")
            now = seen
        if seen is not None and now is not None:
            if now[0] != seen[0]:
                sources.reload()
            if now[1] != seen[1]:
                sources.accept()
        seen = now
        await asyncio.sleep(interval_s)


async def note_sources(store, sources, told: tuple[list[dict], float]) -> tuple[list[dict], float]:
    """Note this replica's view of its sources in the store (for `status`) when it changed,
    and every NOTE_SOURCES_S so that `status` can tell a live replica's view from a gone one's."""
    from ..store.protocol import StoreUnavailable

    view = [{k: v for k, v in s.items() if k != "changed"} for s in sources.sources()]
    if view == told[0] and time.monotonic() - told[1] < NOTE_SOURCES_S:
        return told
    try:
        await store.note_sources(view)
    except StoreUnavailable:
        return told
    except Exception:  # never let the follower die quietly: log, and try again later
        log.exception("noting the sources' state failed")
        return told
    return view, time.monotonic()
