"""How long a task would take on a node, and the three modes' scores (lower is better).

Pure arithmetic over a frozen NodeView and the measured statistics: no I/O, no clock.
``routing`` scores candidates with these; ``rebalance`` compares a running task's time
left with what an idle node would need.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from .eligibility import needs_load
from .metrics import Estimate, SuccessRate
from .model_names import model_key
from .node import NodeView, prior_load_s, prior_tps
from .types import ModelInfo, Placement, RoutingMode, TierEntry

if TYPE_CHECKING:  # routing imports this module; the request is only a type here
    from .prefix_cache import Affinity
    from .routing import RouteRequest

DEFAULT_OUTPUT_TOKENS = 200  # the answer length assumed for a task that sets no max_tokens

Estimates = Mapping[tuple[str, str], Estimate]     # (node, model) -> what RollingStats measured
SuccessRates = Mapping[str, SuccessRate]           # node -> its recent success rate


def estimate_seconds(node: NodeView, model: str, info: ModelInfo, req: RouteRequest,
                     estimates: Estimates, prior_cap: float | None = None) -> float:
    """Queue wait + cold load + prefill + decode at this node's measured (or prior) speed.
    ``prior_cap`` bounds the prior speed (never a measured one): see ``score_fast``."""
    wait = 0.0
    if node.in_flight >= node.slots:
        # This task starts after the running ones free a slot and the tasks queued ahead have gone.
        decode = (req.max_tokens or DEFAULT_OUTPUT_TOKENS) / decode_tps(node, model, info, estimates, prior_cap)
        wait = (node.in_flight - node.slots + 1 + req.ahead) / node.slots * decode
    return wait + service_seconds(node, model, info, req, estimates, prior_cap)


def service_seconds(node: NodeView, model: str, info: ModelInfo, req: RouteRequest, estimates: Estimates,
                    prior_cap: float | None = None) -> float:
    """Cold load + prefill + decode once the task has a slot."""
    ttft, tps, load = estimates.get((node.name, model), NO_ESTIMATE)
    tps = tps or _prior(node, info, prior_cap)
    cold = (load if load is not None else prior_load_s(node.gpu, info)) if needs_load(node, model) else 0.0
    prefill = ttft if (ttft is not None and not cold) else req.prompt_tokens / (tps * PREFILL_PER_DECODE)
    if req.affinity is not None:
        prefill = affine_prefill(req.affinity, node.name, model_key(model), prefill, tps, bool(cold))
    return cold + prefill + (req.max_tokens or DEFAULT_OUTPUT_TOKENS) / tps


NO_ESTIMATE: Estimate = (None, None, None)
PREFILL_PER_DECODE = 10.0  # the prior: a node evaluates a prompt about ten times as fast as it decodes


# --- prefix-aware placement (prefix_cache.py): the prefill a node's KV cache saves ---

def affine_prefill(affinity: Affinity, node: str, key: str, prefill: float, tps: float, cold: bool) -> float:
    """The prefill seconds of the task on ``node`` given what its cache holds. With the node's prefill
    speed measured, the uncached tokens at that speed (plus one decode step, the first token); before a
    sample, ``prefill`` (the usual estimate) less the cached tokens at the prior speed. A cold load
    starts with an empty cache."""
    speed = affinity.speeds.get((node, key))
    cached = 0 if cold else affinity.hits.get((node, key), 0)
    if speed:
        return (affinity.prompt_tokens - cached) / speed + 1.0 / tps
    if not cached:
        return prefill
    return max(0.0, prefill - cached / (tps * PREFILL_PER_DECODE))


def prefill_saved(affinity: Affinity | None, node: str, key: str, tps: float) -> float:
    """Seconds of prefill the cached tokens on ``node`` save (0 when none are cached)."""
    if affinity is None:
        return 0.0
    cached = affinity.hits.get((node, key), 0)
    if not cached:
        return 0.0
    speed = affinity.speeds.get((node, key)) or tps * PREFILL_PER_DECODE
    return cached / speed


# How much a warm cache weighs in the modes that do not score by seconds: the share of the task's
# work it saves, times this. Async's GPU penalty is 2.0, so this alone rarely outweighs "CPU nodes
# first" (warm.py's exception does, when the CPU pick would mostly recompute the history); among CPU
# nodes, or equally capable ones in reliable, the warm one wins.
WARM_WEIGHT = {RoutingMode.ASYNC: 3.0, RoutingMode.RELIABLE: 0.5}


def warm_bonus(node: NodeView, model: str, info: ModelInfo, req: RouteRequest, estimates: Estimates) -> float:
    """Async and reliable: subtracted from the mode's score, in its units (0 when nothing is cached)."""
    affinity = req.affinity
    if affinity is None or not affinity.hits or needs_load(node, model):
        return 0.0
    tps = decode_tps(node, model, info, estimates)
    saved = prefill_saved(affinity, node.name, model_key(model), tps)
    if saved <= 0.0:
        return 0.0
    return WARM_WEIGHT.get(req.mode, 0.0) * saved / (saved + service_seconds(node, model, info, req, estimates))


