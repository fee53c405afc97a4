"""A bound on the exchanges in flight to one upstream (its pool size), cheap when a slot is free.

asyncio.Semaphore would do, but every acquire is a coroutine call and `locked()` walks the waiters in a
generator: several Python calls on every forwarded request, when almost always a slot is simply free. Here a
free slot is one comparison (`try_take`); only a full pool queues a future, served first come, first served,
and a slot freed while someone waits is handed to that waiter directly, so a newcomer cannot overtake it.
"""

from __future__ import annotations

import asyncio
import collections


class Slots:
    def __init__(self, size: int) -> None:
        self.free = size
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def try_take(self) -> bool:
        """Take a slot if one is free and nobody is queued for one."""
        if self.free > 0 and not self._waiters:
            self.free -= 1
            return True
        return False

    async def take(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait in line for a slot (after `try_take` said no). Cancelled while waiting, the caller holds none; a
        slot handed over just before the cancellation is passed on to the next in line."""
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release()  # it was ours already: give it to the next one
            else:
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        """Give the slot to the longest waiter still waiting, else back to the free count."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.free += 1
