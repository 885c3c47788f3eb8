"""Batch rows (Task.background) queue behind interactive work, however long they waited."""
from __future__ import annotations

import pytest

from hydra.sollol.errors import TaskError
from hydra.sollol.handle import TaskState
from hydra.sollol.scheduler import TaskQueue
from hydra.sollol.types import RoutingMode, Task

AGING_S = 10.0


def state(name: str, priority: int, enqueued: float, background: bool) -> TaskState:
    task = Task(prompt=name, priority=priority, background=background)
    return TaskState(task=task, mode=RoutingMode.ASYNC, task_type="general", submitted_mono=enqueued)


@pytest.mark.parametrize("entries, expected", [
    # Without the class, a priority-2 row queued 1,000 s ago would be ~100 levels ahead of a fresh priority-1 task.
    ([("row", 2, 0.0, True), ("interactive", 1, 1000.0, False)], ["interactive", "row"]),
    ([("row", 10, 0.0, True), ("interactive", 1, 0.0, False)], ["interactive", "row"]),
    # Among rows, aging still orders them (nothing starves inside a batch).
    ([("new-high", 9, 100.0, True), ("old-low", 2, 0.0, True)], ["old-low", "new-high"]),
    ([("b", 2, 1.0, True), ("a", 2, 0.0, True), ("i", 5, 3.0, False)], ["i", "a", "b"]),
    # Interactive tasks keep their own aging among themselves.
    ([("row", 2, 0.0, True), ("old-low", 1, 0.0, False), ("new-high", 10, 91.0, False)],
     ["old-low", "new-high", "row"]),
], ids=["aged-row-stays-behind", "row-priority-irrelevant", "rows-age-among-themselves", "fifo-rows", "mixed"])
def test_background_rows_never_age_above_interactive(entries, expected):
    queue = TaskQueue(AGING_S)
    for name, priority, enqueued, background in entries:
        queue.push(state(name, priority, enqueued, background))
    assert [s.task.prompt for s in queue.pop_batch(100)] == expected


def test_background_must_be_a_bool():
    with pytest.raises(TaskError, match="background"):
        Task(prompt="x", background="yes").validate()  # type: ignore[arg-type]
