"""TaskHandle's readers: the blocking stream() and the asyncio astream() see the same chunks."""
from __future__ import annotations

import asyncio
import threading
import time

from hydra.sollol.handle import TaskHandle, TaskState
from hydra.sollol.types import RoutingMode, Task, TaskStatus


def _running() -> tuple[TaskState, TaskHandle, int]:
    state = TaskState(Task(prompt="p"), RoutingMode.ASYNC, "general")
    attempt = state.bind("n1", "m:1b", None)  # type: ignore[arg-type]
    assert attempt == 1
    return state, TaskHandle(state, lambda s: False), attempt


def _produce(state: TaskState, attempt: int, count: int, gap_s: float) -> None:
    for i in range(count):
        time.sleep(gap_s)
        state.add(attempt, text=f"t{i} ")
    state.finish(TaskStatus.DONE, attempt=attempt)


def test_astream_yields_every_chunk_in_order_while_another_thread_writes():
    state, handle, attempt = _running()
    producer = threading.Thread(target=_produce, args=(state, attempt, 200, 0.0005))

    async def read() -> list[str]:
        producer.start()
        return [chunk.text async for chunk in handle.astream()]

    texts = asyncio.run(read())
    producer.join()
    assert texts == [f"t{i} " for i in range(200)]
    assert state.watchers == []  # the reader unsubscribed itself


def test_astream_replays_a_finished_task_and_aresult_returns_it():
    state, handle, attempt = _running()
    _produce(state, attempt, 3, 0.0)

    async def read():
        return [c.text async for c in handle.astream()], await handle.aresult()

    texts, result = asyncio.run(read())
    assert texts == ["t0 ", "t1 ", "t2 "]
    assert result.status is TaskStatus.DONE and result.text == "t0 t1 t2 "


class _Watchers(list):
    """A task's watcher list that says when a reader subscribes. astream() subscribes, reads, and
    awaits new chunks in one step of the loop, so once it has subscribed it is waiting."""

    def __init__(self) -> None:
        super().__init__()
        self.added = asyncio.Event()

    def append(self, item) -> None:
        super().append(item)
        self.added.set()


def test_astream_wakes_the_loop_once_per_batch_not_once_per_chunk():
    state, handle, attempt = _running()
    wakes = []

    async def read() -> int:
        loop = asyncio.get_running_loop()
        original = loop.call_soon_threadsafe

        def counting(callback, *args):
            wakes.append(1)
            return original(callback, *args)
        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
        state.watchers = watchers = _Watchers()
        stream = handle.astream()
        first = asyncio.ensure_future(stream.__anext__())
        await asyncio.wait_for(watchers.added.wait(), timeout=5)  # the reader now waits
        for i in range(50):  # 50 chunks written before the loop gets to run again
            state.add(attempt, text=str(i))
        await first
        await stream.aclose()
        return len(wakes)

    assert asyncio.run(read()) == 1


def test_a_reader_that_stops_early_unsubscribes():
    state, handle, attempt = _running()
    state.add(attempt, text="a")

    async def read_one() -> str:
        async for chunk in handle.astream():
            return chunk.text
        return ""

    assert asyncio.run(read_one()) == "a"
    assert state.watchers == []
