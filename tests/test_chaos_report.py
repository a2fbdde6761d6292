"""The chaos report's counting rules: `analyze` on a recorded run, and each invariant's check
on a tiny record that breaks it (bench/chaos_fires.py, bench/chaos_replicas.py).

The recorded run (tests/data/chaos_run.json) is a real `bench/chaos.py` run of nine faults,
cut down to two of its jobs (`two`: CATCHUP=all, CONCURRENCY=forbid; `newest`:
CATCHUP=latest), the log events the report reads and the Sentinel cell's first 12 fires;
tests/data/chaos_run_report.json is what `analyze` returned for it.
"""

from __future__ import annotations

import json

import pytest

from bench import chaos_fires, chaos_replicas, chaos_report
from bench.chaos_record import LIMIT_EVENT, MISSED_EVENT, SKIP_EVENT, Run, Tally
from tests.support import REPO_ROOT

DATA = REPO_ROOT / "tests" / "data"


def test_analyze_a_recorded_run_gives_the_recorded_report() -> None:
    raw = json.loads((DATA / "chaos_run.json").read_text())
    report = chaos_report.analyze(raw)

    assert json.dumps(report, indent=1) + "\n" == (DATA / "chaos_run_report.json").read_text()
    overall = report["rows"]["overall"]
    assert report["ok"]
    assert (overall["expected"], overall["delivered"]) == (146, 135)
    # Every slot that did not arrive is one a policy allows: the no-AOF restart lost 4, a
    # forbid skip 1, CATCHUP=latest dropped 6 when the clock-skew fault stalled the leader.
    assert (overall["lost_no_aof"], overall["skipped_forbid"], overall["beyond_catchup"]) == (4, 1, 6)
    assert overall["missed_beyond_policy"] == 0
    assert (overall["retries"], overall["redeliveries"]) == (4, 2)
    assert [f["fault"] for f in report["failovers"]] == ["kill9", "hostile-input", "rolling", "redis-restart-noaof"]
    assert report["rows"]["sentinel-failover"]["expected"] == 28
    assert chaos_report.format_report(report).endswith("result: OK (no duplicate first attempt, nothing missed beyond policy)")


# -- tiny records: one every-second job, CATCHUP=all, slots 100-103 due -------------------


def _fire(slot: int, t: float, attempt: int = 1, epoch: int = 5, job: str = "tick", **extra) -> dict:
    return {"t": t, "key": f"{job}@{slot}", "job": job, "slot": slot, "attempt": attempt, "epoch": epoch, "answer": "200", **extra}


def _fault(name: str, t: float, points: tuple[float, ...] = (), **notes) -> dict:
    return {"name": name, "occurrence": 0, "t_inject": t, "skipped": None, "failover_points": list(points), "notes": notes}


def _raw(fires: list[dict] | None = None, **extra) -> dict:
    base = {
        "config": {"replicas": 3}, "jobs": {"tick": {"schedule": "every 1s", "catchup": "all", "concurrency": "allow"}},
        "t_start": 90.0, "t_end": 103, "start_marks": {"tick": 99}, "faults": [], "noaof": [],
        "events": [{"node": 0, "seq": 0, "pid": 11, "t": 95.0, "event": "became leader", "epoch": 5}],
        "unexpected_exits": [], "final_exits": [], "notes": [], "lease_log": [], "skewed": [], "dry_runs": [],
        "arrivals": fires if fires is not None else [_fire(s, s + 0.01) for s in range(100, 104)],
    }
    return {**base, **extra}


def _run(raw: dict) -> tuple[Run, Tally]:
    run = Run(raw)
    return run, Tally(run.label)


def test_a_slot_sent_twice_as_a_first_attempt_is_a_duplicate() -> None:
    run, tally = _run(_raw([_fire(100, 100.0), _fire(101, 101.0), _fire(101, 101.4, epoch=6)]))
    found = chaos_fires.duplicate_first_attempts(run, tally)
    assert [d["key"] for d in found] == ["tick@101"]
    assert [a["epoch"] for a in found[0]["arrivals"]] == [5, 6]
    assert tally.overall["duplicate_first_attempts"] == 1


def test_a_higher_attempt_is_a_retry_from_the_same_leadership_and_a_redelivery_from_another() -> None:
    run, tally = _run(_raw([_fire(100, 100.0), _fire(100, 100.5, attempt=2), _fire(101, 101.0), _fire(101, 102.0, attempt=2, epoch=6)]))
    chaos_fires.retries_and_redeliveries(run, tally)
    assert (tally.overall["retries"], tally.overall["redeliveries"]) == (1, 1)


