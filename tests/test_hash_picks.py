"""`H` resolved to the job's numbers before croniter reads the expression.

tests/data/h_picks.json holds, for 36 expressions (every field, `H`, `H/n`, `H(a-b)`,
`H(a-b)/n`, 5 and 6 fields, DST zones) and 240 job names, the next two slots after a fixed
instant, or the error, as croniter's own `hash_id` expansion gave them: the numbers a job
gets never change. The other tests check the picks against croniter's expansion itself
and that jobs whose picks agree share one parsed expression.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from croniter import croniter

from scheduler.schedule import cron_fields as cronfields
from scheduler.schedule import slots as sched

TABLE = json.loads((Path(__file__).parent / "data" / "h_picks.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("key", sorted(TABLE["slots"]))
def test_every_job_keeps_the_slots_it_had(key: str) -> None:
    expr, tz = key.split("|")
    after = TABLE["after"]
    for name, want in zip(TABLE["names"], TABLE["slots"][key]):
        try:
            spec = sched.parse(expr, tz, name)
        except sched.ScheduleError as exc:
            got: object = str(exc)
        else:
            first = sched.next_after(spec, after)
            got = [first, sched.next_after(spec, first)]
        assert got == want, (expr, tz, name)


@pytest.mark.parametrize("expr", sorted({k.split("|")[0] for k in TABLE["slots"]}))
def test_picks_are_croniters_own(expr: str) -> None:
    fields = expr.split()
    six = len(fields) == 6
    normal = cronfields.normalize(fields, six)
    for i in range(300):
        name = f"name-{i}-{'é' * (i % 3)}"
        resolved = cronfields.resolve_hash(normal, six, name)
        assert not any("H" in f for f in resolved)
        want = croniter.expand(" ".join(normal), hash_id=name.encode(), second_at_beginning=six)[0]
        got = croniter.expand(" ".join(resolved), second_at_beginning=six)[0]
        assert got == want, (expr, name, resolved)


def test_jobs_with_the_same_picks_share_one_parsed_expression() -> None:
    names = [f"tenant-{i}-digest" for i in range(3000)]
    before = sched._matcher.cache_info().misses  # noqa: SLF001 - the cache is what is shared
    specs = [sched.parse("H H(0-5) * * *", "UTC", name) for name in names]
    exprs = {spec.exprs for spec in specs}
    assert len(exprs) <= 60 * 6  # at most one per (minute, hour) pick
    assert all("H" not in e for spec in specs for e in spec.exprs)
    assert sched._matcher.cache_info().misses - before <= len(exprs)  # noqa: SLF001
    # `H` resolved, a Cron no longer depends on the job: jobs whose picks agree share one
    assert len({id(spec) for spec in specs}) == len(exprs)
    assert {spec.hash_id for spec in specs} == {""}


def test_an_unresolved_expression_still_names_itself_in_errors() -> None:
    with pytest.raises(sched.ScheduleError, match=r"'H H 30 2 \*' never matches a date"):
        sched.parse("H H 30 2 *", "UTC", "any")


def test_an_expression_that_never_matches_is_searched_once_per_pick() -> None:
    before = sched._cron.cache_info()  # noqa: SLF001 - the cache is what is shared
    for i in range(2000):
        with pytest.raises(sched.ScheduleError, match="never matches a date"):
            sched.parse("H H 30 2 *", "UTC", f"tenant-{i}")
    after = sched._cron.cache_info()  # noqa: SLF001
    assert after.misses - before.misses <= 60 * 24  # one croniter search per (minute, hour) pick
    assert after.hits - before.hits >= 2000 - 60 * 24
