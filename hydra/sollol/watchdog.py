"""Which tasks are overdue: past their deadline, or an attempt waiting too long for its first or
next token; and the watchdog thread that asks, every tick, for the overdue ones to be dealt with
(attempts.py acts on them: a stalled attempt fails over, a task past its deadline ends).

How long an attempt may wait for its first token follows what the node has to do
(``first_token_deadline``, computed when the attempt is bound): with the model loaded there, a
bound from that node's measured first-token times (``WARM_FLOOR_S`` before any); with a cold load
first, the load's expected time (measured there, else the size-based prior) with a margin on top.
Never more than ``SollolConfig.first_token_timeout_s``, the ceiling. So a node that accepts a
request and never answers costs a task about ``WARM_FLOOR_S`` when the model is loaded there,
while a 70B model's cold load still gets its minute or two. (It assumes a node's ``slots`` match
what it runs at once, OLLAMA_NUM_PARALLEL: a request queued inside Ollama waits for a slot there.)
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

from .config import SollolConfig
from .errors import NodeTimeoutError
from .handle import TaskState
from .metrics import FirstTokenHistory
from .types import TaskStatus

log = logging.getLogger("hydra.sollol")

WATCHDOG_TICK_S = 0.1
WARM_FLOOR_S = 10.0         # the least a loaded model is given, and what it gets before anything is measured
TTFT_P95_FACTOR = 3.0       # a loaded model: this many times its measured p95 time to first token
PREFILL_PER_DECODE = 10.0   # prompt tokens are read this many times faster than tokens are written (scoring's rule)
PREFILL_MARGIN = 2.0        # ... and the prompt's expected reading time counts this many times
MEASURED_LOAD_MARGIN = 2.0  # a cold load measured on this node before: this many times its mean
PRIOR_LOAD_MARGIN = 3.0     # a cold load never measured there: this many times the size-based prior


class FirstTokenDeadline(NamedTuple):
    """How long one attempt may wait for its first token, and why that long (for the timeout's message)."""

    seconds: float
    basis: str


class FirstTokenBudget(NamedTuple):
    """One attempt's first-token deadlines, both made when it was bound: ``cold`` applies when the model
    was not loaded on the node then, or is not any more (evicted meanwhile, so it is loading again)."""

    attempt: int
    model: str
    warm: FirstTokenDeadline
    cold: FirstTokenDeadline
    cold_at_bind: bool


def first_token_deadline(*, cold: bool, history: FirstTokenHistory, prior_load_s: float, prior_tps: float,
                         prompt_tokens: int, ceiling_s: float) -> FirstTokenDeadline:
    """The first-token deadline of an attempt (pure: a table test covers it)."""
    p95 = history.warm_ttft_p95_s
    if p95 is not None and TTFT_P95_FACTOR * p95 > WARM_FLOOR_S:
        seconds, parts = TTFT_P95_FACTOR * p95, [f"{TTFT_P95_FACTOR:g} x p95 TTFT {p95:.1f} s"]
    else:
        seconds = WARM_FLOOR_S
        parts = [f"{WARM_FLOOR_S:g} s for a loaded model" + (" (nothing measured yet)" if p95 is None else "")]
    prefill = PREFILL_MARGIN * prompt_tokens / ((history.tokens_per_s or prior_tps) * PREFILL_PER_DECODE)
    if prefill >= 0.05:
        seconds += prefill
        parts.append(f"{prefill:.1f} s for a {prompt_tokens}-token prompt")
    if cold:
        if history.load_s is not None:
            load = MEASURED_LOAD_MARGIN * history.load_s
            parts.append(f"cold load {MEASURED_LOAD_MARGIN:g} x {history.load_s:.1f} s measured")
        else:
            load = PRIOR_LOAD_MARGIN * prior_load_s
            parts.append(f"cold load {PRIOR_LOAD_MARGIN:g} x {prior_load_s:.1f} s expected for its size")
        seconds += load
    basis = " + ".join(parts)
    if seconds > ceiling_s:
        return FirstTokenDeadline(ceiling_s, f"the ceiling, first_token_timeout_s (uncapped: {basis})")
    return FirstTokenDeadline(seconds, basis)


# (task) -> the first-token deadline of its current attempt
FirstTokenLimit = Callable[[TaskState], FirstTokenDeadline]


def overdue(states: Iterable[TaskState], now: float, config: SollolConfig,
            first_token_limit: FirstTokenLimit | None = None,
            ) -> Iterator[tuple[TaskState, NodeTimeoutError | None]]:
    """(task, None) for a task past its deadline; (task, error) for a stalled running attempt.
    Without ``first_token_limit`` every attempt gets the ceiling."""
    for state in states:
        if state.deadline_mono is not None and now >= state.deadline_mono:
            yield state, None
            continue
        if state.status is not TaskStatus.RUNNING or state.attempt_started is None:
            continue
        if state.first_token_mono is None:
            waited, what = now - state.attempt_started, "first token"
            deadline = (first_token_limit(state) if first_token_limit is not None
                        else FirstTokenDeadline(config.first_token_timeout_s, "first_token_timeout_s"))
        else:
            waited, what = now - (state.last_progress or now), "next token"
            deadline = FirstTokenDeadline(config.idle_timeout_s, "idle_timeout_s")
        if waited >= deadline.seconds:
            yield state, NodeTimeoutError(f"no {what} after {waited:.1f} s (limit {deadline.seconds:.1f} s: "
                                          f"{deadline.basis})", node=state.node or "")


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
