"""The router's listeners (history, the gateway, tests): told of every task event, in the thread
where it happens. A listener that raises is logged and never breaks the engine."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from .types import TaskEvent

log = logging.getLogger("hydra.sollol")

Listener = Callable[[TaskEvent], None]


class Listeners:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: tuple[Listener, ...] = ()  # replaced, never mutated: emit reads it without the lock

    def subscribe(self, listener: Listener) -> None:
        with self._lock:
            self._listeners = (*self._listeners, listener)

    def emit(self, event: TaskEvent) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed on %s of task %s", event.kind, event.task.id)
