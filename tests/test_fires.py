"""The places of SCHEDULER_MAX_CONCURRENCY (places.Places): the oldest slot first, then first
come first served, and no place lost to a cancelled call."""

from __future__ import annotations

import asyncio

from scheduler.engine.places import Places


def test_free_places_are_taken_without_waiting_and_the_rest_queue_in_order() -> None:
    async def main():
        places = Places(2)
        assert places.take(0.0) is None and places.take(0.0) is None
        first, second = places.take(0.0), places.take(0.0)
        assert first is not None and second is not None and places.free == 0
        places.give()
        assert first.done() and not second.done()
        places.give()
        assert second.done()
        places.give()
        places.give()
        assert places.free == 2

    asyncio.run(main())


def test_a_cancelled_waiter_takes_no_place_and_a_handed_over_one_passes_it_on() -> None:
    async def main():
        places = Places(1)
        assert places.take(0.0) is None
        gone = asyncio.create_task(places.wait(places.take(0.0)))
        late = places.take(0.0)
        late_task = asyncio.create_task(places.wait(late))
        last = places.take(0.0)
        await asyncio.sleep(0)
        gone.cancel()  # cancelled while waiting: its future is cancelled, it holds nothing
        await asyncio.gather(gone, return_exceptions=True)
        places.give()  # handed to `late`...
        assert late.done() and not last.done()
        late_task.cancel()  # ...which is cancelled before it runs: the place goes on to `last`
        await asyncio.gather(late_task, return_exceptions=True)
        assert last.done() and places.free == 0
        places.give()
        assert places.free == 1

    asyncio.run(main())


def test_waiters_are_served_oldest_slot_first_then_in_the_order_they_came() -> None:
    async def main():
        places = Places(1)
        assert places.take(5.0) is None
        newer, older, older_later = places.take(7.0), places.take(3.0), places.take(3.0)
        assert newer is not None and older is not None and older_later is not None
        places.give()
        assert older.done() and not older_later.done() and not newer.done()
        places.give()
        assert older_later.done() and not newer.done()
        places.give()
        assert newer.done()

    asyncio.run(main())
