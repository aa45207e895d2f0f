"""api.fresh_read.FreshRead: overlapping callers share a read, but only one that started after they asked."""

from __future__ import annotations

import asyncio

import pytest

from api.fresh_read import FreshRead


class Store:
    """A value behind a read that takes a while, like `SELECT version` over the network: the read sees the
    value as of its start (its snapshot), and the test can change the value while it is in flight."""

    def __init__(self) -> None:
        self.value = 1
        self.started = 0
        self.release = asyncio.Event()

    async def read(self) -> int:
        self.started += 1
        seen = self.value
        await self.release.wait()
        return seen


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_a_caller_arriving_during_a_read_gets_a_read_started_after_it_arrived() -> None:
    async def scenario() -> tuple[int, int, int]:
        store = Store()
        shared = FreshRead(store.read)
        first = asyncio.create_task(shared())
        await _settle()
        store.value = 2  # an ingest commits while the first read is in flight...
        late = asyncio.create_task(shared())  # ...and then a request arrives
        await _settle()
        store.release.set()
        return await first, await late, store.started

    first, late, reads = asyncio.run(scenario())
    assert first == 1
    assert late == 2  # never the in-flight read's older snapshot
    assert reads == 2


def test_callers_arriving_during_one_read_share_the_next_one() -> None:
    async def scenario() -> tuple[list[int], int, int]:
        store = Store()
        shared = FreshRead(store.read)
        first = asyncio.create_task(shared())
        await _settle()
        store.value = 7
        crowd = [asyncio.create_task(shared()) for _ in range(20)]
        await _settle()
        store.release.set()
        await first
        return list(await asyncio.gather(*crowd)), store.started, shared.reads

    values, started, reads = asyncio.run(scenario())
    assert values == [7] * 20
    assert started == reads == 2  # 21 callers, two round trips


def test_a_lone_caller_reads_every_time() -> None:
    async def scenario() -> list[int]:
        store = Store()
        store.release.set()
        shared = FreshRead(store.read)
        out = []
        for value in (3, 4, 5):
            store.value = value
            out.append(await shared())
        return out

    assert asyncio.run(scenario()) == [3, 4, 5]


def test_a_failed_read_fails_its_sharers_and_the_next_caller_reads_afresh() -> None:
    calls = 0

    async def flaky() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        if calls <= 2:
            raise ConnectionError("database went away")
        return 9

    async def scenario() -> tuple[list[object], int]:
        shared = FreshRead(flaky)
        first = asyncio.create_task(shared())
        await _settle()
        crowd = [asyncio.create_task(shared()) for _ in range(3)]
        outcomes = await asyncio.gather(first, *crowd, return_exceptions=True)
        return [type(o).__name__ for o in outcomes], await shared()

    outcomes, after = asyncio.run(scenario())
    assert outcomes == ["ConnectionError"] * 4
    assert after == 9


def test_a_caller_that_gives_up_does_not_cancel_the_read_others_wait_for() -> None:
    async def scenario() -> int:
        store = Store()
        shared = FreshRead(store.read)
        impatient = asyncio.create_task(shared())
        patient = asyncio.create_task(shared())
        await _settle()
        impatient.cancel()
        await _settle()
        store.release.set()
        with pytest.raises(asyncio.CancelledError):
            await impatient
        return await patient

    assert asyncio.run(scenario()) == 1
