"""Pure routing: which model and which node serve a task, and why.

No I/O, no threads, no clocks read here: ``route`` takes frozen node views
and statistics and returns an outcome. Its decisions rest on the small named
predicates of eligibility.py (``why_unroutable``, ``why_unfit``, ``vram_low``...).

Scores are "lower is better". A route either binds (node has a free slot),
waits (the best place is busy: late binding keeps the task queued), or is
impossible (no node can ever serve it as things stand).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from .async_mode import powerful_for_thinking, tail_guard
from .config import SollolConfig
from .eligibility import needs_load, vram_low, why_no_large_load, why_unroutable
from .model_names import model_key
from .node import Circuit, FitTable, ModelFit, NodeView, prior_tps
from .prefix_cache import Affinity
from .scoring import (
    DEFAULT_OUTPUT_TOKENS,
    NO_ESTIMATE,
    NO_RATE,
    PREFILL_PER_DECODE,
    SCORERS,
    Estimates,
    SuccessRates,
    affine_prefill,
    warm_bonus,
)
from .types import Candidate, ModelInfo, Placement, RoutingMode, TierEntry
from .warm import cached_words, warm_place


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
    thinking: bool = False                  # the task will think (Task.think set): async prefers the powerful node
    affinity: Affinity | None = None        # what the nodes' KV caches hold of the prompt (None: affinity off)


class Scored(NamedTuple):
    """One node's best tier entry for the task, and its score (lower is better). Sorted by score,
    then local nodes before remote ones, then by name."""

    score: float
    remote: bool
    name: str
    entry: TierEntry
    node: NodeView
    free: bool                 # the node has a free slot now


# Non-fast modes: a node's first eligible tier entry (index, entry, its model info, the node); unpacked where used.
FirstFit = tuple[int, TierEntry, ModelInfo, NodeView]


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
    plan = _plan(req)
    first_miss: dict[str, str] = {}       # node -> why its first tier entry cannot go there
    infos: dict[str, ModelInfo] = {}      # node -> the info of its scored entry (non-fast modes)
    if fast:
        scored, chosen_index = _scan_fast(req, plan, nodes, node_block, capability, top, config, estimates,
                                          first_miss)
    else:
        firsts, chosen_index = _scan_first(plan, nodes, node_block, capability, top, config, first_miss)
        scored = _score_firsts(firsts, chosen_index, req, estimates, top, success_rates, infos)

    if chosen_index == len(req.entries):
        return _nowhere(req, nodes, node_block, first_miss)
    scored.sort(key=lambda s: (s.score, s.remote, s.name))
    best_free = next((s for s in scored if s.free), None)
    rule = ""  # async's exception, in words, when one decided
    if req.mode is RoutingMode.ASYNC and best_free is not None:
        preferred = powerful_for_thinking(scored, req, estimates, infos) or warm_place(scored, req, estimates, infos)
        best_free, rule = preferred if preferred is not None else (tail_guard(scored, req, estimates, infos), "")
    # fast waits for a busy node when it still finishes sooner; async and reliable take the best free place.
    chosen = scored[0] if fast else best_free

    def candidates() -> tuple[Candidate, ...]:
        return _candidates(req, nodes, node_block, first_miss, scored, chosen, chosen_index)

    if chosen is None or not chosen.free:
        target = scored[0].node
        return RouteOutcome(None, scored[0].entry.model, f"{req.mode.value}: waiting for a free slot "
                            f"(best place {target.name} has {target.in_flight}/{target.slots} busy)",
                            candidates, wait=True)
    why = rule or _explain(req.mode, chosen.node, chosen.entry, chosen.score)
    if req.affinity is not None and req.affinity.hits:
        why += cached_words(req.affinity, chosen.name, chosen.entry.model)
    return RouteOutcome(chosen.name, chosen.entry.model, f"{req.mode.value}: {chosen.name} with "
                        f"{chosen.entry.model} — {why}", candidates)


def _nowhere(req: RouteRequest, nodes: Sequence[NodeView], node_block: dict[str, str],
             first_miss: dict[str, str]) -> RouteOutcome:
    """No node holds any tier entry: wait while some node's models are not known yet, else impossible."""
    def candidates() -> tuple[Candidate, ...]:
        return tuple(Candidate(n.name, req.entries[0].model if req.entries else "", None, False,
                               node_block.get(n.name) or first_miss.get(n.name, "no tier model fits"))
                     for n in nodes)
    waiting = any(not n.polled and n.name not in node_block for n in nodes)
    models = ", ".join(e.model for e in req.entries)
    reason = (f"no node known to serve {models} yet (waiting for model lists)" if waiting
              else f"no routable node can serve {models}")
    return RouteOutcome(None, None, reason, candidates, wait=waiting)


