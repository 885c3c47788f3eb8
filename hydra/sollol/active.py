"""The router's unfinished tasks, and whether it still takes new ones.

One lock guards both, as CPython's ThreadPoolExecutor guards its shutdown flag
and its work queue: a submit either registers before ``close()`` lists the
tasks (and is ended by it) or is refused. Without it, a submit that passed the
closed check could register after close() had listed the tasks: never ended,
and ``result()`` without a timeout would wait for ever.
"""
from __future__ import annotations

import threading

from .errors import QueueFullError, ShutdownError
from .handle import TaskState
from .types import TaskStatus


class ActiveTasks:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, TaskState] = {}
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def admit(self, state: TaskState, limit: int) -> None:
        """Register a new task; ShutdownError once closed, QueueFullError at ``limit`` tasks."""
        with self._lock:
            if self._closed:
                raise ShutdownError("the router is closed; start a new one")
            if len(self._by_id) >= limit:
                raise QueueFullError(f"{len(self._by_id)} tasks are waiting or running (the maximum); "
                                     "submit again when some have finished")
            self._by_id[state.id] = state

    def close(self) -> list[TaskState] | None:
        """Refuse every later admit; the tasks still unfinished, or None when already closed."""
        with self._lock:
            if self._closed:
                return None
            self._closed = True
            return list(self._by_id.values())

    def discard(self, task_id: str) -> None:
        with self._lock:
            self._by_id.pop(task_id, None)

    def get(self, task_id: str) -> TaskState | None:
        return self._by_id.get(task_id)

    def all(self) -> list[TaskState]:
        with self._lock:
            return list(self._by_id.values())

    def queued(self) -> int:
        return sum(1 for s in self.all() if s.status is TaskStatus.QUEUED)
