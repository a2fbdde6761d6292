"""The concurrency places of the fire registry (places.Places): first come first served, and
no place lost to a cancelled fire."""

from __future__ import annotations

import asyncio

from scheduler.engine.places import Places


def test_free_places_are_taken_without_waiting_and_the_rest_queue_in_order() -> None:
    async def main():
        places = Places(2)
        assert places.take() is None and places.take() is None
        first, second = places.take(), places.take()
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
        assert places.take() is None
        gone = asyncio.create_task(places.wait(places.take()))
        late = places.take()
        late_task = asyncio.create_task(places.wait(late))
        last = places.take()
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
