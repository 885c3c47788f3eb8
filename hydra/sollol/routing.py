"""Pure routing: which model and which node serve a task, and why.

No I/O, no threads, no clocks read here: ``route`` takes frozen node views
and statistics and returns an outcome. Its decisions rest on the small named
predicates of eligibility.py (``why_unroutable``, ``why_unfit``, ``vram_low``...).

Scores are "lower is better". A route either binds (node has a free slot),
waits (the best place is busy: late binding keeps the task queued), or is
impossible (no node can ever serve it as things stand).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from .config import SollolConfig
from .eligibility import needs_load, normalize_model, vram_low, why_no_large_load, why_unroutable
from .node import Circuit, FitTable, NodeView, prior_load_s
from .node import prior_tps as node_prior_tps
from .types import Candidate, ModelInfo, Placement, RoutingMode, TierEntry

DEFAULT_OUTPUT_TOKENS = 200


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


class RouteOutcome:
    """Where a task goes (or why nowhere), and the record of every candidate.

    ``candidates`` may be given as a function that builds them: only a decision that binds a task
    is recorded, so the many routes of tasks that keep waiting never pay for the words."""

    __slots__ = ("_candidates", "model", "node", "reason", "wait")

    def __init__(self, node: str | None, model: str | None, reason: str,
                 candidates: tuple[Candidate, ...] | Callable[[], tuple[Candidate, ...]] = (),
                 wait: bool = False) -> None:
        self.node = node
        self.model = model
        self.reason = reason
        self.wait = wait        # nothing free now, but a place exists: keep the task queued
        self._candidates = candidates

    @property
    def candidates(self) -> tuple[Candidate, ...]:
        if callable(self._candidates):
            self._candidates = self._candidates()
        return self._candidates

    def __repr__(self) -> str:
        return f"RouteOutcome(node={self.node!r}, model={self.model!r}, wait={self.wait}, reason={self.reason!r})"


Estimates = Mapping[tuple[str, str], tuple[float | None, float | None, float | None]]
SuccessRates = Mapping[str, tuple[float | None, int]]


# --- estimates ---

def estimate_seconds(node: NodeView, model: str, info: ModelInfo, req: RouteRequest,
                     estimates: Estimates) -> float:
    """Queue wait + cold load + prefill + decode at this node's measured (or prior) speed."""
    wait = 0.0
    if node.in_flight >= node.slots:
        # This task starts after the running ones free a slot and the tasks queued ahead have gone.
        decode = (req.max_tokens or DEFAULT_OUTPUT_TOKENS) / decode_tps(node, model, info, estimates)
        wait = (node.in_flight - node.slots + 1 + req.ahead) / node.slots * decode
    return wait + service_seconds(node, model, info, req, estimates)


def service_seconds(node: NodeView, model: str, info: ModelInfo, req: RouteRequest, estimates: Estimates) -> float:
    """Cold load + prefill + decode once the task has a slot."""
    ttft, tps, load = estimates.get((node.name, model), _NO_ESTIMATE)
    tps = tps or prior_tps(node, info)
    if model in node.loaded or normalize_model(model) in node.loaded:
        cold = 0.0
    else:
        cold = load if load is not None else prior_load_s(node.gpu, info)
    prefill = ttft if (ttft is not None and not cold) else req.prompt_tokens / (tps * 10.0)
    return cold + prefill + (req.max_tokens or DEFAULT_OUTPUT_TOKENS) / tps


_NO_ESTIMATE = (None, None, None)


def prior_tps(node: NodeView, info: ModelInfo) -> float:
    """Decode speed before any is measured (see node.prior_tps)."""
    return node_prior_tps(node.gpu, info)


def decode_tps(node: NodeView, model: str, info: ModelInfo, estimates: Estimates) -> float:
    """Measured tokens/s of ``model`` on ``node`` (eval_count / eval_duration), else the prior."""
    return estimates.get((node.name, model), _NO_ESTIMATE)[1] or prior_tps(node, info)


# --- the route ---

