#!/usr/bin/env python3
"""Mixed-version deploys: the previous release (built from git history) and this code, in
turn, on one redis-server and on one SQLite file, with a job due every second and a 3 s fire
in flight at each handover. Prints, per store: slots fired, missing, fired twice as attempt
1, the longest wait of the every-second job, exits, tracebacks, and the fate of each slow
fire in flight at a handover.

    uv run python bench/upgrade.py
    uv run python bench/upgrade.py --grace 1s     # cut the slow fire off: it is redelivered
    uv run python bench/upgrade.py --steps 4 --stores redis
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests import upgrade_run  # noqa: E402
from tests.releases import PREVIOUS, release  # noqa: E402
from harness.redis_server import RedisServer  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--commit", default=PREVIOUS, help=f"the earlier release's commit (default {PREVIOUS})")
    ap.add_argument("--steps", type=int, default=2, help="handovers, alternating new and old (default 2)")
    ap.add_argument("--stores", default="redis,sqlite", help="which stores (default redis,sqlite)")
    ap.add_argument("--grace", default="5s", help="SCHEDULER_SHUTDOWN_GRACE (default 5s)")
    args = ap.parse_args()
    old = release(args.commit)
    versions = [old.version if i % 2 == 0 else upgrade_run.CURRENT for i in range(args.steps + 1)]
    bad = 0
    for store in args.stores.split(","):
        if store == "redis":
            with RedisServer() as redis:
                report = upgrade_run.run("redis", versions, {old.version: old}, redis=redis, grace=args.grace)
        else:
            report = upgrade_run.run("sqlite", versions, {old.version: old}, grace=args.grace,
                                     state_file=Path(tempfile.mkdtemp()) / "state.db")
        print("\n".join(report.lines()), flush=True)
        bad += bool(report.missing_slots or report.doubled_first_attempts or report.tracebacks
                    or set(report.exits.values()) != {0}
                    or not all(h.slow_finished or h.slow_redelivered for h in report.handovers))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