def test_a_fire_more_than_50_ms_before_its_slot_is_early() -> None:
    run, tally = _run(_raw([_fire(100, 100.01), _fire(101, 100.9), _fire(102, 101.97)]))
    found = chaos_fires.early_fires(run, tally)
    assert found == [{"key": "tick@101", "early_s": 0.1, "epoch": 5}]
    assert tally.overall["early_fires"] == 1
    assert len(tally.overall["lateness"]) == 3


def test_a_late_fire_while_a_skewed_replica_led_is_blamed_on_it() -> None:
    lease_log = [(95.0, "host:11:a"), (100.5, "host:22:b")]
    skewed = [{"replica": 1, "pid": 22, "offset_s": -20, "t_from": 99.0, "t_to": 103.5, "led": True}]
    run, tally = _run(_raw([_fire(100, 100.0), _fire(101, 104.0)], lease_log=lease_log, skewed=skewed))
    found = chaos_fires.late_fires_by_skewed_clock(run, tally)
    assert found == [{"key": "tick@101", "late_s": 3.0, "skewed_replica": 1, "offset_s": -20}]
    assert tally.overall["late_fires_skewed"] == 1


def test_a_fencing_token_lower_than_one_seen_is_stale_within_one_redis_state() -> None:
    fires = [_fire(100, 100.0, epoch=6), _fire(101, 101.0, epoch=5)]
    stale = chaos_fires.stale_fencing_tokens(Run(_raw(fires)))
    assert (stale["count"], stale["across_state_losses"]) == (1, 1)
    assert stale["examples"][0]["highest_seen"] == 6
    # Redis lost its state in between: epochs start again, so only across losses it counts.
    noaof = [{"t_kill": 100.5, "t_up": 100.8, "marks_before": {}, "marks_after": {}}]
    stale = chaos_fires.stale_fencing_tokens(Run(_raw(fires, noaof=noaof)))
    assert (stale["count"], stale["across_state_losses"]) == (0, 1)


def test_a_slot_that_never_arrived_and_no_policy_excuses_is_missed() -> None:
    run, tally = _run(_raw([_fire(s, s + 0.01) for s in (100, 101, 103)]))
    found, unlogged = chaos_fires.missed_beyond_policy(run, tally)
    assert [(m["slot_unix"], m["previous_delivered"]["epoch"]) for m in found] == [(102, 5)]
    assert unlogged == []
    assert (tally.overall["expected"], tally.overall["delivered"], tally.overall["missed_beyond_policy"]) == (4, 3, 1)


def _skip_event(name: str, slot: str) -> dict:
    return {"node": 0, "seq": 5, "pid": 11, "t": 102.0, "event": name, "job": "tick", "slot": slot}


# Slot 102 (1970-01-01T00:01:42Z) of `tick` did not arrive; each case is one policy that allows it.
GAPS = {
    "a logged forbid skip": ({"events": [_skip_event(SKIP_EVENT, "1970-01-01T00:01:42Z")]}, "skipped_forbid"),
    "a logged catch-up skip": ({"events": [_skip_event(MISSED_EVENT, "1970-01-01T00:01:42Z")]}, "beyond_catchup"),
    "a Redis restart without AOF": ({"noaof": [{"t_kill": 101.5, "t_up": 102.5, "marks_before": {"tick": 101},
                                                "marks_after": {"tick": 102}}]}, "lost_no_aof"),
    "CATCHUP=latest made up the newer slot": ({"jobs": {"tick": {"schedule": "every 1s", "catchup": "latest", "concurrency": "allow"}}},
                                              "beyond_catchup"),
    "CATCHUP=all under forbid, claimed but never logged": (
        {"jobs": {"tick": {"schedule": "every 1s", "catchup": "all", "concurrency": "forbid"}}}, "skipped_forbid_unlogged"),
}