def route(req: RouteRequest, nodes: Sequence[NodeView], config: SollolConfig,
          estimates: Estimates, success_rates: SuccessRates) -> RouteOutcome:
    """One candidate per node is recorded: its best (node, model) pair with score and reason, or why not.

    Non-fast modes take the first tier entry that some eligible node can hold (DESIGN rule 1) and
    score nodes for it; fast scores every (entry, node) pair and may take a lower tier. This runs for
    every queued task a dispatch round looks at, so the inner loop (nodes x tier entries) does only
    dictionary lookups and arithmetic: sizes are checked once per model list (NodeView.fit), and
    words are built only for the recorded candidates.
    """
    fast = req.mode is RoutingMode.FAST
    node_block, capability, top = _blocked_nodes(req, nodes, success_rates)
    first_miss: dict[str, str] = {}       # node -> why its best entry failed
    if fast:
        scored, chosen_index = _scan_fast(req, nodes, node_block, capability, top, config, estimates, first_miss)
        firsts = []
    else:
        firsts, chosen_index = _scan_first(req, nodes, node_block, capability, top, config, first_miss)
        scored = []
    plan = req.entries

    if chosen_index == len(plan):
        def nowhere() -> tuple[Candidate, ...]:
            return tuple(Candidate(n.name, req.entries[0].model if req.entries else "", None, False,
                                   node_block.get(n.name) or first_miss.get(n.name, "no tier model fits"))
                         for n in nodes)
        waiting = any(not n.polled and n.name not in node_block for n in nodes)
        models = ", ".join(e.model for e in req.entries)
        reason = (f"no node known to serve {models} yet (waiting for model lists)" if waiting
                  else f"no routable node can serve {models}")
        return RouteOutcome(None, None, reason, nowhere, wait=waiting)

    infos: dict[str, ModelInfo] = {}
    if not fast:
        scorer = _SCORERS[req.mode]
        for index, entry, info, node in firsts:
            if index == chosen_index:
                infos[node.name] = info
                scored.append((scorer(index, entry, node, info, req, estimates, top, success_rates),
                               not node.local, node.name, entry, node))
    scored.sort(key=lambda s: (s[0], s[1], s[2]))
    best_free = next((s for s in scored if s[4].in_flight < s[4].slots), None)
    if req.mode is RoutingMode.ASYNC and best_free is not None:
        best_free = _async_tail_guard(scored, req, estimates, infos)
    # fast waits for a busy node when it still finishes sooner; async and reliable take the best free place.
    chosen = scored[0] if fast else best_free
    def candidates() -> tuple[Candidate, ...]:
        return _candidates(req, nodes, node_block, first_miss, scored, chosen, chosen_index)

    if chosen is None or chosen[4].in_flight >= chosen[4].slots:
        target = scored[0][4]
        return RouteOutcome(None, scored[0][3].model, f"{req.mode.value}: waiting for a free slot "
                            f"(best place {target.name} has {target.in_flight}/{target.slots} busy)",
                            candidates, wait=True)
    score, _, name, entry, node = chosen
    return RouteOutcome(name, entry.model, f"{req.mode.value}: {name} with {entry.model} — "
                        f"{_explain(req.mode, node, entry, score)}", candidates)


def _ineligible(node: NodeView, model: str, hit: tuple | None, low: bool, most_capable_only: bool, cap: float,
                top: float, config: SollolConfig) -> str | None:
    """Why ``model`` cannot go to ``node`` now (None: it can). ``hit`` is the node's fit-table row."""
    if hit is None:
        return "model not installed" if node.polled else "models not known yet"
    info, why = hit[0], hit[1]
    if why is None and low and (info.size_b or 0) >= config.large_model_b:
        why = why_no_large_load(node, model, info, config)
    if why is None and most_capable_only and cap < top:
        why = f"not the most capable node ({cap:g}B < {top:g}B)"
    return why


def _open_nodes(nodes: Sequence[NodeView], node_block: dict[str, str], capability: dict[str, float],
                config: SollolConfig) -> Iterator[tuple[NodeView, str, FitTable, bool, float]]:
    """The nodes a scan looks at, each with its fit table, whether its VRAM is low, its capability."""
    for node in nodes:
        name = node.name
        if name not in node_block:
            yield (node, name, node.fit if node.fit is not None else node.fits_by_model,
                   config.vram_monitoring and node.gpu and vram_low(node, config), capability[name])


