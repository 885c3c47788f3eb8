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
# Parameter counts are nominal: a node declared for 70B models holds llama3.1:70b, which Ollama
# reports as 70.6B. Within 2 % still fits; a 30B node still refuses a 32.8B model.
SIZE_SLACK = 1.02


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
    ahead: int = 0                          # queued tasks before this one, still waiting for a place


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
    if info.size_b and node.max_model_b is not None and info.size_b > node.max_model_b * SIZE_SLACK + 1e-9:
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
    ttft, tps, load = estimates.get((node.name, model), _NO_ESTIMATE)
    size = info.size_b if info.size_b and info.size_b > 0.1 else 1.0
    tps = tps or prior_tps(node, info)
    if model in node.loaded or normalize_model(model) in node.loaded:
        cold = 0.0
    else:
        cold = load if load is not None else size * (0.3 if node.gpu else 0.7) + 0.5
    prefill = ttft if (ttft is not None and not cold) else req.prompt_tokens / (tps * 10.0)
    decode = (req.max_tokens or DEFAULT_OUTPUT_TOKENS) / tps
    wait = 0.0
    if node.in_flight >= node.slots:
        # This task starts after the running ones free a slot and the tasks queued ahead have gone.
        wait = (node.in_flight - node.slots + 1 + req.ahead) / node.slots * decode
    return wait + cold + prefill + decode


_NO_ESTIMATE = (None, None, None)


def prior_tps(node: NodeView, info: ModelInfo) -> float:
    """Decode speed before any is measured: memory-bandwidth bound, so inversely proportional to size."""
    size = info.size_b if info.size_b and info.size_b > 0.1 else 1.0
    tps = (450.0 if node.gpu else 60.0) / size
    return 1.0 if tps < 1.0 else 500.0 if tps > 500.0 else tps


def decode_tps(node: NodeView, model: str, info: ModelInfo, estimates: Estimates) -> float:
    """Measured tokens/s of ``model`` on ``node`` (eval_count / eval_duration), else the prior."""
    return estimates.get((node.name, model), _NO_ESTIMATE)[1] or prior_tps(node, info)


# --- the route ---

