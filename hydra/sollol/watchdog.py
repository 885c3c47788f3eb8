"""Which tasks are overdue: past their deadline, or an attempt waiting too long for its first or
next token. Pure: the router's watchdog thread acts on what this finds."""
from __future__ import annotations

from collections.abc import Iterable, Iterator

from .config import SollolConfig
from .errors import NodeTimeoutError
from .handle import TaskState
from .types import TaskStatus


def overdue(states: Iterable[TaskState], now: float, config: SollolConfig,
            ) -> Iterator[tuple[TaskState, NodeTimeoutError | None]]:
    """(task, None) for a task past its deadline; (task, error) for a stalled running attempt."""
    for state in states:
        if state.deadline_mono is not None and now >= state.deadline_mono:
            yield state, None
            continue
        if state.status is not TaskStatus.RUNNING or state.attempt_started is None:
            continue
        if state.first_token_mono is None:  # a cold load counts here: first_token_timeout_s covers it
            waited, limit, what = now - state.attempt_started, config.first_token_timeout_s, "first token"
        else:
            waited, limit, what = now - (state.last_progress or now), config.idle_timeout_s, "next token"
        if waited >= limit:
            yield state, NodeTimeoutError(f"no {what} after {waited:.1f} s (limit {limit:g} s)", node=state.node or "")
