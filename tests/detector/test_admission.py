"""Turn-taking of the inference slots (detector_module.admission), on a bare event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest

from detector_module.admission import MAX_REMEMBERED, Admission, Superseded


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


async def _waiter(admission: Admission, camera: str | None, order: list[str | None],
                  wait_s: float = 5.0) -> bool:
    granted = await admission.acquire(camera, 1, wait_s)
    if granted:
        order.append(camera)
    return granted


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def _release(admission: Admission, times: int) -> None:
    """Free the slot ``times`` times, letting each granted waiter run before the next."""
    for _ in range(times):
        admission.release()
        await _settle()


def test_a_freed_slot_goes_to_the_camera_served_longest_ago() -> None:
    async def scenario() -> list[str | None]:
        admission, order = Admission(), []
        for camera in ("a", "b", "greedy"):  # each served once, in this order
            assert await admission.acquire(camera, 1, 1)
            admission.release()
        assert await admission.acquire("greedy", 1, 1)  # greedy holds the slot
        tasks = [asyncio.create_task(_waiter(admission, c, order)) for c in ("greedy", "b", "a")]
        await _settle()
        await _release(admission, 3)
        await asyncio.gather(*tasks)
        admission.release()
        assert admission.busy == 0 and admission.waiting == 0
        return order
    assert run(scenario()) == ["a", "b", "greedy"]


def test_a_newer_frame_replaces_the_waiting_one_of_its_camera() -> None:
    async def scenario() -> None:
        admission, order = Admission(), []
        assert await admission.acquire("x", 1, 1)
        older = asyncio.create_task(_waiter(admission, "cam", order))
        await _settle()
        newer = asyncio.create_task(_waiter(admission, "cam", order))
        await _settle()
        with pytest.raises(Superseded):
            await older
        assert admission.waiting == 1
        admission.release()
        assert await newer and order == ["cam"]
        admission.release()
        assert admission.busy == 0
    run(scenario())


def test_requests_without_a_camera_queue_in_order_and_are_never_replaced() -> None:
    async def scenario() -> None:
        admission, order = Admission(), []
        assert await admission.acquire("x", 1, 1)
        tasks = [asyncio.create_task(_waiter(admission, None, order)) for _ in range(3)]
        await _settle()
        assert admission.waiting == 3
        await _release(admission, 4)
        assert await asyncio.gather(*tasks) == [True, True, True]
        assert order == [None, None, None] and admission.busy == 0
    run(scenario())


def test_a_timeout_or_a_client_gone_leaves_no_slot_taken() -> None:
    async def scenario() -> None:
        admission = Admission()
        assert await admission.acquire("x", 1, 1)
        assert not await admission.acquire("late", 1, 0.05)
        gone = asyncio.create_task(admission.acquire("gone", 1, 5))
        await _settle()
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        admission.release()
        assert admission.busy == 0
        assert await admission.acquire("next", 1, 0.05)  # the slot is free again
    run(scenario())


def test_a_new_camera_id_counts_as_just_served_and_ids_are_bounded() -> None:
    async def scenario() -> list[str | None]:
        admission, order = Admission(), []
        assert await admission.acquire("old", 1, 1)
        admission.release()
        assert await admission.acquire("holder", 1, 1)
        tasks = [asyncio.create_task(_waiter(admission, c, order)) for c in ("new", "old")]
        await _settle()
        await _release(admission, 2)
        await asyncio.gather(*tasks)
        admission.release()
        for i in range(MAX_REMEMBERED + 10):
            assert await admission.acquire(f"id-{i}", 1, 1)
            admission.release()
        assert admission.remembered == MAX_REMEMBERED
        return order
    assert run(scenario()) == ["old", "new"]



def test_the_memory_stays_bounded_when_the_shared_turn_is_its_oldest_entry() -> None:
    """Requests without a camera share the key None; as the oldest idle entry it must be
    forgotten like any other, not taken for "nothing left to forget"."""
    async def scenario() -> int:
        admission = Admission()
        assert await admission.acquire(None, 1, 1)
        admission.release()
        for i in range(MAX_REMEMBERED + 10):
            assert await admission.acquire(f"id-{i}", 1, 1)
            admission.release()
        return admission.remembered
    assert run(scenario()) == MAX_REMEMBERED


def test_a_new_camera_keeps_its_turn_while_every_remembered_one_is_waiting() -> None:
    """Invented ids filling the memory with waiting requests: the next new id must not be
    the one forgotten, or its turn is unknown when a slot is handed on."""
    async def scenario() -> tuple[int, int, int]:
        admission, order = Admission(), []
        assert await admission.acquire("holder", 1, 1)
        ids = [f"id-{i}" for i in range(MAX_REMEMBERED)] + ["late"]
        tasks = [asyncio.create_task(_waiter(admission, c, order)) for c in ids]
        await _settle()
        remembered = admission.remembered
        await _release(admission, len(ids) + 1)
        granted = await asyncio.gather(*tasks)
        return sum(granted), order.index("late"), remembered
    granted, late, remembered = run(scenario())
    assert remembered == MAX_REMEMBERED + 1, "every waiting camera and the new one are kept"
    assert granted == MAX_REMEMBERED + 1
    assert late == MAX_REMEMBERED, "the new id counts as just served: its turn is last"
