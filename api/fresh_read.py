"""FreshRead: concurrent callers of an async read share one round trip, and never one that started before
they asked.

Every /analytics request reads `ingest.data_version` (its cache key). Under load most of those reads
overlap, and one read answers all of them equally well — as long as it *started* after each of them
arrived: a read already in flight may have been sent before an ingest commit the caller has seen
complete, and sharing it would serve the older version's answer after the commit (the per-request read
never does). So a caller arriving while a read is in flight waits for the next one, which starts the
moment the current one ends and answers everyone who queued meanwhile. At most two reads exist at a time
(one in flight, one forming); a lone caller pays one round trip as before, a crowd pays about two
between them.

A failure of the shared read fails everyone waiting on it (as each would have failed alone), and the
next caller starts afresh.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class FreshRead(Generic[T]):
    """Coalesces calls of `read` on one event loop (create it on the loop that will call it)."""

    def __init__(self, read: Callable[[], Awaitable[T]]) -> None:
        self._read = read
        self._running: asyncio.Future[T] | None = None  # the read in flight
        self._next: asyncio.Future[T] | None = None  # callers who arrived while it was in flight
        self.reads = 0  # round trips started (for tests and curiosity)

    async def __call__(self) -> T:
        if self._running is None:
            future = self._start()
        else:
            if self._next is None:
                self._next = asyncio.get_running_loop().create_future()
            future = self._next
        # shield: a caller that gives up (client gone, timeout) must not cancel the read the others share.
        return await asyncio.shield(future)

    def _start(self) -> asyncio.Future[T]:
        self.reads += 1
        task = asyncio.ensure_future(self._read())
        self._running = task
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Future[T]) -> None:
        self._running = None
        if not task.cancelled():
            task.exception()  # retrieved: every waiter got it through its shield; no "never retrieved" noise
        waiting, self._next = self._next, None
        if waiting is None:
            return
        waiting.add_done_callback(_retrieve)  # if every waiter gave up, nobody else reads its outcome
        self._start().add_done_callback(lambda done: _settle(waiting, done))


def _retrieve(future: asyncio.Future[T]) -> None:
    if not future.cancelled():
        future.exception()


def _settle(target: asyncio.Future[T], source: asyncio.Future[T]) -> None:
    if target.done():
        return
    if source.cancelled():
        target.cancel()
    elif (exc := source.exception()) is not None:
        target.set_exception(exc)
    else:
        target.set_result(source.result())