@pytest.mark.parametrize("case", GAPS, ids=list(GAPS))
def test_a_gap_a_policy_allows_is_not_missed(case: str) -> None:
    changes, reason = GAPS[case]
    # The next leader (epoch 6, from t=102.8) caught `tick` up and sent slot 103 first.
    events = [{"node": 0, "seq": 0, "pid": 11, "t": 95.0, "event": "became leader", "epoch": 5},
              {"node": 1, "seq": 0, "pid": 12, "t": 102.8, "event": "became leader", "epoch": 6},
              {"node": 1, "seq": 1, "pid": 12, "t": 102.8, "event": "catching up", "job": "tick", "slots": 1}]
    raw = _raw([_fire(100, 100.0), _fire(101, 101.0), _fire(103, 103.0, epoch=6)], **changes)
    raw["events"] = events + changes.get("events", [])
    run, tally = _run(raw)
    assert chaos_fires.allowed_gap(run, "tick", 102) == reason
    found, unlogged = chaos_fires.missed_beyond_policy(run, tally)
    assert found == []
    assert tally.overall["missed_beyond_policy"] == 0
    assert len(unlogged) == (reason == "skipped_forbid_unlogged")


def test_a_gap_beyond_the_catch_up_limit_of_catchup_all_is_not_missed() -> None:
    """A leader that took over more than 100 slots later makes up only the newest 100."""
    events = [{"node": 0, "seq": 0, "pid": 11, "t": 95.0, "event": "became leader", "epoch": 5},
              {"node": 1, "seq": 0, "pid": 12, "t": 210.0, "event": "became leader", "epoch": 6},
              {"node": 1, "seq": 1, "pid": 12, "t": 210.0, "event": "catching up", "job": "tick", "slots": 100},
              {"node": 1, "seq": 2, "pid": 12, "t": 210.0, "event": f"{LIMIT_EVENT} (100)", "job": "tick"}]
    run, tally = _run(_raw([_fire(100, 100.0), _fire(101, 101.0), _fire(110, 210.1, epoch=6)], events=events))
    assert chaos_fires.allowed_gap(run, "tick", 102) == "beyond_catchup"
    assert chaos_fires.missed_beyond_policy(run, tally)[0] == []
    # Under the limit, CATCHUP=all would have made up slot 102 itself: it is missed.
    run, tally = _run(_raw([_fire(100, 100.0), _fire(101, 101.0), _fire(110, 110.1, epoch=6)],
                           events=[{**e, "t": 110.0} if e["t"] == 210.0 else e for e in events]))
    assert chaos_fires.allowed_gap(run, "tick", 102) is None


def test_failover_is_from_the_loss_to_the_first_request_of_a_leadership_begun_after_it() -> None:
    events = [{"node": 0, "seq": 0, "pid": 11, "t": 95.0, "event": "became leader", "epoch": 5},
              {"node": 1, "seq": 0, "pid": 12, "t": 102.0, "event": "became leader", "epoch": 6}]
    fires = [_fire(100, 100.0), _fire(101, 101.0), _fire(102, 102.5, epoch=6), _fire(103, 103.0, epoch=6)]
    faults = [_fault("kill9", 101.0, (101.0,)), _fault("sigstop", 103.5, (103.5,))]
    run, tally = _run(_raw(fires, events=events, faults=faults))
    found = chaos_replicas.failovers(run, tally)
    assert [(f["fault"], f["failover_s"]) for f in found] == [("kill9", 1.5), ("sigstop", None)]
    assert tally.rows["kill9"]["failover"] == [1.5]
    assert tally.rows["sigstop"]["failover_unmeasured"] == 1


def test_each_leadership_begun_counts_as_an_epoch() -> None:
    events = [{"node": 0, "seq": 0, "pid": 11, "t": 95.0, "event": "became leader", "epoch": 5},
              {"node": 1, "seq": 0, "pid": 12, "t": 102.0, "event": "became leader", "epoch": 6}]
    run, tally = _run(_raw(events=events))
    chaos_replicas.epochs(run, tally)
    assert tally.overall["epochs"] == 2


def test_a_replica_that_exited_on_its_own_is_reported() -> None:
    exits = [{"t": 101.0, "replica": 2, "returncode": -11}]
    run, tally = _run(_raw(unexpected_exits=exits))
    assert chaos_replicas.unexpected_exits(run, tally) == exits
    assert tally.overall["replica_exits"] == 1


def test_a_replica_that_did_not_exit_0_on_sigterm_is_unclean() -> None:
    run = Run(_raw(final_exits=[{"replica": 0, "returncode": 0}, {"replica": 1, "returncode": 1}]))
    assert chaos_replicas.unclean_exits(run) == [{"replica": 1, "returncode": 1}]


