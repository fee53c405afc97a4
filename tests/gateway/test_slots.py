"""The upstream pool's slots (gateway/http/slots.py): a bound, first come first served, and no slot lost to a
cancelled waiter."""

from __future__ import annotations

import asyncio

import pytest

from gateway.http.slots import Slots


async def test_free_slots_are_taken_without_waiting_then_refused() -> None:
    slots = Slots(2)
    assert slots.try_take() and slots.try_take()
    assert not slots.try_take()
    slots.release()
    assert slots.try_take()


async def test_a_released_slot_goes_to_the_longest_waiter_not_to_a_newcomer() -> None:
    loop = asyncio.get_running_loop()
    slots = Slots(1)
    assert slots.try_take()
    served: list[str] = []

    async def wait(name: str) -> None:
        await slots.take(loop)
        served.append(name)

    first = asyncio.create_task(wait("first"))
    second = asyncio.create_task(wait("second"))
    await asyncio.sleep(0)  # both are queued
    slots.release()
    assert not slots.try_take()  # handed to "first", not free for a newcomer
    await first
    slots.release()
    await second
    assert served == ["first", "second"]
    slots.release()
    assert slots.free == 1


async def test_a_cancelled_waiter_leaves_the_line_and_loses_no_slot() -> None:
    loop = asyncio.get_running_loop()
    slots = Slots(1)
    assert slots.try_take()
    waiting = asyncio.create_task(slots.take(loop))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    slots.release()
    assert slots.free == 1 and slots.try_take()


async def test_a_slot_handed_over_as_the_waiter_is_cancelled_passes_to_the_next() -> None:
    loop = asyncio.get_running_loop()
    slots = Slots(1)
    assert slots.try_take()
    doomed = asyncio.create_task(slots.take(loop))
    heir = asyncio.create_task(slots.take(loop))
    await asyncio.sleep(0)
    slots.release()  # the slot is now doomed's …
    doomed.cancel()  # … but it is cancelled before it runs again
    with pytest.raises(asyncio.CancelledError):
        await doomed
    await heir  # so the slot reached the next in line
    assert slots.free == 0
    slots.release()
    assert slots.free == 1