def _score_firsts(firsts: list[FirstFit], chosen_index: int, req: RouteRequest, estimates: Estimates, top: float,
                  success_rates: SuccessRates, infos: dict[str, ModelInfo]) -> list[Scored]:
    """Non-fast modes: score the nodes that hold the chosen tier entry (and note each one's model info)."""
    scorer = SCORERS[req.mode]
    scored = []
    for index, entry, info, node in firsts:
        if index == chosen_index:
            infos[node.name] = info
            score = scorer(index, entry, node, info, req, estimates, top, success_rates)
            if req.affinity is not None:
                score -= warm_bonus(node, entry.model, info, req, estimates)
            scored.append(Scored(score, not node.local, node.name, entry, node, node.in_flight < node.slots))
    return scored


def _why_not(node: NodeView, model: str, hit: ModelFit | None, low: bool, most_capable_only: bool, cap: float,
             top: float, config: SollolConfig) -> str | None:
    """Why ``model`` cannot go to ``node`` now (None: it can). ``hit`` is the node's fit-table row."""
    if hit is None:
        return "model not installed" if node.polled else "models not known yet"
    why = hit.why_unfit
    if why is None and low and (hit.info.size_b or 0) >= config.large_model_b:
        why = why_no_large_load(node, model, hit.info, config)
    if why is None and most_capable_only and cap < top:
        why = f"not the most capable node ({cap:g}B < {top:g}B)"
    return why


class _Step(NamedTuple):
    """One tier entry of the task, with what every scan needs of it, worked out once per route."""

    tier_index: int
    entry: TierEntry
    model: str
    key: str                   # model_key(model): the fit table's and /api/ps's spelling
    most_capable_only: bool
    not_installed: str         # first_miss texts for the commonest misses, built once
    not_known: str


def _plan(req: RouteRequest) -> list[_Step]:
    return [_Step(index, entry, entry.model, model_key(entry.model), entry.placement is Placement.MOST_CAPABLE_ONLY,
                  f"{entry.model}: model not installed", f"{entry.model}: models not known yet")
            for index, entry in enumerate(req.entries)]


def _open_nodes(nodes: Sequence[NodeView], node_block: dict[str, str], capability: dict[str, float],
                config: SollolConfig) -> Iterator[tuple[NodeView, str, FitTable, bool, float]]:
    """The nodes a scan looks at, each with its fit table, whether its VRAM is low, its capability."""
    for node in nodes:
        name = node.name
        if name not in node_block:
            yield (node, name, node.fit if node.fit is not None else node.fits_by_model,
                   config.vram_monitoring and node.gpu and vram_low(node, config), capability[name])


def _scan_first(plan: list[_Step], nodes: Sequence[NodeView], node_block: dict[str, str],
                capability: dict[str, float], top: float, config: SollolConfig, first_miss: dict[str, str],
                ) -> tuple[list[FirstFit], int]:
    """Non-fast modes: each open node's first eligible tier entry, and the best tier any node holds."""
    firsts: list[FirstFit] = []
    chosen_index = len(plan)
    for node, name, table, low, cap in _open_nodes(nodes, node_block, capability, config):
        for index, entry, model, key, most_capable_only, _not_installed, _not_known in plan:
            if index > chosen_index:
                break  # a higher tier already has a place; lower tiers are not candidates
            hit = table.get(key)
            why = _why_not(node, model, hit, low, most_capable_only, cap, top, config) \
                if hit is None or hit.why_unfit is not None or low or most_capable_only else None
            if why is not None or hit is None:
                if name not in first_miss:
                    first_miss[name] = f"{model}: {why}"
                continue
            chosen_index = index
            firsts.append((index, entry, hit.info, node))
            break
    return firsts, chosen_index


class _FastStep(NamedTuple):
    """One tier entry as the fast scan walks it (everything that does not depend on the node, once)."""

    tier_index: int
    entry: TierEntry
    model: str
    key: str                   # model_key(model): the fit table's and /api/ps's spelling
    most_capable_only: bool
    not_installed: str
    not_known: str
    bias_kind: int             # which placement bias applies: none, light, powerful (see _scan_fast)
    tier_factor: float         # a lower tier must finish clearly sooner to win: 10 % per step


