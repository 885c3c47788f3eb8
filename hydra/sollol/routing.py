"""Pure routing: which model and which node serve a task, and why.

No I/O, no threads, no clocks read here: ``route`` takes frozen node views
and statistics and returns an outcome. Decisions are small named predicates
(``is_routable``, ``fits``, ``needs_load``, ``vram_low``) testable alone.

Scores are "lower is better". A route either binds (node has a free slot),
waits (the best place is busy: late binding keeps the task queued), or is
impossible (no node can ever serve it as things stand).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .config import SollolConfig
from .node import Circuit, NodeView
from .types import Candidate, ModelInfo, Placement, RoutingMode, TierEntry

DEFAULT_OUTPUT_TOKENS = 200


def normalize_model(name: str) -> str:
    """'mistral' and 'mistral:latest' are the same model to Ollama."""
    return name if ":" in name else name + ":latest"


@dataclass(frozen=True)
class RouteRequest:
    mode: RoutingMode
    task_type: str
    entries: tuple[TierEntry, ...]          # an explicit model is a one-entry list
    min_success_rate: float
    excluded: frozenset[str] = frozenset()  # nodes that already failed this task
    prompt_tokens: int = 50
    max_tokens: int | None = None
    explicit_model: bool = False


@dataclass(frozen=True)
class RouteOutcome:
    node: str | None
    model: str | None
    reason: str
    candidates: tuple[Candidate, ...]
    wait: bool = False     # nothing free now, but a place exists: keep the task queued


Estimates = Mapping[tuple[str, str], tuple[float | None, float | None, float | None]]
SuccessRates = Mapping[str, tuple[float | None, int]]


# --- predicates ---

def is_routable(node: NodeView) -> str | None:
    """None when the node may take new work, else the reason it may not."""
    if not node.healthy:
        return "unhealthy" + (f": {node.last_error}" if node.last_error else "")
    if node.circuit is Circuit.OPEN:
        return "circuit open" + (f" after: {node.last_error}" if node.last_error else "")
    if node.circuit is Circuit.HALF_OPEN and node.trial_in_flight:
        return "circuit half-open, trial request in flight"
    return None


def model_info(node: NodeView, model: str) -> ModelInfo | None:
    return node.installed.get(model) or node.installed.get(normalize_model(model))


def fits(node: NodeView, info: ModelInfo) -> str | None:
    """None when the model fits the node, else why not."""
    if info.size_b and node.max_model_b is not None and info.size_b > node.max_model_b + 1e-9:
        return f"too large: {info.size_b:g}B > max {node.max_model_b:g}B"
    if node.gpu and node.vram_total_mb and info.size_bytes:
        need_mb = info.size_bytes / (1024 * 1024)
        if need_mb > node.vram_total_mb:
            return f"too large: needs {need_mb:,.0f} MB > {node.vram_total_mb:,} MB VRAM"
    return None


def needs_load(node: NodeView, model: str) -> bool:
    return model not in node.loaded and normalize_model(model) not in node.loaded


def vram_low(node: NodeView, config: SollolConfig) -> bool:
    """GPU node under SOLLOL_MIN_VRAM_MB free (monitoring on). CPU-only nodes never are."""
    if not (config.vram_monitoring and node.gpu):
        return False
    free = node.vram_free_mb
    return free is not None and free < config.min_vram_mb


def blocks_large_load(node: NodeView, model: str, info: ModelInfo, config: SollolConfig) -> str | None:
    if vram_low(node, config) and needs_load(node, model) and (info.size_b or 0) >= config.large_model_b:
        return f"VRAM low: {node.vram_free_mb} MB free < {config.min_vram_mb} MB, no new large loads"
    return None


# --- estimates ---

def estimate_seconds(node: NodeView, model: str, info: ModelInfo, req: RouteRequest,
                     estimates: Estimates) -> float:
    """Queue wait + cold load + prefill + decode at this node's measured (or prior) speed."""
    ttft, tps, load = estimates.get((node.name, model), (None, None, None))
    size = max(info.size_b or 1.0, 0.1)
    if not tps:
        tps = min(500.0, max(1.0, (450.0 if node.gpu else 60.0) / size))
    if needs_load(node, model):
        cold = load if load is not None else size * (0.3 if node.gpu else 0.7) + 0.5
    else:
        cold = 0.0
    prefill = ttft if (ttft is not None and not cold) else req.prompt_tokens / (tps * 10.0)
    decode = (req.max_tokens or DEFAULT_OUTPUT_TOKENS) / tps
    wait = 0.0
    if node.free_slots == 0:
        wait = (node.in_flight - node.slots + 1) / node.slots * decode
    return wait + cold + prefill + decode


# --- the route ---

