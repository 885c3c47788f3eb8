"""Work stealing at the tail of a backlog: move a task from a slow node to an idle fast one.

Async routing puts work on CPU nodes first and keeps every node busy while
tasks wait. When the queue then runs dry, a long answer still crawling on a
slow node can set the finish time of the whole batch while a fast node sits
idle. ``plan_moves`` finds running tasks that an idle node would finish well
before their current node (``margin``), measured from the tokens streamed so
far. The router restarts those there (the stream says so). Pure: no I/O, no clock.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .config import SollolConfig
from .eligibility import model_info, why_no_large_load, why_unfit, why_unroutable
from .node import Circuit, NodeView
from .routing import RouteRequest
from .scoring import DEFAULT_OUTPUT_TOKENS, Estimates, decode_tps, estimate_seconds
from .types import RoutingMode

MARGIN = 0.6            # move only when the idle node finishes in under 60 % of the time left
MIN_TOKENS = 3          # a few tokens streamed: the task has really started
MIN_GAIN_S = 0.5        # a restart the user sees must buy at least this much (seconds)


@dataclass(frozen=True)
class Running:
    task_id: str
    node: str
    model: str
    produced: int                 # tokens (text + thinking) streamed by the current attempt
    target_tokens: int | None     # max_tokens, None when the task set none
    prompt_tokens: int
    excluded: frozenset[str]


@dataclass(frozen=True)
class Move:
    task_id: str
    from_node: str
    to_node: str
    model: str
    remaining_s: float
    estimate_s: float


def remaining_seconds(r: Running, tps: float) -> float | None:
    """Time left at the node's decode speed (measured or prior: the same scale as the estimate for the
    node that would take over, so the two compare alike)."""
    if r.produced < MIN_TOKENS or tps <= 0:
        return None
    left = (r.target_tokens or DEFAULT_OUTPUT_TOKENS) - r.produced
    return left / tps if left > 0 else None


def plan_moves(running: Sequence[Running], views: Sequence[NodeView], config: SollolConfig,
               estimates: Estimates, *, margin: float = MARGIN) -> list[Move]:
    """The moves worth making now: the longest remaining answers first, each to the free node that
    would finish it soonest, when that is well before its own node would (``margin``, MIN_GAIN_S)."""
    free = {v.name: v.slots - v.in_flight for v in views if v.in_flight < v.slots and why_unroutable(v) is None}
    if not free:
        return []
    by_name = {v.name: v for v in views}
    moves: list[Move] = []
    for remaining, r in sorted(_time_left(running, by_name, estimates), key=lambda pair: -pair[0]):
        best = _best_move(r, remaining, free, by_name, config, estimates, margin)
        if best is not None:
            moves.append(best)
            free[best.to_node] -= 1
    return moves


def _time_left(running: Sequence[Running], by_name: Mapping[str, NodeView],
               estimates: Estimates) -> list[tuple[float, Running]]:
    """Seconds left of each running task that has really started, on a node whose circuit is closed
    (a half-open node's trial request must run to its end to close the circuit)."""
    left = []
    for r in running:
        current = by_name.get(r.node)
        if current is None or current.circuit is not Circuit.CLOSED:
            continue
        info = model_info(current, r.model)
        remaining = remaining_seconds(r, decode_tps(current, r.model, info, estimates)) if info else None
        if remaining is not None:
            left.append((remaining, r))
    return left


def _best_move(r: Running, remaining: float, free: Mapping[str, int], by_name: Mapping[str, NodeView],
               config: SollolConfig, estimates: Estimates, margin: float) -> Move | None:
    """The free node that would finish ``r`` soonest, if it beats the time left by the margin."""
    request = RouteRequest(mode=RoutingMode.ASYNC, task_type="", entries=(), min_success_rate=0.0,
                           prompt_tokens=r.prompt_tokens, max_tokens=r.target_tokens)
    best: Move | None = None
    for name, slots in free.items():
        if slots <= 0 or name == r.node or name in r.excluded:
            continue
        view = by_name[name]
        info = model_info(view, r.model)
        if info is None or why_unfit(view, info) or why_no_large_load(view, r.model, info, config):
            continue
        estimate = estimate_seconds(view, r.model, info, request, estimates)
        if estimate < remaining * margin and remaining - estimate >= MIN_GAIN_S \
                and (best is None or estimate < best.estimate_s):
            best = Move(r.task_id, r.node, name, r.model, remaining, estimate)
    return best
