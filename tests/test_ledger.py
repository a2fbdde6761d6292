"""The ledger in both stores (SPEC 8), against a real redis-server and a real SQLite file:
skipped, dropped and paused slots written by the claim, outcomes by the finish, a slot
written again replacing its entry, manual runs by id, pages with a cursor and time bounds,
retention by count and by age, the log of leaderships, and `state gc` of a gone job's ledger."""

from __future__ import annotations

import asyncio
import time

import pytest

from scheduler.model import CLAIMED, PAUSED, SKIP, TRIGGER, Claim, Finished, Outcome, TriggerRequest
from scheduler.store.redis.store import RedisStore
from scheduler.store.sqlite.store import LocalStore
from tests.support import RedisServer


@pytest.fixture(params=["redis", "local"])
def make_store(request, tmp_path):
    server = RedisServer() if request.param == "redis" else None
    made = []

    def make(keep: int = 20, age_s: float | None = None, replica: str | None = None):
        if server is not None:
            store = RedisStore(server.url, "ledger", 5.0, history=keep, history_age_s=age_s, replica_id=replica)
        else:
            store = LocalStore(str(tmp_path / "state.db"), replica, history=keep, history_age_s=age_s)
        made.append(store)
        return store

    yield make
    if server is not None:
        server.close()


def ok(slot: int, attempts: int = 1) -> Outcome:
    return Outcome("ok", attempts, 0.25, slot + 0.5, 200)


def run(coro):
    return asyncio.run(coro)


def test_skips_drops_pauses_and_outcomes_are_entries_by_id(make_store) -> None:
    async def go():
        store = make_store()
        try:
            epoch = await store.acquire()
            base = int(time.time()) - 100
            assert await store.claim(epoch, [Claim("j", base)]) == [CLAIMED]
            assert await store.claim(epoch, [
                Claim("j", base + 1, SKIP, reason="overlap", policy="forbid"),
                Claim("j", base + 2, SKIP, reason="missed", policy="latest"),
            ]) == [CLAIMED, CLAIMED]
            await store.finish([Finished(Claim("j", base), epoch, ok(base), 0.012)])
            await store.set_paused("j", True)
            assert await store.claim(epoch, [Claim("j", base + 3)]) == [PAUSED]
            await store.set_paused("j", False)
            assert await store.request_trigger(TriggerRequest("m-1", "j", base + 3)) is None
            assert await store.claim(epoch, [Claim("j", base + 3, TRIGGER, trigger="m-1")]) == [CLAIMED]
            await store.finish([Finished(Claim("j", base + 3, trigger="m-1"), epoch,
                                         Outcome("failed", 2, 1.5, base + 5.0, 503, "HTTP 503", "busy"), 2.0)])
            entries, more = await store.runs("j")
            one = await store.run("j", str(base + 1))
            manual = await store.run("j", "manual:m-1")
            missing = await store.run("j", str(base + 50))
            history = await store.history("j")
            return base, epoch, entries, more, one, manual, missing, history
        finally:
            await store.close()

    base, epoch, entries, more, one, manual, missing, history = run(go())
    assert more is None
    fates = {e["id"]: (e["outcome"], e.get("reason"), e.get("policy")) for e in entries}
    assert fates == {
        str(base): ("ok", None, None),
        str(base + 1): ("skipped", "overlap", "forbid"),
        str(base + 2): ("dropped", "missed", "latest"),
        str(base + 3): ("skipped", "paused", None),
        "manual:m-1": ("failed", None, None),
    }
    assert [e["slot"] for e in entries] == sorted((e["slot"] for e in entries), reverse=True)
    assert one is not None and one["outcome"] == "skipped" and one["fencing_token"] == epoch
    assert manual is not None and manual["trigger"] == "m-1" and manual["attempts"] == 2
    assert manual["http_status"] == 503 and manual["excerpt"] == "busy" and manual["lateness_ms"] == 2000.0
    assert missing is None
    # history() keeps its meaning: finished fires only, without the ledger's ids
    assert {e["outcome"] for e in history} == {"ok", "failed"} and all("id" not in e for e in history)


def test_a_slot_written_again_replaces_its_entry(make_store) -> None:
    async def go():
        store = make_store()
        try:
            epoch = await store.acquire()
            slot = int(time.time()) - 50
            assert await store.claim(epoch, [Claim("j", slot)]) == [CLAIMED]
            await store.finish([Finished(Claim("j", slot), epoch, Outcome("failed", 1, 0.1, slot + 1.0, 500))])
            # the same slot sent again (a redelivery or a redrive): one entry, the newest
            assert await store.claim(epoch, [Claim("j", slot, "redeliver", 2)]) in ([CLAIMED], [0])
            await store.finish([Finished(Claim("j", slot), epoch, ok(slot, attempts=2))])
            return slot, await store.runs("j"), await store.run("j", str(slot))
        finally:
            await store.close()

    slot, (entries, _), entry = run(go())
    assert [e["id"] for e in entries] == [str(slot)]
    assert entry is not None and entry["outcome"] == "ok" and entry["attempts"] == 2


