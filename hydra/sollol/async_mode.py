"""Async mode's two exceptions to its rule: the best free place, CPU nodes first, then the lowest load.

That rule spreads a batch and keeps GPU nodes free for what needs them. It costs time in two cases:
at the tail of a batch, where a busy fast node that frees up soon beats a free slow one
(``tail_guard``), and for a task that will think, which it would send to the slowest place while
the powerful node sits idle (``powerful_for_thinking``). Pure: no I/O, no clock.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .scoring import DEFAULT_OUTPUT_TOKENS, Estimates, decode_tps, estimate_seconds, service_seconds
from .thinking import supports_thinking
from .types import ModelInfo, Placement, TierEntry

if TYPE_CHECKING:  # routing imports this module; these are only types here
    from .routing import RouteRequest, Scored

# A task that will think goes to the free node that finishes it soonest when async's usual pick
# would take more than this many times as long.
THINKING_SPEEDUP = 1.5


def will_think(req: RouteRequest, entry: TierEntry) -> bool:
    """The task asks to think, or its model thinks (by default, in Ollama) and the seed marks it
    "powerful node preferred" (the reasoning model)."""
    return req.thinking or (entry.placement is Placement.POWERFUL and supports_thinking(entry.model))


def powerful_for_thinking(scored: list[Scored], req: RouteRequest, estimates: Estimates,
                          infos: dict[str, ModelInfo]) -> tuple[Scored, str] | None:
    """For a task that will think: the free node that finishes it soonest, when async's usual pick (the
    first free place, CPU first) would take more than THINKING_SPEEDUP times as long; with the rule in
    words for the decision's reason. None when the usual rule stands (no such free node)."""
    free = [s for s in scored if s.free]
    if not free or not will_think(req, free[0].entry):
        return None
    usual = free[0]

    def seconds(s: Scored) -> float:
        return estimate_seconds(s.node, s.entry.model, infos[s.name], req, estimates)

    fastest = min(free, key=seconds)
    fastest_s, usual_s = seconds(fastest), seconds(usual)
    if fastest is usual or usual_s <= THINKING_SPEEDUP * fastest_s:
        return None
    return fastest, (f"thinking: powerful node preferred (est. {fastest_s:.1f} s vs {usual_s:.1f} s "
                     f"on {usual.name})")


def tail_guard(scored: list[Scored], req: RouteRequest, estimates: Estimates,
               infos: dict[str, ModelInfo]) -> Scored | None:
    """Async takes the best free place (CPU first) unless a busy node would still finish the task
    sooner, queue wait included: then the task waits for it. While much work is queued the wait is
    long and every node stays busy; at the tail of a batch this keeps the last tasks off slow nodes,
    which would otherwise set the makespan."""
    def seconds(s: Scored) -> float:
        return estimate_seconds(s.node, s.entry.model, infos[s.name], req, estimates)

    busy = [s for s in scored if not s.free]
    if not busy:
        return next((s for s in scored if s.free), None)
    # estimate_seconds puts every task queued ahead on the busy node itself; they in fact spread over
    # the whole cluster. So a busy node frees up by the sooner of that and the cluster's drain time:
    # the work in flight and ahead (tasks of about this one's size) over every eligible slot's speed.
    output = req.max_tokens or DEFAULT_OUTPUT_TOKENS
    capacity = sum(s.node.slots * decode_tps(s.node, s.entry.model, infos[s.name], estimates) for s in scored)
    drain = (req.ahead + sum(s.node.in_flight for s in scored)) * output / capacity if capacity > 0 else 0.0

    def finish_after_wait(s: Scored) -> float:
        return min(seconds(s), drain + service_seconds(s.node, s.entry.model, infos[s.name], req, estimates))

    best_busy = min(finish_after_wait(s) for s in busy)
    return next((s for s in scored if s.free and seconds(s) <= best_busy), None)
