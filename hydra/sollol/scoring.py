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
from .node import NodeView, prior_load_s, prior_tps
from .types import ModelInfo, Placement, RoutingMode, TierEntry

if TYPE_CHECKING:  # routing imports this module; the request is only a type here
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
    prefill = ttft if (ttft is not None and not cold) else req.prompt_tokens / (tps * 10.0)
    return cold + prefill + (req.max_tokens or DEFAULT_OUTPUT_TOKENS) / tps


NO_ESTIMATE: Estimate = (None, None, None)


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
