"""Which tasks are overdue: past their deadline, or an attempt waiting too long for its first or
next token; and the watchdog thread that asks, every tick, for the overdue ones to be dealt with
(attempts.py acts on them: a stalled attempt fails over, a task past its deadline ends)."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator

from .config import SollolConfig
from .errors import NodeTimeoutError
from .handle import TaskState
from .types import TaskStatus

log = logging.getLogger("hydra.sollol")

WATCHDOG_TICK_S = 0.1


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


class Watchdog:
    """One thread calling ``check(now)`` every ``tick_s``; a crash in one tick never stops it."""

    def __init__(self, check: Callable[[float], None], tick_s: float = WATCHDOG_TICK_S) -> None:
        self._check = check
        self._tick_s = tick_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sollol-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._tick_s):
            try:
                self._check(time.monotonic())
            except Exception:
                log.critical("watchdog crashed in a tick", exc_info=True)
