"""Store calls that ran in Redis but whose reply never came back (a reply later than the
call's timeout, a connection torn after the write): the leader sends the call again, and
what the first one wrote must still fire, in the same leadership, exactly once.

The engine runs in-process on the virtual clock (tests/virtual_clock.py) against a real
redis-server; a reply is "lost" by running the real call and then raising, as the client
does when the reply comes after its deadline.
"""

from __future__ import annotations

import asyncio
import time

from scheduler.model import FIRE, Claim
from scheduler.store.redis.store import RedisStore
from scheduler.store.protocol import StoreUnavailable
from tests.test_engine_virtual import Run, settings_for


class LostReplies(RedisStore):
    """A real Redis store whose next `lose[call]` replies of `call` are lost after the call ran."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lose: dict[str, int] = {}

    async def _lost(self, name: str, result):
        if self.lose.get(name, 0) > 0:
            self.lose[name] -= 1
            raise StoreUnavailable(f"redis: TimeoutError: the reply of {name} came too late")
        return result

    async def claim(self, epoch, claims):
        return await self._lost("claim", await super().claim(epoch, claims))


def test_a_claim_of_several_slots_of_a_job_sent_again_claims_them_all(redis_server):
    """The second CLAIM of a batch the first one already wrote: every slot of the batch is the
    sender's, not only the job's newest (its watermark), or the older ones stay in flight
    unfired while the same leadership goes on."""
    store = RedisStore(redis_server.url, "again", 3.0, max_skew_s=3600.0)
    base = int(time.time()) - 10
    claims = [Claim("tick", base + i, FIRE) for i in (1, 2, 3)]

    async def main():
        try:
            epoch = await store.acquire()
            assert epoch is not None
            assert await store.claim(epoch, claims) == [1, 1, 1]
            assert await store.claim(epoch, claims) == [1, 1, 1]  # the reply of the first was lost
            assert await store.claim(epoch + 1, claims) == [0, 0, 0]  # never another epoch's
        finally:
            await store.close()

    asyncio.run(main())


def test_a_lost_claim_reply_for_a_catch_up_batch_still_fires_every_slot(redis_server, tmp_path):
    settings = settings_for(tmp_path, {"tick": {"SCHEDULE": "every 1s", "URL": "/t", "CATCHUP": "all"}},
                            SCHEDULER_REDIS_URL=redis_server.url, SCHEDULER_NAMESPACE="vlostreply")
    store = LostReplies(redis_server.url, "vlostreply", settings.lease_ttl_s, max_skew_s=3600.0)
    start = float(int(time.time())) + 0.5
    base = int(start)
    redis_server.client().hset(store.k_slots, "tick", base - 4)  # four slots to make up
    store.lose["claim"] = 1

    async def main():
        async with Run(settings, store, start) as run:
            await run.clock.advance_to(start + 3)
            epochs = {e for *_, e in run.dispatcher.sent}
            assert len(epochs) == 1, "the leadership ended over a lost reply"
            assert run.dispatcher.slots("tick", base) == [-3, -2, -1, 0, 1, 2, 3]
            state = await store.load(["tick"])
            assert state.inflight == []

    asyncio.run(main())


class MasterMoves(RedisStore):
    """A real Redis store whose next renewal answers "not ours", as `renew` does when the
    sentinels report that the master moved; the lease is then taken again at once."""

    moved = False

    async def renew(self):
        if self.moved:
            self.moved = False
            return False
        return await super().renew()


def test_a_fire_waiting_for_its_moment_when_the_leadership_ends_is_delivered_by_the_next(redis_server, tmp_path):
    """A slot claimed ahead waits at its gate; the leadership ends (the master moved) and
    this replica takes the lease again before the moment. The old leadership's fire must not
    hide the slot from the new one, which redelivers it."""
    settings = settings_for(tmp_path, {"tick": {"SCHEDULE": "every 10s", "URL": "/t"}},
                            SCHEDULER_REDIS_URL=redis_server.url, SCHEDULER_NAMESPACE="vgate",
                            SCHEDULER_LEASE_TTL="3s", SCHEDULER_LEASE_RENEW="1s")
    store = MasterMoves(redis_server.url, "vgate", settings.lease_ttl_s, max_skew_s=3600.0)
    base = int(time.time()) // 10 * 10  # slots of `every 10s` fall on multiples of 10
    start = base + 0.8  # renewals at .8 of each second: after the claim at .75

    async def main():
        async with Run(settings, store, start) as run:
            first = run.engine.keeper.epoch
            await run.clock.advance_to(base + 9.76)
            assert (await store.load(["tick"])).inflight[0].slot == base + 10  # claimed ahead
            store.moved = True
            await run.clock.advance_to(base + 9.9)
            assert run.engine.is_leader and run.engine.keeper.epoch > first  # taken again at once
            await run.clock.advance_to(base + 12)
            assert [(s - base, a) for _, _, s, a, _ in run.dispatcher.sent] == [(10, 2)]
            assert (await store.load(["tick"])).inflight == []

    asyncio.run(main())