def decode_tps(node: NodeView, model: str, info: ModelInfo, estimates: Estimates,
               prior_cap: float | None = None) -> float:
    """Measured tokens/s of ``model`` on ``node`` (eval_count / eval_duration), else the prior."""
    return estimates.get((node.name, model), NO_ESTIMATE)[1] or _prior(node, info, prior_cap)


def _prior(node: NodeView, info: ModelInfo, cap: float | None) -> float:
    tps = prior_tps(node.gpu, info)
    return tps if cap is None else min(tps, cap)


# --- the modes' scores ---

Scorer = Callable[[int, TierEntry, NodeView, ModelInfo, "RouteRequest", Estimates, float, SuccessRates], float]


def _placement_bias(entry: TierEntry, node: NodeView, top: float) -> float:
    """Small tie-breaker toward the seed's arrows: powerful entries to capable nodes, light to light."""
    if top <= 0 or entry.placement is Placement.ANY:
        return 0.0
    share = (node.max_model_b if node.max_model_b is not None else node.capability) / top
    if entry.placement is Placement.LIGHT:
        return 0.01 * share
    return 0.01 * (1.0 - share)


def score_fast(index: int, entry: TierEntry, node: NodeView, info: ModelInfo, req: RouteRequest,
               estimates: Estimates, top: float, rates: SuccessRates, head: ModelInfo | None = None) -> float:
    """Seconds to finish; a lower tier must finish clearly sooner to win: 10 % per tier step. ``head`` is
    the best tier's model when this entry is a lower one: unmeasured, the lower model is taken as no
    quicker than the head's prior (its speed is known only once measured; a smaller size alone does not
    trade quality away). routing._score_fast_pairs inlines this."""
    cap = prior_tps(node.gpu, head) if head is not None else None
    return estimate_seconds(node, entry.model, info, req, estimates, cap) * (1.0 + 0.1 * index) \
        + _placement_bias(entry, node, top)


def score_reliable(index: int, entry: TierEntry, node: NodeView, info: ModelInfo, req: RouteRequest,
                   estimates: Estimates, top: float, rates: SuccessRates) -> float:
    rate = rates.get(node.name, NO_RATE)[0]
    return -(node.max_model_b if node.max_model_b is not None else node.capability) \
        + 0.5 * node.in_flight / node.slots + (0.0 if rate is None else 1.0 - rate)


def score_async(index: int, entry: TierEntry, node: NodeView, info: ModelInfo, req: RouteRequest,
                estimates: Estimates, top: float, rates: SuccessRates) -> float:
    # CPU nodes first (keep GPUs free), then the lowest load.
    return (2.0 if node.gpu else 0.0) + node.in_flight / node.slots + _placement_bias(entry, node, top)


NO_RATE: SuccessRate = (None, 0)

SCORERS: dict[RoutingMode, Scorer] = {
    RoutingMode.FAST: score_fast,
    RoutingMode.RELIABLE: score_reliable,
    RoutingMode.ASYNC: score_async,
}