def _scan_first(req: RouteRequest, nodes: Sequence[NodeView], node_block: dict[str, str],
                capability: dict[str, float], top: float, config: SollolConfig, first_miss: dict[str, str],
                ) -> tuple[list[tuple[int, TierEntry, ModelInfo, NodeView]], int]:
    """Non-fast modes: each open node's first eligible tier entry, and the best tier any node holds."""
    plan = [(index, entry, entry.model, entry.placement is Placement.MOST_CAPABLE_ONLY)
            for index, entry in enumerate(req.entries)]
    firsts: list[tuple[int, TierEntry, ModelInfo, NodeView]] = []
    chosen_index = len(plan)
    for node, name, table, low, cap in _open_nodes(nodes, node_block, capability, config):
        for index, entry, model, most_capable_only in plan:
            if index > chosen_index:
                break  # a higher tier already has a place; lower tiers are not candidates
            hit = table.get(model)
            why = _ineligible(node, model, hit, low, most_capable_only, cap, top, config) \
                if hit is None or hit[1] is not None or low or most_capable_only else None
            if why is not None:
                if name not in first_miss:
                    first_miss[name] = f"{model}: {why}"
                continue
            chosen_index = index
            firsts.append((index, entry, hit[0], node))
            break
    return firsts, chosen_index


def _scan_fast(req: RouteRequest, nodes: Sequence[NodeView], node_block: dict[str, str],
               capability: dict[str, float], top: float, config: SollolConfig, estimates: Estimates,
               first_miss: dict[str, str]) -> tuple[list[tuple[float, bool, str, TierEntry, NodeView]], int]:
    """Fast mode: every (tier entry, node) pair scored by estimated seconds to finish (``score_fast``,
    inlined: this is the hottest loop of routing), each node's best kept."""
    # (index, entry, model, bare name's :latest alias, most-capable-only, bias kind, tier factor)
    plan = [(index, entry, entry.model, entry.model if ":" in entry.model else entry.model + ":latest",
             entry.placement is Placement.MOST_CAPABLE_ONLY,
             0 if entry.placement is Placement.ANY or top <= 0 else 1 if entry.placement is Placement.LIGHT else 2,
             1.0 + 0.1 * index) for index, entry in enumerate(req.entries)]
    scored: list[tuple[float, bool, str, TierEntry, NodeView]] = []
    chosen_index = len(plan)
    output = req.max_tokens or DEFAULT_OUTPUT_TOKENS
    prompt_tokens, ahead = req.prompt_tokens, req.ahead
    for node, name, table, low, cap in _open_nodes(nodes, node_block, capability, config):
        loaded, slots = node.loaded, node.slots
        busy = (node.in_flight - slots + 1 + ahead) / slots if node.in_flight >= slots else 0.0
        share = ((node.max_model_b if node.max_model_b is not None else cap) / top) if top > 0 else 0.0
        biases = (0.0, 0.01 * share, 0.01 * (1.0 - share))
        best_score, best_entry = None, None
        for index, entry, model, alias, most_capable_only, bias_kind, tier_factor in plan:
            hit = table.get(model)
            if hit is None:  # the common miss, kept out of a function call
                if name not in first_miss:
                    first_miss[name] = f"{model}: {'model not installed' if node.polled else 'models not known yet'}"
                continue
            if hit[1] is not None or low or most_capable_only:
                why = _ineligible(node, model, hit, low, most_capable_only, cap, top, config)
                if why is not None:
                    if name not in first_miss:
                        first_miss[name] = f"{model}: {why}"
                    continue
            chosen_index = min(chosen_index, index)
            _, _, _, tps_prior, cold_prior = hit
            ttft, tps, load = estimates.get((name, model), _NO_ESTIMATE)
            tps = tps or tps_prior
            if model in loaded or alias in loaded:
                cold = 0.0
                prefill = ttft if ttft is not None else prompt_tokens / (tps * 10.0)
            else:
                cold = load if load is not None else cold_prior
                prefill = ttft if (ttft is not None and not cold) else prompt_tokens / (tps * 10.0)
            decode = output / tps
            score = (busy * decode + cold + prefill + decode) * tier_factor + biases[bias_kind]
            if best_score is None or score < best_score:
                best_score, best_entry = score, entry
        if best_score is not None:
            scored.append((best_score, not node.local, name, best_entry, node))
    return scored, chosen_index