def route(req: RouteRequest, nodes: Sequence[NodeView], config: SollolConfig,
          estimates: Estimates, success_rates: SuccessRates) -> RouteOutcome:
    """One candidate per node is recorded: its best (node, model) pair with score and reason, or why not.

    Non-fast modes take the first tier entry that some eligible node can hold (DESIGN rule 1) and
    score nodes for it; fast scores every (entry, node) pair and may take a lower tier.
    """
    reliable = req.mode is RoutingMode.RELIABLE
    node_block: dict[str, str] = {}       # node -> why it takes nothing (not model-specific)
    capability: dict[str, float] = {}
    top = 0.0                             # the most capable routable node (MOST_CAPABLE_ONLY)
    for node in nodes:
        capability[node.name] = cap = node.capability
        why = is_routable(node)
        if why is None and cap > top:
            top = cap
        if node.name in req.excluded:
            why = "failed this task already"
        if why is None and reliable:
            if node.circuit is not Circuit.CLOSED:
                why = "reliable: circuit not closed"
            else:
                rate, samples = success_rates.get(node.name, (None, 0))
                if rate is not None and samples >= 3 and rate < req.min_success_rate:
                    why = f"reliable: success {rate:.0%} < {req.min_success_rate:.0%}"
        if why is not None:
            node_block[node.name] = why
    open_nodes = [n for n in nodes if n.name not in node_block]

    # pairs[node] = eligible (index, entry, info) in tier order; first_miss[node] = why its best entry failed
    pairs: dict[str, list[tuple[int, TierEntry, ModelInfo]]] = {}
    first_miss: dict[str, str] = {}
    chosen_index: int | None = None
    low_vram = {n.name for n in open_nodes if vram_low(n, config)}
    for index, entry in enumerate(req.entries):
        if chosen_index is not None and req.mode is not RoutingMode.FAST:
            break  # a higher tier already has a place; lower tiers are not candidates
        model, alias = entry.model, normalize_model(entry.model)
        for node in open_nodes:
            info = node.installed.get(model) or node.installed.get(alias)
            if info is None:
                why = "model not installed" if node.polled else "models not known yet"
            else:
                # fits(), inlined for the common case (this loop runs nodes x tier entries times)
                max_b = node.max_model_b
                why = None
                if (info.size_b and max_b is not None and info.size_b > max_b * SIZE_SLACK + 1e-9) or \
                        (node.gpu and node.vram_total_mb and info.size_bytes):
                    why = fits(node, info)
                if why is None and node.name in low_vram:
                    why = blocks_large_load(node, entry.model, info, config)
                if why is None and entry.placement is Placement.MOST_CAPABLE_ONLY and capability[node.name] < top:
                    why = f"not the most capable node ({capability[node.name]:g}B < {top:g}B)"
            if why is None:
                pairs.setdefault(node.name, []).append((index, entry, info))
                if chosen_index is None:
                    chosen_index = index
            elif node.name not in first_miss:
                first_miss[node.name] = f"{entry.model}: {why}"

    if chosen_index is None:
        candidates = tuple(Candidate(n.name, req.entries[0].model if req.entries else "", None, False,
                                     node_block.get(n.name) or first_miss.get(n.name, "no tier model fits"))
                           for n in nodes)
        waiting = any(not n.polled and n.name not in node_block for n in nodes)
        models = ", ".join(e.model for e in req.entries)
        reason = (f"no node known to serve {models} yet (waiting for model lists)" if waiting
                  else f"no routable node can serve {models}")
        return RouteOutcome(None, None, reason, candidates, wait=waiting)

    scorer = _SCORERS[req.mode]
    by_name = {n.name: n for n in open_nodes}
    scored: list[tuple[float, bool, str, TierEntry, NodeView]] = []
    for name, options in pairs.items():
        node = by_name[name]
        if req.mode is RoutingMode.FAST:
            best = _best_fast(node, options, req, estimates, top)
        else:
            best = None
            for index, entry, info in options:
                if index == chosen_index:
                    score = scorer(index, entry, node, info, req, estimates, top, success_rates)
                    if best is None or score < best[0]:
                        best = (score, entry)
        if best is not None:
            scored.append((best[0], not node.local, name, best[1], node))
    scored.sort(key=lambda s: (s[0], s[1], s[2]))
    best_free = next((s for s in scored if s[4].in_flight < s[4].slots), None)
    if req.mode is RoutingMode.ASYNC and best_free is not None:
        best_free = _async_tail_guard(scored, req, estimates, pairs)
    # fast waits for a busy node when it still finishes sooner; async and reliable take the best free place.
    chosen = scored[0] if req.mode is RoutingMode.FAST else best_free

    candidates: list[Candidate] = []
    scored_names = {s[2] for s in scored}
    for node in nodes:
        if node.name in node_block:
            candidates.append(Candidate(node.name, "", None, False, node_block[node.name]))
        elif node.name not in scored_names:
            model = req.entries[chosen_index].model
            candidates.append(Candidate(node.name, model, None, False, first_miss.get(node.name, "no tier model fits")))
    for s in scored:
        score, _, name, entry, node = s
        text = _explain(req.mode, node, entry, score)
        if node.in_flight >= node.slots:
            text = f"busy ({node.in_flight}/{node.slots} slots); {text}"
        elif s is chosen:
            text = "chosen: " + text
        candidates.append(Candidate(name, entry.model, round(score, 4), True, text))

    if chosen is None or chosen[4].in_flight >= chosen[4].slots:
        target = scored[0][4]
        return RouteOutcome(None, scored[0][3].model, f"{req.mode.value}: waiting for a free slot "
                            f"(best place {target.name} has {target.in_flight}/{target.slots} busy)",
                            tuple(candidates), wait=True)
    score, _, name, entry, node = chosen
    return RouteOutcome(name, entry.model, f"{req.mode.value}: {name} with {entry.model} — "
                        f"{_explain(req.mode, node, entry, score)}", tuple(candidates))


