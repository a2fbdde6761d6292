"""`explain`'s sentences from the facts the store gives (SPEC 8): a slot no replica led,
dropped or made up by CATCHUP, skipped for overlap or a pause, replaced, and the slots that
were never owed: not due, not a slot of the schedule, before the first sighting, disabled."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from scheduler.config.jobs import JobSpec
from scheduler.control.explain import Facts, explain_slot
from scheduler.schedule import slots as sched


def at(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def job(schedule: str = "0 3 * * *", **fields) -> JobSpec:
    return JobSpec("nightly", schedule, sched.parse(schedule, job="nightly"), "/x", **fields)


SLOT = at("2026-12-07T03:00:00Z")
NOW = SLOT + 3 * 3600
# the leader last renewed at 02:59:58 and a new one took over at 03:00:09
OUTAGE = [{"epoch": 8, "replica": "b", "acquired_at": (SLOT + 9) * 1000, "previous": "a",
           "previous_seen_at": (SLOT - 2) * 1000}]


def facts(**kw) -> Facts:
    base = Facts(job=job(catchup="latest"), slot=SLOT, entry=None, watermark=SLOT, first_seen_at=SLOT - 86400 * 3)
    return replace(base, **kw)


def test_a_slot_made_up_after_a_gap_in_leadership() -> None:
    entry = {"slot": SLOT, "outcome": "ok", "attempts": 1, "http_status": 200, "duration_ms": 35,
             "lateness_ms": 9100.0, "finished_at": SLOT + 9.2}
    sentence = explain_slot(facts(entry=entry, leaderships=OUTAGE), NOW)
    assert sentence.startswith("no replica led from 02:59:58 to 03:00:09; made up at 03:00:09 by CATCHUP=latest; ok")


def test_a_slot_dropped_while_no_replica_led() -> None:
    sentence = explain_slot(facts(job=job(catchup="none"), leaderships=OUTAGE), NOW)
    assert sentence == "dropped: missed while no replica led from 02:59:58 to 03:00:09 (CATCHUP=none)"


def test_skipped_for_overlap_names_the_fire_still_running() -> None:
    every = job("*/5 * * * *", concurrency="forbid")
    earlier = [{"slot": SLOT - 300, "outcome": "ok", "finished_at": SLOT + 40.0}]
    entry = {"slot": SLOT, "outcome": "skipped", "reason": "overlap", "policy": "forbid"}
    sentence = explain_slot(facts(job=every, entry=entry, earlier=earlier), NOW)
    assert sentence == "skipped: the fire of 02:55 was still running (CONCURRENCY=forbid)"


def test_paused_dropped_and_replaced() -> None:
    assert explain_slot(facts(entry={"slot": SLOT, "outcome": "skipped", "reason": "paused"}), NOW) == \
        "skipped: the job was paused"
    dropped = {"slot": SLOT, "outcome": "dropped", "reason": "missed", "policy": "none"}
    assert explain_slot(facts(entry=dropped), NOW) == \
        "dropped: missed while the scheduler's loop was behind (CATCHUP=none)"
    cancelled = {"slot": SLOT, "outcome": "cancelled", "attempts": 1, "error": "replaced by a newer slot"}
    assert explain_slot(facts(job=job(concurrency="replace"), entry=cancelled), NOW) == \
        "skipped: replaced by a newer slot while it ran (CONCURRENCY=replace)"


def test_slots_never_owed() -> None:
    assert explain_slot(facts(watermark=SLOT - 86400), SLOT - 60) == "not due yet: fires at 2026-12-07T03:00:00Z"
    odd = explain_slot(facts(slot=SLOT + 60), NOW)
    assert odd == "not a slot of '0 3 * * *'; the nearest are 2026-12-07T03:00:00Z and 2026-12-08T03:00:00Z"
    assert explain_slot(facts(first_seen_at=SLOT + 600), NOW).startswith("before the job was first seen (")
    assert explain_slot(facts(job=job(enabled=False)), NOW).startswith("the job is disabled")


def test_skipped_for_overlap_with_the_fire_still_running_now() -> None:
    every = job("* * * * *", concurrency="forbid")
    earlier = [{"slot": SLOT - 60, "outcome": "skipped", "reason": "overlap"},
               {"slot": SLOT - 120, "outcome": "running", "attempts": 1}]
    entry = {"slot": SLOT, "outcome": "skipped", "reason": "overlap", "policy": "forbid"}
    assert explain_slot(facts(job=every, entry=entry, earlier=earlier), NOW) == \
        "skipped: the fire of 02:58 was still running (CONCURRENCY=forbid)"