def route(req: RouteRequest, nodes: Sequence[NodeView], config: SollolConfig,
          estimates: Estimates, success_rates: SuccessRates) -> RouteOutcome:
    candidates: list[Candidate] = []
    routable = [n for n in nodes if is_routable(n) is None]
    top_capability = max((n.capability for n in routable), default=0.0)
    strict_reliable = req.mode is RoutingMode.RELIABLE

    def eligible(node: NodeView, entry: TierEntry) -> tuple[ModelInfo | None, str | None]:
        if node.name in req.excluded:
            return None, "failed this task already"
        why = is_routable(node)
        if why:
            return None, why
        if strict_reliable:
            if node.circuit is not Circuit.CLOSED:
                return None, "reliable: circuit not closed"
            rate, samples = success_rates.get(node.name, (None, 0))
            if rate is not None and samples >= 3 and rate < req.min_success_rate:
                return None, f"reliable: success {rate:.0%} < {req.min_success_rate:.0%}"
        info = model_info(node, entry.model)
        if info is None:
            return None, "model not installed" if node.polled else "models not known yet"
        why = fits(node, info) or blocks_large_load(node, entry.model, info, config)
        if why:
            return None, why
        if entry.placement is Placement.MOST_CAPABLE_ONLY and node.capability < top_capability:
            return None, f"not the most capable node ({node.capability:g}B < {top_capability:g}B)"
        return info, None

    # Eligible (entry index, node, info) triples, recording every exclusion.
    pairs: list[tuple[int, TierEntry, NodeView, ModelInfo]] = []
    for index, entry in enumerate(req.entries):
        for node in nodes:
            info, why = eligible(node, entry)
            if info is None:
                candidates.append(Candidate(node.name, entry.model, None, False, why or "excluded"))
            else:
                pairs.append((index, entry, node, info))

    if not pairs:
        waiting = any(not n.polled and is_routable(n) is None and n.name not in req.excluded for n in nodes)
        models = ", ".join(e.model for e in req.entries)
        reason = (f"no node known to serve {models} yet (waiting for model lists)" if waiting
                  else f"no routable node can serve {models}")
        return RouteOutcome(None, None, reason, tuple(candidates), wait=waiting)

    if req.mode is not RoutingMode.FAST:
        # Rule 1: the first model in tier order that some eligible node can hold.
        first = min(p[0] for p in pairs)
        for index, entry, node, _ in pairs:
            if index != first:
                candidates.append(Candidate(node.name, entry.model, None, False, "lower tier than " +
                                            req.entries[first].model))
        pairs = [p for p in pairs if p[0] == first]

    scorer = _SCORERS[req.mode]
    scored = [(scorer(index, entry, node, info, req, estimates, top_capability, success_rates), index, entry, node)
              for index, entry, node, info in pairs]
    scored.sort(key=lambda s: (s[0][0], not s[3].local, s[3].name))
    best_free = next((s for s in scored if s[3].free_slots > 0), None)
    best = scored[0]

    # fast waits for a busy node when it still finishes sooner; async and reliable take the best free place.
    chosen = best if req.mode is RoutingMode.FAST else best_free
    for s in scored:
        (score, why), _, entry, node = s
        if s is chosen and node.free_slots > 0:
            candidates.append(Candidate(node.name, entry.model, round(score, 4), True, "chosen: " + why))
        elif node.free_slots == 0:
            candidates.append(Candidate(node.name, entry.model, round(score, 4), True,
                                        f"busy ({node.in_flight}/{node.slots} slots); " + why))
        else:
            candidates.append(Candidate(node.name, entry.model, round(score, 4), True, why))

    if chosen is None or chosen[3].free_slots == 0:
        target = best[3]
        return RouteOutcome(None, best[2].model, f"{req.mode.value}: waiting for a free slot "
                            f"(best place {target.name} has {target.in_flight}/{target.slots} busy)",
                            tuple(candidates), wait=True)
    (score, why), _, entry, node = chosen
    return RouteOutcome(node.name, entry.model, f"{req.mode.value}: {node.name} with {entry.model} — {why}",
                        tuple(candidates))


Score = tuple[float, str]
Scorer = Callable[[int, TierEntry, NodeView, ModelInfo, RouteRequest, Estimates, float, SuccessRates], Score]


def _placement_bias(entry: TierEntry, node: NodeView, top: float) -> float:
    """Small tie-breaker toward the seed's arrows: powerful entries to capable nodes, light to light."""
    if top <= 0:
        return 0.0
    share = node.capability / top
    if entry.placement in (Placement.POWERFUL, Placement.MOST_CAPABLE_ONLY):
        return 0.01 * (1.0 - share)
    if entry.placement is Placement.LIGHT:
        return 0.01 * share
    return 0.0


def score_fast(index, entry, node, info, req, estimates, top, rates) -> Score:
    seconds = estimate_seconds(node, entry.model, info, req, estimates)
    # A lower tier must finish clearly sooner to win: 10 % per tier step.
    score = seconds * (1.0 + 0.1 * index) + _placement_bias(entry, node, top)
    warm = "warm" if not needs_load(node, entry.model) else "cold load"
    return score, f"est. {seconds:.2f} s to finish ({warm})"


def score_reliable(index, entry, node, info, req, estimates, top, rates) -> Score:
    rate, samples = rates.get(node.name, (None, 0))
    load = node.in_flight / node.slots
    score = -node.capability + 0.5 * load + (0.0 if rate is None else (1.0 - rate))
    proven = f"success {rate:.0%} over {samples}" if rate is not None else "no failures recorded"
    return score, f"most capable eligible ({node.capability:g}B), {proven}"


def score_async(index, entry, node, info, req, estimates, top, rates) -> Score:
    load = node.in_flight / node.slots
    score = (2.0 if node.gpu else 0.0) + load + _placement_bias(entry, node, top)
    kind = "GPU node" if node.gpu else "CPU node first"
    return score, f"{kind}, load {node.in_flight}/{node.slots}"


_SCORERS: dict[RoutingMode, Scorer] = {
    RoutingMode.FAST: score_fast,
    RoutingMode.RELIABLE: score_reliable,
    RoutingMode.ASYNC: score_async,
}
