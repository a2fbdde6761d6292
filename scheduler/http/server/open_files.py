"""The process's open files (RLIMIT_NOFILE): the soft limit raised to the hard one at start,
and the share of it the HTTP port may hold, so that however many clients connect to the port,
fires, the store and the job sources still get the descriptors they need."""

from __future__ import annotations

import logging
import resource

log = logging.getLogger("scheduler")

# Descriptors set aside for everything but the fires and the port: the Redis pools (34
# connections, more with Sentinel), SQLite with its journal and lock file, the job sources,
# and the interpreter's own (standard streams, each loop's selector and wake-up pipe), with
# room to spare.
FIXED_RESERVE = 128
MIN_PORT_CONNECTIONS = 16  # the probes and a scrape or two, even under a tiny limit
MAX_PORT_CONNECTIONS = 1024


def port_connection_cap(open_files: int, fires: int) -> int:
    """The most connections the HTTP port holds at once: half of what the open-files limit
    leaves after one descriptor per fire that may run at once (SCHEDULER_MAX_CONCURRENCY) and
    FIXED_RESERVE for the rest; at least 16, at most 1,024. The other half is slack for what
    the reserve does not foresee."""
    spare = (open_files - fires - FIXED_RESERVE) // 2
    return max(MIN_PORT_CONNECTIONS, min(MAX_PORT_CONNECTIONS, spare))


def open_files_limit() -> int:
    """The soft RLIMIT_NOFILE in force (unlimited read as a very large number)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 1 << 30 if soft == resource.RLIM_INFINITY else soft


def raise_open_files_limit(fires: int) -> int:
    """Raises the soft RLIMIT_NOFILE to the hard one and logs the limit once (a warning when it
    leaves too few descriptors for `fires` fires at once); returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    fields: dict[str, object] = {}
    # An unlimited hard limit cannot be set as the soft one on Linux (the kernel caps it at
    # nr_open); a soft limit already at it, or unlimited, has nothing to gain.
    if hard != resource.RLIM_INFINITY and soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            fields["raised_from"] = soft
        except (ValueError, OSError) as exc:
            fields["not_raised"] = str(exc)
    limit = open_files_limit()
    fields.update(soft=limit, hard="unlimited" if hard == resource.RLIM_INFINITY else hard)
    if limit < fires + FIXED_RESERVE + 2 * MIN_PORT_CONNECTIONS:
        fields["problem"] = (f"too low for SCHEDULER_MAX_CONCURRENCY={fires}: fires may fail with "
                             "'Too many open files'; raise the container's nofile limit")
        log.warning("open files limit", extra=fields)
    else:
        log.info("open files limit", extra=fields)
    return limit