def _blocked_nodes(req: RouteRequest, nodes: Sequence[NodeView], success_rates: SuccessRates,
                   ) -> tuple[dict[str, str], dict[str, float], float]:
    """Nodes that take nothing for this task (and why), every node's capability, and the top one
    among routable nodes (MOST_CAPABLE_ONLY compares against it)."""
    reliable = req.mode is RoutingMode.RELIABLE
    node_block: dict[str, str] = {}
    capability: dict[str, float] = {}
    top = 0.0
    for node in nodes:
        capability[node.name] = cap = node.capability
        why = why_unroutable(node)
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
    return node_block, capability, top


def _candidates(req: RouteRequest, nodes: Sequence[NodeView], node_block: dict[str, str],
                first_miss: dict[str, str], scored: list, chosen: tuple | None,
                chosen_index: int) -> tuple[Candidate, ...]:
    """The decision's record: nodes that took no part (and why) in node order, then the scored ones best first."""
    candidates: list[Candidate] = []
    if len(scored) < len(nodes):
        scored_names = {s[2] for s in scored}
        model = req.entries[chosen_index].model
        for node in nodes:
            if node.name in node_block:
                candidates.append(Candidate(node.name, "", None, False, node_block[node.name]))
            elif node.name not in scored_names:
                candidates.append(Candidate(node.name, model, None, False,
                                            first_miss.get(node.name, "no tier model fits")))
    mode = req.mode
    fast = mode is RoutingMode.FAST
    for s in scored:
        score, _, name, entry, node = s
        if fast:  # _explain's fast case, inlined: a 64-node fast decision records 64 of these
            m, loaded = entry.model, node.loaded
            warm = m in loaded or (":" not in m and m + ":latest" in loaded)
            text = "est. %.2f s to finish (%s)" % (score, "warm" if warm else "cold load")
        else:
            text = _explain(mode, node, entry, score)
        if node.in_flight >= node.slots:
            text = f"busy ({node.in_flight}/{node.slots} slots); {text}"
        elif s is chosen:
            text = "chosen: " + text
        candidates.append(Candidate(name, entry.model, round(score, 4), True, text))
    return tuple(candidates)


def _async_tail_guard(scored, req: RouteRequest, estimates: Estimates, infos: dict[str, ModelInfo]) -> tuple | None:
    """Async takes the best free place (CPU first) unless a busy node would still finish the task
    sooner, queue wait included: then the task waits for it. While much work is queued the wait is
    long and every node stays busy; at the tail of a batch this keeps the last tasks off slow nodes,
    which would otherwise set the makespan."""
    def seconds(s) -> float:
        return estimate_seconds(s[4], s[3].model, infos[s[2]], req, estimates)

    busy = [s for s in scored if s[4].in_flight >= s[4].slots]
    if not busy:
        return next((s for s in scored if s[4].in_flight < s[4].slots), None)
    # estimate_seconds puts every task queued ahead on the busy node itself; they in fact spread over
    # the whole cluster. So a busy node frees up by the sooner of that and the cluster's drain time:
    # the work in flight and ahead (tasks of about this one's size) over every eligible slot's speed.
    output = req.max_tokens or DEFAULT_OUTPUT_TOKENS
    capacity = sum(s[4].slots * decode_tps(s[4], s[3].model, infos[s[2]], estimates) for s in scored)
    drain = (req.ahead + sum(s[4].in_flight for s in scored)) * output / capacity if capacity > 0 else 0.0

    def finish_after_wait(s) -> float:
        return min(seconds(s), drain + service_seconds(s[4], s[3].model, infos[s[2]], req, estimates))

    best_busy = min(finish_after_wait(s) for s in busy)
    for s in scored:
        if s[4].in_flight < s[4].slots and seconds(s) <= best_busy:
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
