"""Jobs from a file and from the app's URL, merged, kept current, and handed to the engine.

What the engine must do with a change (SPEC section 6, rule 2). `on_change(jobs, source_of)`
gives the whole merged set of valid source jobs; `changes.diff(old, new)` names what differs:
- added: fire from its next slot after now; slots before it was first seen are not made
  up, except an `at` job whose instant has just passed: it fires once, unless its CATCHUP
  is `none` or the instant is older than its CATCHUP_WINDOW (without one, than
  SCHEDULER_AT_GRACE); then it expires (engine/next_slots.passed_at).
- changed: keep its watermark (the store's last claimed slot): no slot fires twice, and
  none from before the change is made up beyond CATCHUP. Replace its heap entry only.
- removed: no new slot; fires in flight finish; its state stays in the store for at least
  a day. A job removed and added back then finds its watermark and never fires a claimed
  slot again: nothing to do for that beyond not deleting the state at once. Its pause is
  dropped, by whoever gets the change (the daemon: control/pauses.py).
- a rename is a removal and an addition (identity is the name).
Apply a change between two claims, never during one. Env jobs never appear here: a source
job named like one is rejected (the environment wins), and a name in both the file and the
URL is the file's.

    sources = JobSources(settings, on_change=engine.apply_source_jobs)
    await sources.start()          # reads in the background; SIGHUP re-reads
    ...  sources.current(), sources.source_of(), sources.rejected(), sources.states()
    await sources.aclose()
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal
import time
from collections.abc import Callable

from ..config.loader import JobSpec, Settings
from .changes import merge
from .document import Rejection
from .guard import Hold, dropped_if_held
from .state import SourceState, backoff_s
from .readers import UNCHANGED, FileReader, SourceError, UrlReader

log = logging.getLogger("scheduler.sources")
# (merged jobs, source of each, the names whose job may differ from the last call's)
OnChange = Callable[[dict[str, JobSpec], dict[str, str], set[str]], None]
OnEvent = Callable[[str, dict], None]  # (source.held or source.unreadable, its data)
FILE_POLL_S = 1.0


class JobSources:
    """The file and URL sources of one daemon (either may be absent). See the module's
    docstring for what a change means to the engine."""

    def __init__(self, settings: Settings, *, on_change: OnChange | None = None,
                 env_names: set[str] | None = None, file_poll_s: float = FILE_POLL_S,
                 client=None, rand: Callable[[], float] = random.random, clock: Callable[[], float] = time.time,
                 logger: logging.Logger = log, on_event: OnEvent | None = None):
        self.settings = settings
        self.on_event = on_event  # told once per episode: source.held, source.unreadable
        self.log = logger  # `check` passes a silent one: it prints what it found itself
        self.on_change = on_change
        self.env_names = {j.name for j in settings.jobs} if env_names is None else set(env_names)
        self.file_poll_s, self.rand, self.clock = file_poll_s, rand, clock
        self._sources: list[SourceState] = []
        if settings.jobs_file:
            self._sources.append(SourceState(FileReader(settings, settings.jobs_file)))
        if settings.jobs_url:
            self._sources.append(SourceState(UrlReader(settings, settings.jobs_url, client)))
        self._jobs: dict[str, JobSpec] = {}
        self._source_of: dict[str, str] = {}
        self._rejected: list[Rejection] = []
        self._clashes: dict[tuple[str, str], Rejection] = {}  # (name, source) refused for a name clash
        self._logged: set[Rejection] = set()
        self._tasks: list[asyncio.Task] = []
        self._first: asyncio.Event | None = None
        self._sighup = False
        self.changed = asyncio.Event()  # set on every change of current(); clear it after reading

    # -- the view ---------------------------------------------------------------------
    def current(self) -> dict[str, JobSpec]:
        return self._jobs

    def source_of(self) -> dict[str, str]:
        return self._source_of

    def rejected(self) -> list[dict[str, str]]:
        return [r.as_dict() for r in self._rejected]

    def states(self) -> list[dict]:
        return [s.state() for s in self._sources]

    # -- lifecycle --------------------------------------------------------------------
    async def start(self, *, sighup: bool = True) -> None:
        """Start reading in the background (the first reads begin at once); with sighup,
        SIGHUP re-reads every source. Returns without waiting for a read: see wait_first_read."""
        loop = asyncio.get_running_loop()
        if sighup and self._sources:
            loop.add_signal_handler(signal.SIGHUP, self.reload)
            self._sighup = True
        pending = len(self._sources)
        self._first = first = asyncio.Event()
        if not pending:
            self._first.set()
        done = {"n": 0}

        def first_done() -> None:
            done["n"] += 1
            if done["n"] == pending:
                first.set()

        for s in self._sources:
            self._tasks.append(asyncio.create_task(self._run(s, first_done), name=f"jobs-{s.reader.source}"))

    async def wait_first_read(self) -> None:
        """Until every source has been tried once (read, or failed and left to retry)."""
        assert self._first is not None, "start() first"
        await self._first.wait()

    def reload(self) -> None:
        """Read every source now (SIGHUP): the file even if its stat looks unchanged."""
        for s in self._sources:
            s.forced = True
            s.wake.set()

    async def refresh_now(self) -> list[dict]:
        """Read every source now and return when each has finished a read that began after
        this call (a read under way may have begun before the app's change)."""
        if not self._tasks:  # not started (a command): one read, as `check` does
            await self.read_once()
            return [s.summary() for s in self._sources]
        wanted = [(s, s.started + 1, s.changed_total) for s in self._sources]
        self.reload()
        for s, n, _ in wanted:
            while s.finished < n:
                s.done.clear()
                await s.done.wait()
        # Another read (the store's request, followed here too) may have applied the change.
        return [s.summary(base) for s, _, base in wanted]

    def accept(self) -> list[dict]:
        """Apply every held read: the operator says the removal is meant."""
        names: set[str] = set()
        for s in self._sources:
            if s.held is not None:
                hold, s.held = s.held, None
                s.good = hold.parsed
                s.last_changed = len(hold.parsed.fresh | hold.parsed.gone)
                s.changed_total += s.last_changed
                names |= hold.parsed.fresh | hold.parsed.gone
                self.log.warning("held jobs source accepted: its read applies",
                                 extra={"source": s.reader.source, "jobs": len(hold.parsed.jobs), "removed": hold.dropped})
        if names:
            self._merge(names)
        return [s.summary() for s in self._sources]

    def sources(self) -> list[dict]:
        return [s.summary() for s in self._sources]

    def follow(self, coro) -> None:
        """Run `coro` for as long as the sources are read (the daemon's follower of the
        refresh and accept requests made through the store); aclose ends it."""
        self._tasks.append(asyncio.create_task(coro, name="jobs-requests"))

    async def aclose(self) -> None:
        if self._sighup:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            self._sighup = False
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        for s in self._sources:
            if isinstance(s.reader, UrlReader):
                await s.reader.aclose()

    async def read_once(self, offload: bool = False) -> None:
        """One read of every source, merged (`check`). Keeps no connection open."""
        try:
            await asyncio.gather(*(self._read(s, offload=offload) for s in self._sources))
        finally:
            for s in self._sources:
                if isinstance(s.reader, UrlReader):
                    await s.reader.aclose()  # the client stays usable: it connects again
        self._merge()

    # -- reading ----------------------------------------------------------------------
    async def _run(self, s: SourceState, first_done: Callable[[], None]) -> None:
        first = True
        while True:
            s.started += 1
            names = await self._read(s)
            s.last_changed = len(names) if names else 0
            s.changed_total += s.last_changed
            if names is not None:
                self._merge(names)
            s.finished += 1
            s.done.set()
            if first:
                first = False
                first_done()
            if isinstance(s.reader, FileReader):
                delay = self.file_poll_s
            else:
                delay = self.settings.jobs_refresh_s if s.error is None else backoff_s(
                    s.failures, self.settings.jobs_refresh_s, self.rand)
            try:
                await asyncio.wait_for(s.wake.wait(), delay)
            except TimeoutError:
                pass
            s.wake.clear()

    async def _read(self, s: SourceState, offload: bool = True) -> set[str] | None:
        """One read; the names whose job in this source may have changed (a merge is due
        for them), or None."""
        forced, s.forced = s.forced, False
        if isinstance(s.reader, FileReader) and not forced and s.reads_total and not s.reader.changed():
            return None  # the once-a-second poll: a stat, nothing else
        s.reads_total += 1
        began = time.perf_counter()
        try:
            try:
                result = await s.reader.read(s.good, force=forced, offload=offload)
            except (SourceError, asyncio.CancelledError):
                raise
            except Exception as exc:  # noqa: BLE001 - nothing in a document may stop its source
                self.log.exception("reading a jobs source failed unexpectedly; it is read again",
                                   extra={"source": s.reader.source, "location": s.reader.location})
                raise SourceError(f"could not be read: {type(exc).__name__}") from None
        except SourceError as exc:
            s.failures += 1
            s.failures_total += 1
            if str(exc) != s.error:
                self.log.warning("jobs source unreadable; keeping its last good jobs" if s.good else
                            "jobs source unreadable; retrying",
                            extra={"source": s.reader.source, "location": s.reader.location, "problem": str(exc),
                                   "jobs_kept": len(s.good.jobs) if s.good else 0})
            if s.error is None and self.on_event is not None:
                self.on_event("source.unreadable", {"source": s.reader.source, "location": s.reader.location,
                                                    "problem": str(exc), "jobs_kept": len(s.good.jobs) if s.good else 0})
            s.error = str(exc)
            return None
        if s.error is not None:
            self.log.info("jobs source read again", extra={"source": s.reader.source, "location": s.reader.location})
        s.error, s.failures, s.last_success = None, 0, self.clock()
        if result is UNCHANGED:
            return None  # a 304 or an unchanged file: nothing to merge (bench: well under 1 ms)
        dropped = dropped_if_held(s.good, result, self.settings.jobs_max_drop)
        if dropped is not None and s.good is not None:
            if s.held is None or s.held.parsed.jobs.keys() != result.jobs.keys():
                self.log.error("jobs source held: this read would remove too many jobs; the last good set stays "
                               "in force until it is accepted (POST /api/v1/sources/accept, or `sources accept`)",
                               extra={"source": s.reader.source, "location": s.reader.location, "jobs": len(result.jobs),
                                      "removed": dropped, "in_force": len(s.good.jobs),
                                      "max_drop": f"{self.settings.jobs_max_drop:.0%}"})
            if s.held is None and self.on_event is not None:
                self.on_event("source.held", {"source": s.reader.source, "location": s.reader.location,
                                              "jobs": len(result.jobs), "removed": dropped, "in_force": len(s.good.jobs),
                                              "max_drop": f"{self.settings.jobs_max_drop:.0%}"})
            since = s.held.since if s.held is not None else self.clock()
            s.held = Hold(result, dropped, len(s.good.jobs), since)
            return None
        if s.held is not None:
            self.log.info("jobs source no longer held: its latest read applies", extra={"source": s.reader.source})
            s.held = None
        s.good = result
        self.log.info("jobs source read", extra={"source": s.reader.source, "jobs": len(result.jobs),
                                                 "rejected": len(result.rejected), "changed": len(result.fresh),
                                                 "gone": len(result.gone), "seconds": round(time.perf_counter() - began, 3)})
        return set(result.fresh | result.gone)

    def _merge(self, names: set[str] | None = None) -> None:
        """Bring the merged view up to date for `names` (None: every name of every source),
        and hand the change on. A refresh of 100,000 jobs that changed 1,000 touches those
        1,000 here, on the event loop; the comparing was done in the reading thread."""
        if names is None:
            names = set().union(*(s.good.jobs.keys() for s in self._sources if s.good is not None))
            names |= self._jobs.keys() | {n for n, _ in self._clashes}
        goods = [(s.reader.source, s.good.jobs) for s in self._sources if s.good is not None]  # the file first
        jobs, source_of, changed = merge(self._jobs, self._source_of, goods, self._clashes, self.env_names, names)
        rejected = [r for s in self._sources if s.good is not None for r in s.good.rejected]
        rejected += [self._clashes[k] for k in sorted(self._clashes, key=lambda k: (k[1] != "file", k[0]))]
        for r in rejected:
            if r not in self._logged:
                self.log.warning("job rejected", extra={"job": r.name, "source": r.source, "problem": r.problem})
        self._logged = set(rejected)
        self._rejected = rejected
        self._source_of = source_of
        if changed:
            self._jobs = jobs
            self.changed.set()
            if self.on_change is not None:
                try:
                    self.on_change(jobs, source_of, changed)
                except Exception:  # the engine's problem; the sources keep being read
                    self.log.exception("applying a change of source jobs failed")
