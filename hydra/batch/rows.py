"""The plain data of batches: options, a row's outcome, a batch's info and its progress aggregates."""
from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

ROW_STATUSES = ("pending", "running", "done", "failed", "cancelled")


@dataclass(frozen=True)
class BatchOptions:
    """How every row of a batch is submitted."""

    model: str | None = None
    task_type: str | None = None
    mode: str = "async"
    priority: int = 2
    max_tokens: int | None = None
    format: str | dict[str, Any] | None = None
    system: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "task_type": self.task_type, "mode": self.mode, "priority": self.priority,
                "max_tokens": self.max_tokens, "format": self.format, "system": self.system}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BatchOptions:
        return cls(**{k: data[k] for k in cls().as_dict() if k in data})


class Claimed(NamedTuple):
    """A row taken to run: its prompt, or its own task fields (a gateway batch's request)."""

    row: int
    prompt: str
    task_id: str
    request: dict[str, Any] | None


@dataclass(frozen=True)
class RowOutcome:
    """What a finished task leaves in its row."""

    status: str                  # done / failed / cancelled
    answer: str = ""
    node: str | None = None
    model: str | None = None
    ttft_s: float | None = None
    duration_s: float | None = None
    tokens: int | None = None
    tokens_per_s: float | None = None
    error: str | None = None
    prompt_tokens: int | None = None


@dataclass(frozen=True)
class BatchInfo:
    id: str
    name: str
    status: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    total: int
    template: str
    options: BatchOptions
    columns: tuple[str, ...]
    source: str
    error: str | None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Progress:
    """Aggregates of one batch, for the page's bar and the CLI's (no row is read)."""

    batch: BatchInfo
    counts: dict[str, int]                     # per row status
    by_node: dict[str, int]                    # rows done per node
    tokens: int                                # answer tokens of the rows done
    first_start: float | None
    last_finish: float | None

    @property
    def done(self) -> int:
        return self.counts.get("done", 0)

    @property
    def failed(self) -> int:
        return self.counts.get("failed", 0)

    @property
    def cancelled(self) -> int:
        return self.counts.get("cancelled", 0)

    @property
    def remaining(self) -> int:
        return self.counts.get("pending", 0) + self.counts.get("running", 0)

    @property
    def finished(self) -> int:
        return self.done + self.failed + self.cancelled

    @property
    def elapsed_s(self) -> float | None:
        if self.first_start is None or self.last_finish is None:
            return None
        end = self.last_finish if self.remaining == 0 or self.batch.status != "running" else time.time()
        return max(1e-9, end - self.first_start)

    @property
    def tokens_per_s(self) -> float | None:
        elapsed = self.elapsed_s
        return self.tokens / elapsed if elapsed and self.tokens else None

    @property
    def eta_s(self) -> float | None:
        """Rows left at the rate rows ended so far; None before the first end or once nothing is left."""
        elapsed = self.elapsed_s
        if not self.remaining or not self.finished or not elapsed or self.batch.status != "running":
            return None
        return self.remaining * elapsed / self.finished