def _best_fast(node: NodeView, options: list[tuple[int, TierEntry, ModelInfo]], req: RouteRequest,
               estimates: Estimates, top: float) -> tuple[float, TierEntry]:
    """score_fast over one node's eligible entries, with the per-node work done once (the hot loop
    of a fast decision: up to nodes x tier entries)."""
    name, gpu, loaded = node.name, node.gpu, node.loaded
    base_tps = 450.0 if gpu else 60.0
    busy_factor = (node.in_flight - node.slots + 1 + req.ahead) / node.slots if node.in_flight >= node.slots else 0.0
    output = req.max_tokens or DEFAULT_OUTPUT_TOKENS
    share = ((node.max_model_b if node.max_model_b is not None else node.capability) / top) if top > 0 else 0.0
    best_score, best_entry = float("inf"), options[0][1]
    for index, entry, info in options:
        model = entry.model
        ttft, tps, load = estimates.get((name, model), _NO_ESTIMATE)
        size = info.size_b if info.size_b and info.size_b > 0.1 else 1.0
        if not tps:
            tps = base_tps / size
            tps = 1.0 if tps < 1.0 else 500.0 if tps > 500.0 else tps
        if model in loaded or (":" not in model and model + ":latest" in loaded):
            cold = 0.0
        else:
            cold = load if load is not None else size * (0.3 if gpu else 0.7) + 0.5
        prefill = ttft if (ttft is not None and not cold) else req.prompt_tokens / (tps * 10.0)
        decode = output / tps
        seconds = busy_factor * decode + cold + prefill + decode
        placement = entry.placement
        bias = 0.0 if placement is Placement.ANY or top <= 0 else (
            0.01 * share if placement is Placement.LIGHT else 0.01 * (1.0 - share))
        score = seconds * (1.0 + 0.1 * index) + bias
        if score < best_score:
            best_score, best_entry = score, entry
    return best_score, best_entry


def _async_tail_guard(scored, req: RouteRequest, estimates: Estimates, pairs) -> tuple | None:
    """Async takes the best free place (CPU first) unless a busy node would still finish the task
    sooner, queue wait included: then the task waits for it. While much work is queued the wait is
    long and every node stays busy; at the tail of a batch this keeps the last tasks off slow nodes,
    which would otherwise set the makespan."""
    info = {(name, e.model): i for name, options in pairs.items() for _, e, i in options}

    def seconds(s) -> float:
        return estimate_seconds(s[4], s[3].model, info[(s[2], s[3].model)], req, estimates)

    busy = [s for s in scored if s[4].in_flight >= s[4].slots]
    best_busy = min((seconds(s) for s in busy), default=None)
    for s in scored:
        if s[4].in_flight < s[4].slots and (best_busy is None or seconds(s) <= best_busy):
            return s
    return None


def _explain(mode: RoutingMode, node: NodeView, entry: TierEntry, score: float) -> str:
    """Words for a score; built only for recorded candidates, not inside the scoring loop."""
    if mode is RoutingMode.FAST:
        warm = "warm" if not needs_load(node, entry.model) else "cold load"
        return f"est. {score:.2f} s to finish ({warm})"
    if mode is RoutingMode.RELIABLE:
        return f"most capable eligible ({node.capability:g}B), load {node.in_flight}/{node.slots}"
    kind = "GPU node" if node.gpu else "CPU node first"
    return f"{kind}, load {node.in_flight}/{node.slots}"


Scorer = Callable[[int, TierEntry, NodeView, ModelInfo, RouteRequest, Estimates, float, SuccessRates], float]


def _placement_bias(entry: TierEntry, node: NodeView, top: float) -> float:
    """Small tie-breaker toward the seed's arrows: powerful entries to capable nodes, light to light."""
    if top <= 0 or entry.placement is Placement.ANY:
        return 0.0
    share = (node.max_model_b if node.max_model_b is not None else node.capability) / top
    if entry.placement is Placement.LIGHT:
        return 0.01 * share
    return 0.01 * (1.0 - share)


def score_fast(index, entry, node, info, req, estimates, top, rates) -> float:
    # Seconds to finish; a lower tier must finish clearly sooner to win: 10 % per tier step.
    return estimate_seconds(node, entry.model, info, req, estimates) * (1.0 + 0.1 * index) \
        + _placement_bias(entry, node, top)


def score_reliable(index, entry, node, info, req, estimates, top, rates) -> float:
    rate = rates.get(node.name, _NO_RATE)[0]
    return -(node.max_model_b if node.max_model_b is not None else node.capability) \
        + 0.5 * node.in_flight / node.slots + (0.0 if rate is None else 1.0 - rate)


def score_async(index, entry, node, info, req, estimates, top, rates) -> float:
    # CPU nodes first (keep GPUs free), then the lowest load.
    return (2.0 if node.gpu else 0.0) + node.in_flight / node.slots + _placement_bias(entry, node, top)


_NO_RATE = (None, 0)

_SCORERS: dict[RoutingMode, Scorer] = {
    RoutingMode.FAST: score_fast,
    RoutingMode.RELIABLE: score_reliable,
    RoutingMode.ASYNC: score_async,
}