def test_pages_newest_first_with_a_cursor_and_time_bounds(make_store) -> None:
    async def go():
        store = make_store()
        try:
            epoch = await store.acquire()
            base = int(time.time()) - 1000
            for i in range(7):
                assert await store.claim(epoch, [Claim("j", base + i)]) == [CLAIMED]
                await store.finish([Finished(Claim("j", base + i), epoch, ok(base + i))])
            for rid in ("a", "b"):  # two manual runs in one second: ordered by id under the slot
                await store.finish([Finished(Claim("j", base + 3, trigger=rid), epoch, ok(base + 3))])
            pages, cursor = [], None
            while True:
                entries, cursor = await store.runs("j", limit=3, cursor=cursor)
                pages.append([e["id"] for e in entries])
                if cursor is None:
                    break
            bounded, _ = await store.runs("j", before=base + 5, after=base + 1, limit=100)
            try:
                await store.runs("j", cursor="not-a-cursor")
            except ValueError as exc:
                bad = str(exc)
            return base, pages, [e["id"] for e in bounded], bad
        finally:
            await store.close()

    base, pages, bounded, bad = run(go())
    # within one second, ids newest first as text: the manual runs, then the slot
    ids = [str(base + i) for i in (6, 5, 4)] + ["manual:b", "manual:a", str(base + 3)] + [str(base + i) for i in (2, 1, 0)]
    assert pages == [ids[0:3], ids[3:6], ids[6:9]]
    assert bounded == [str(base + 4), "manual:b", "manual:a", str(base + 3), str(base + 2)]
    assert "cursor" in bad


def test_retention_by_count_keeps_the_newest_slots(make_store) -> None:
    async def go():
        store = make_store(keep=4)
        try:
            epoch = await store.acquire()
            base = int(time.time()) - 1000
            for i in range(10):
                assert await store.claim(epoch, [Claim("j", base + i)]) == [CLAIMED]
                await store.finish([Finished(Claim("j", base + i), epoch, ok(base + i))])
            # an old slot finishing late is the oldest entry: trimmed at once
            await store.finish([Finished(Claim("j", base - 5), epoch, ok(base - 5))])
            return base, [e["slot"] for e in (await store.runs("j", limit=100))[0]], await store.run("j", str(base))
        finally:
            await store.close()

    base, slots, gone = run(go())
    assert slots == [base + 9, base + 8, base + 7, base + 6]
    assert gone is None


def test_retention_by_age_trims_the_oldest_end_on_write(make_store) -> None:
    async def go():
        store = make_store(keep=100, age_s=3600)
        try:
            epoch = await store.acquire()
            now = int(time.time())
            old = [now - 7200 - i for i in range(3)]
            for slot in sorted(old):
                await store.finish([Finished(Claim("j", slot), epoch, ok(slot))])
            await store.finish([Finished(Claim("j", now - 60), epoch, ok(now - 60))])
            await store.finish([Finished(Claim("j", now - 30), epoch, ok(now - 30))])
            return now, [e["slot"] for e in (await store.runs("j", limit=100))[0]]
        finally:
            await store.close()

    now, slots = run(go())
    assert slots == [now - 30, now - 60]


def test_leaderships_are_logged_with_the_previous_leader_last_seen(make_store) -> None:
    async def go():
        first = make_store(replica="first")
        e1 = await first.acquire()
        assert e1 is not None
        await first.renew()
        await first.claim(e1, [Claim("j", int(time.time()) - 5)])
        await first.release()
        await first.close()
        second = make_store(replica="second")
        try:
            e2 = await second.acquire()
            return e1, e2, await second.leaderships()
        finally:
            await second.close()

    e1, e2, log = run(go())
    assert [(r["epoch"], r["replica"]) for r in log[:2]] == [(e2, "second"), (e1, "first")]
    assert log[0]["previous"] == "first"
    assert log[0]["previous_seen_at"] <= log[0]["acquired_at"] and log[0]["previous_seen_at"] >= log[1]["acquired_at"]


def test_state_gc_deletes_a_gone_jobs_ledger(make_store) -> None:
    async def go():
        store = make_store()
        try:
            epoch = await store.acquire()
            slot = int(time.time()) - 7200
            assert await store.claim(epoch, [Claim("gone", slot)]) == [CLAIMED]
            await store.finish([Finished(Claim("gone", slot), epoch, ok(slot))])
            assert (await store.runs("gone"))[0]
            deleted = await store.gc([], 3600)
            return deleted, await store.runs("gone")
        finally:
            await store.close()

    deleted, (entries, _) = run(go())
    assert "ledger gone" in deleted
    assert entries == []
