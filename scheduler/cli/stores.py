"""The daemon's state store: made from the settings (Redis or the standalone file), named
for a log line, and opened at the start, with the damaged file's stop and exit 78."""

from __future__ import annotations

import sys
from collections.abc import Callable

from ..config import loader as config
from .exits import EX_CONFIG


def make_store(settings: config.Settings, on_damaged: Callable[[Exception], None] | None = None, named: bool = False):
    """`on_damaged`: called once if the standalone state file turns out to be damaged;
    `named`: the daemon's Redis connections carry its replica id (a standby's crash check)."""
    if settings.standalone:
        from ..store.sqlite.store import LocalStore

        return LocalStore(settings.state_file, history=settings.history, history_age_s=settings.history_age_s,
                          lease_ttl_s=settings.lease_ttl_s,
                          on_damaged=on_damaged)
    from ..store.redis.store import RedisStore

    from ..engine.leader import claim_ahead_s

    return RedisStore(
        settings.redis_url, settings.namespace, settings.lease_ttl_s,
        sentinels=settings.redis_sentinels, sentinel_master=settings.redis_sentinel_master,
        max_skew_s=settings.max_clock_skew_s, claim_ahead_s=claim_ahead_s(settings.lease_ttl_s),
        history=settings.history, history_age_s=settings.history_age_s, name_connections=named,
    )


def store_target(settings: config.Settings) -> str:
    """Where the state lives, fit for a log line: a Redis URL with only its password masked."""
    if settings.standalone:
        return settings.state_file
    if settings.redis_sentinels:
        hosts = ",".join(f"{h}:{p}" for h, p in settings.redis_sentinels)
        return f"sentinel {hosts} master {settings.redis_sentinel_master}"
    return config.mask_url(settings.redis_url or "")


async def open_store(settings: config.Settings, damaged: Damaged, dry_run: bool):
    """The state store, opened (a dry run's read-only view of it), or the exit code."""
    from ..store.protocol import StoreUnavailable
    from ..store.sqlite.schema import StateDamaged

    try:
        store = make_store(settings, damaged, named=True)
        # Standalone: a file that cannot be opened is the configuration's problem. Redis:
        # whether the URL names a cluster node; an unreachable server is asked again later.
        await store.open()
    except StateDamaged as exc:
        print(f"config error: SCHEDULER_STATE_FILE: {exc}", file=sys.stderr)
        return EX_CONFIG
    except StoreUnavailable as exc:
        print(f"config error: SCHEDULER_STATE_FILE: cannot open the state file: {exc}", file=sys.stderr)
        return EX_CONFIG
    if dry_run:
        from ..store.read_only import ReadOnlyStore

        return ReadOnlyStore(store)
    return store


class Damaged:
    """The store's word that the state file is damaged: the daemon stops (in-flight fires
    finish as at a SIGTERM) and exits 78, since only a person can put the file right."""

    def __init__(self) -> None:
        self.problem: Exception | None = None
        self.stop: Callable[[], None] | None = None

    def __call__(self, problem: Exception) -> None:
        if self.problem is None:
            self.problem = problem
            if self.stop is not None:
                self.stop()
