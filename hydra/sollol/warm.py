"""Prefix-aware placement's part of routing (prefix_cache.py has the record, scoring.py the arithmetic):
the words a decision records for a candidate's cache, and async's exception for a warm node.

Async's rule is the first free place, CPU nodes first. A follow-up whose history is cached on a free
GPU node would then recompute that history on a CPU node: with the cache, the warm node goes first
when the usual pick would take clearly longer. And a follow-up whose history is cached on a slow node
would come back to it turn after turn, since a warm CPU node beats every other CPU node: the slow
turns would pile up on the few conversations that once landed there and set the makespan. So a
follow-up leaves a warm node for a free one that finishes it in at most half the time.
With nothing cached the rule stands as it was.
Pure: no I/O, no clock.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .model_names import model_key
from .prefix_cache import Affinity
from .scoring import PREFILL_PER_DECODE, Estimates, decode_tps, estimate_seconds
from .types import ModelInfo

if TYPE_CHECKING:  # routing imports this module; these are only types here
    from .routing import RouteRequest, Scored

# Async sends a task away from its usual pick (the first free place, CPU first) to a free node holding
# its prompt in cache when more than this share of the usual pick's time would go to recomputing what
# that node holds: then the cache, not the node's speed, makes the difference.
RECOMPUTE_SHARE = 0.5
# ... and to any free node that finishes it in at most this share of the usual pick's time, when the
# usual pick is where its history is cached (a slow warm node must not hold a conversation).
SOONER_SHARE = 0.5


def warm_place(scored: list[Scored], req: RouteRequest, estimates: Estimates,
               infos: dict[str, ModelInfo]) -> tuple[Scored, str] | None:
    """Async with part of the prompt cached on a free node other than its usual pick: that warm node, when
    it finishes sooner and the usual pick would spend more than RECOMPUTE_SHARE of its time recomputing
    the cached part; with the rule in words. None when the usual rule stands."""
    affinity = req.affinity
    free = [s for s in scored if s.free]
    if affinity is None or not affinity.hits or not free:
        return None
    usual = free[0]
    estimated: dict[int, float] = {}  # each candidate's estimate, made once (by id: hashing would hash its node view)

    def seconds(s: Scored) -> float:
        if id(s) not in estimated:
            estimated[id(s)] = estimate_seconds(s.node, s.entry.model, infos[s.name], req, estimates)
        return estimated[id(s)]

    usual_s = seconds(usual)
    if affinity.cached(usual.name, model_key(usual.entry.model)) and len(free) > 1:
        fastest = min(free[1:], key=seconds)
        fastest_s = seconds(fastest)
        if fastest_s <= SOONER_SHARE * usual_s:
            return fastest, (f"warm cache on a slow node: est. {fastest_s:.1f} s vs {usual_s:.1f} s on "
                             f"{usual.name}, cache included")
    warm = [s for s in free if s is not usual and affinity.cached(s.name, model_key(s.entry.model))]
    if not warm:
        return None
    best = min(warm, key=seconds)
    best_s = seconds(best)
    key = model_key(usual.entry.model)
    speed = affinity.speeds.get((usual.name, key)) or \
        decode_tps(usual.node, usual.entry.model, infos[usual.name], estimates) * PREFILL_PER_DECODE
    recompute = max(0, affinity.cached(best.name, key) - affinity.cached(usual.name, key)) / speed
    if best_s >= usual_s or recompute <= RECOMPUTE_SHARE * usual_s:
        return None
    return best, (f"warm cache: est. {best_s:.1f} s vs {usual_s:.1f} s on {usual.name}, "
                  f"{recompute:.1f} s of it recomputing the history")


def cached_words(affinity: Affinity, node: str, model: str) -> str:
    """"; 1,840 of 1,900 prompt tokens cached on light" ("" when none are): a candidate's cache, in words."""
    key = model_key(model)
    cached = affinity.cached(node, key)
    if not cached:
        return ""
    speed = affinity.speeds.get((node, key))
    saves = f", saves {cached / speed:.1f} s of prefill" if speed else ""
    return f"; {cached:,} of {affinity.prompt_tokens:,} prompt tokens cached on {node}{saves}"
