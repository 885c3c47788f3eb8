"""Every task that ended in this process, by node, model, mode, status and source: what ``/metrics``
exports as ``hydra_tasks_total``, so the UI's, the CLI's, the Python API's and the gateway's tasks are
counted alike (the gateway's own ``hydra_gateway_requests_total`` sees only its requests).

The source is where a task came from, as ``Hydra.submit`` was told (``meta["source"]``).
"""
from __future__ import annotations

import threading
from collections import Counter
from typing import NamedTuple

from hydra.sollol.redact import redact_url
from hydra.sollol.types import TaskEvent

# Where a task can come from; ``Hydra.submit`` refuses any other word.
SOURCES = ("ui", "cli", "api", "gateway")
DEFAULT_SOURCE = "api"   # a caller of the Python API names no source


class TaskKey(NamedTuple):
    """The labels of one count. ``node`` and ``model`` are empty for a task that never reached a node."""

    node: str
    model: str
    mode: str
    status: str
    source: str


def check_source(source: str) -> str:
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}; got {source!r}")
    return source


class TaskCounts:
    """A router listener: counts each task once, when it ends. Cheap (one lock, one counter bump)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[TaskKey] = Counter()

    def on_event(self, event: TaskEvent) -> None:
        result = event.result
        if event.kind != "finished" or result is None:
            return
        mode = result.mode or event.task.mode or ""  # RoutingMode is a StrEnum: str() is its value
        key = TaskKey(redact_url(result.node or ""), result.model or "", str(mode), result.status.value,
                      str(event.task.meta.get("source") or DEFAULT_SOURCE))
        with self._lock:
            self._counts[key] += 1

    def copy(self) -> dict[TaskKey, int]:
        with self._lock:
            return dict(self._counts)