def _fast_plan(plan: list[_Step], top: float) -> list[_FastStep]:
    return [_FastStep(*step, 0 if step.entry.placement is Placement.ANY or top <= 0 else
                      1 if step.entry.placement is Placement.LIGHT else 2, 1.0 + 0.1 * step.tier_index)
            for step in plan]


# A node open to the fast scan: (view, fit table, VRAM low, capability, queue-wait factor, placement biases)
_FastNode = tuple[NodeView, FitTable, bool, float, float, tuple[float, float, float]]


def _scan_fast(req: RouteRequest, plan: list[_Step], nodes: Sequence[NodeView], node_block: dict[str, str],
               capability: dict[str, float], top: float, config: SollolConfig, estimates: Estimates,
               first_miss: dict[str, str]) -> tuple[list[Scored], int]:
    """Fast mode: every (tier entry, node) pair scored by estimated seconds to finish, each node's best kept;
    and the best tier any node holds. The terms of ``score_fast`` that depend on the node alone are
    computed here, once per node: the queue-wait factor (decodes to wait for) and the placement biases."""
    monitoring, ahead = config.vram_monitoring, req.ahead
    open_nodes: list[_FastNode] = []
    for node in nodes:
        name = node.name
        if name in node_block:
            continue
        cap, slots = capability[name], node.slots
        busy = (node.in_flight - slots + 1 + ahead) / slots if node.in_flight >= slots else 0.0
        share = ((node.max_model_b if node.max_model_b is not None else cap) / top) if top > 0 else 0.0
        open_nodes.append((node, node.fit if node.fit is not None else node.fits_by_model,
                           monitoring and node.gpu and vram_low(node, config), cap, busy,
                           (0.0, 0.01 * share, 0.01 * (1.0 - share))))
    return _score_fast_pairs(open_nodes, _fast_plan(plan, top), top, config, estimates,
                             req.max_tokens or DEFAULT_OUTPUT_TOKENS, req.prompt_tokens, first_miss, req.affinity)


# One eligible (tier entry, node) pair as the fast scan's first pass found it: (step, its fit row).
_FastPair = tuple["_FastStep", ModelFit]
LAST_RESORT_SKIPPED = "last resort: not used while a tier model is routable"


# complexity: score_fast inlined in routing's hottest loop (nodes x tier entries), affinity's term included
def _score_fast_pairs(open_nodes: list[_FastNode], plan: list[_FastStep], top: float, config: SollolConfig,
                      estimates: Estimates, output: int, prompt_tokens: int, first_miss: dict[str, str],
                      affinity: Affinity | None = None) -> tuple[list[Scored], int]:
    """Each node's lowest ``score_fast`` over the plan, and the best tier index any node holds.

    Two passes, because two rules look at every node at once: the last-resort entry (the embedded
    node's tiny model) is no candidate while any tier model is routable, and a lower tier's speed is
    taken as measured or, unmeasured, as no quicker than the head tier's prior (a size-based prior
    alone must not trade quality for a speed nobody has seen). ``score_fast`` is inlined here: this is
    the hottest loop of routing (test_routing checks the two agree)."""
    eligible, chosen_index, head_info, tier_routable = _fast_pairs(open_nodes, plan, top, config, first_miss)
    head_tps = (0.0, 0.0) if head_info is None else (prior_tps(False, head_info), prior_tps(True, head_info))
    scored: list[Scored] = []
    for (node, _table, _low, _cap, busy, biases), pairs in eligible:
        name, loaded = node.name, node.loaded
        best_score, best_entry = 0.0, None
        for step, hit in pairs:
            entry, model = step.entry, step.model
            if tier_routable and entry.last_resort:
                first_miss[name] = f"{model}: {LAST_RESORT_SKIPPED}"
                continue
            ttft, tps, load = estimates.get((name, model), NO_ESTIMATE)
            if not tps:
                tps = hit.prior_tps if step.tier_index <= chosen_index else min(hit.prior_tps, head_tps[node.gpu])
            cold = 0.0 if (model in loaded or step.key in loaded) else (load if load is not None else hit.prior_load_s)
            prefill = ttft if (ttft is not None and not cold) else prompt_tokens / (tps * PREFILL_PER_DECODE)
            if affinity is not None:
                prefill = affine_prefill(affinity, name, step.key, prefill, tps, bool(cold))
            decode = output / tps
            score = (busy * decode + cold + prefill + decode) * step.tier_factor + biases[step.bias_kind]
            if best_entry is None or score < best_score:
                best_score, best_entry = score, entry
        if best_entry is not None:
            scored.append(Scored(best_score, not node.local, name, best_entry, node, node.in_flight < node.slots))
    return scored, chosen_index