def test_a_replica_with_a_skewed_clock_that_held_the_lease_is_reported() -> None:
    lease_log = [(95.0, "host:11:a"), (100.5, "host:22:b"), (101.5, "host:11:a")]
    skewed = [{"replica": 1, "pid": 22, "offset_s": 20, "t_from": 99.0, "t_to": 103.0, "led": True},
              {"replica": 2, "pid": 33, "offset_s": -20, "t_from": 99.0, "t_to": 103.0, "led": False}]
    found = chaos_replicas.skewed_leaders(Run(_raw(lease_log=lease_log, skewed=skewed)))
    assert [(k["replica"], k["held_s"]) for k in found] == [(1, 1.0)]


def test_a_dry_run_that_held_the_lease_is_reported() -> None:
    lease_log = [(95.0, "host:11:a"), (100.5, "host:33:c"), (101.5, "host:11:a")]
    dry = [{"pid": 33, "id": "host:33:c", "t_from": 99.0, "t_to": 102.0}]
    found = chaos_replicas.dry_run_leases(Run(_raw(lease_log=lease_log, dry_runs=dry)))
    assert [(d["pid"], d["held_s"]) for d in found] == [(33, 1.0)]


def test_a_dry_run_that_became_leader_is_reported() -> None:
    dry = [{"pid": 33, "id": "host:33:c", "t_from": 99.0, "t_to": 102.0}]
    raw = _raw(dry_runs=dry)
    raw["events"] += [{"node": 3, "seq": 0, "pid": 33, "t": 100.2, "event": "dry run: would send", "job": "tick"},
                      {"node": 3, "seq": 1, "pid": 33, "t": 100.6, "event": "became leader", "epoch": 7}]
    found = chaos_replicas.dry_run_fires(Run(raw))
    assert [(d["pid"], d["events"]) for d in found] == [(33, 1)]


def test_a_control_command_that_failed_is_reported() -> None:
    failure = {"command": "status", "returncode": 1}
    run = Run(_raw(faults=[_fault("hostile-input", 101.0, control_failures=[failure])]))
    assert chaos_replicas.control_failures(run) == [failure]


def test_a_manual_trigger_that_never_arrived_is_lost() -> None:
    faults = [_fault("hostile-input", 101.0, manual_key="tick@manual:ok-0")]
    assert chaos_replicas.manual_triggers_lost(Run(_raw(faults=faults))) == [{"fault": "hostile-input", "key": "tick@manual:ok-0"}]
    arrived = _raw([*_raw()["arrivals"], {**_fire(0, 101.5), "key": "tick@manual:ok-0", "manual": True}], faults=faults)
    assert chaos_replicas.manual_triggers_lost(Run(arrived)) == []


# -- the Sentinel cell: its own target, one every-second job ------------------------------


def test_a_sentinel_cell_slot_sent_twice_as_a_first_attempt_is_a_duplicate() -> None:
    cell = {"events": [], "arrivals": [_fire(100, 100.0, job="stick"), _fire(100, 100.6, epoch=6, job="stick")]}
    run, tally = _run(_raw())
    found = chaos_fires.sentinel_duplicate_first_attempts(cell, tally)
    assert [d["key"] for d in found] == ["sentinel cell: stick@100"]
    assert tally.rows["sentinel-failover"]["duplicate_first_attempts"] == tally.overall["duplicate_first_attempts"] == 1


def test_a_sentinel_cell_fire_before_its_slot_is_early() -> None:
    cell = {"events": [], "arrivals": [_fire(100, 100.0, job="stick"), _fire(101, 100.5, job="stick")]}
    run, tally = _run(_raw())
    assert chaos_fires.sentinel_early_fires(cell, tally) == [{"key": "sentinel cell: stick@101", "early_s": 0.5}]
    assert tally.rows["sentinel-failover"]["early_fires"] == 1


def test_a_sentinel_cell_second_missing_between_its_first_and_last_fire_is_missed() -> None:
    cell = {"events": [], "arrivals": [_fire(s, s + 0.01, job="stick") for s in (100, 101, 103)]}
    run, tally = _run(_raw())
    found = chaos_fires.sentinel_gaps(cell, tally)
    assert [m["slot_unix"] for m in found] == [102]
    assert tally.rows["sentinel-failover"]["expected"] == 4
    assert tally.overall["missed_beyond_policy"] == 1