def _fast_pairs(open_nodes: list[_FastNode], plan: list[_FastStep], top: float, config: SollolConfig,
                first_miss: dict[str, str]) -> tuple[list[tuple[_FastNode, list[_FastPair]]], int,
                                                     ModelInfo | None, bool]:
    """The fast scan's first pass: each node's eligible (entry, fit) pairs (and why not, in
    ``first_miss``); the best tier index any node holds, its model's info, and whether any model
    other than the last resort is routable."""
    eligible: list[tuple[_FastNode, list[_FastPair]]] = []
    chosen_index, head_info, tier_routable = len(plan), None, False
    for fast_node in open_nodes:
        node, table, low, cap = fast_node[0], fast_node[1], fast_node[2], fast_node[3]
        name, polled = node.name, node.polled
        pairs: list[_FastPair] = []
        for step in plan:
            hit = table.get(step.key)
            if hit is None:  # the common miss, kept out of a function call
                if name not in first_miss:
                    first_miss[name] = step.not_installed if polled else step.not_known
                continue
            if hit.why_unfit is not None or low or step.most_capable_only:
                why = _why_not(node, step.model, hit, low, step.most_capable_only, cap, top, config)
                if why is not None:
                    if name not in first_miss:
                        first_miss[name] = f"{step.model}: {why}"
                    continue
            pairs.append((step, hit))
            if step.tier_index < chosen_index:
                chosen_index, head_info = step.tier_index, hit.info
            tier_routable = tier_routable or not step.entry.last_resort
        eligible.append((fast_node, pairs))
    return eligible, chosen_index, head_info, tier_routable


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
                rate, samples = success_rates.get(node.name, NO_RATE)
                if rate is not None and samples >= 3 and rate < req.min_success_rate:
                    why = f"reliable: success {rate:.0%} < {req.min_success_rate:.0%}"
        if why is not None:
            node_block[node.name] = why
    return node_block, capability, top


def _candidates(req: RouteRequest, nodes: Sequence[NodeView], node_block: dict[str, str],
                first_miss: dict[str, str], scored: list[Scored], chosen: Scored | None,
                chosen_index: int) -> tuple[Candidate, ...]:
    """The decision's record: nodes that took no part (and why) in node order, then the scored ones best first."""
    candidates: list[Candidate] = []
    if len(scored) < len(nodes):
        scored_names = {s.name for s in scored}
        model = req.entries[chosen_index].model
        for node in nodes:
            if node.name in node_block:
                candidates.append(Candidate(node.name, "", None, False, node_block[node.name]))
            elif node.name not in scored_names:
                candidates.append(Candidate(node.name, model, None, False,
                                            first_miss.get(node.name, "no tier model fits")))
    mode = req.mode
    fast = mode is RoutingMode.FAST
    keys = {e.model: model_key(e.model) for e in req.entries} if fast else {}
    for s in scored:
        score, _, name, entry, node, free = s
        if fast:  # _explain's fast case, inlined: a 64-node fast decision records 64 of these
            warm = entry.model in node.loaded or keys[entry.model] in node.loaded
            text = f"est. {score:.2f} s to finish ({'warm' if warm else 'cold load'})"
        else:
            text = _explain(mode, node, entry, score)
        if req.affinity is not None and req.affinity.hits:
            text += cached_words(req.affinity, name, entry.model)
        if not free:
            text = f"busy ({node.in_flight}/{node.slots} slots); {text}"
        elif s is chosen:
            text = "chosen: " + text
        candidates.append(Candidate(name, entry.model, round(score, 4), True, text))
    return tuple(candidates)


def _explain(mode: RoutingMode, node: NodeView, entry: TierEntry, score: float) -> str:
    """Words for a score; built only for recorded candidates, not inside the scoring loop."""
    if mode is RoutingMode.FAST:
        warm = "warm" if not needs_load(node, entry.model) else "cold load"
        return f"est. {score:.2f} s to finish ({warm})"
    if mode is RoutingMode.RELIABLE:
        return f"most capable eligible ({node.capability:g}B), load {node.in_flight}/{node.slots}"
    kind = "GPU node" if node.gpu else "CPU node first"
    return f"{kind}, load {node.in_flight}/{node.slots}"



