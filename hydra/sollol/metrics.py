"""Rolling statistics: TTFT, tokens/s, success rate, load time, and distribution counters.

Plain objects guarded by one lock each; readers get frozen snapshots.
"""
from __future__ import annotations

import math
import threading
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple, TypedDict

from .types import ModelStatsSnapshot

# What routing knows of one model on one node: (median TTFT s, mean tokens/s, mean load s), None when unmeasured.
Estimate = tuple[float | None, float | None, float | None]
# A node's recent success rate (None before any outcome) and how many outcomes it rests on.
SuccessRate = tuple[float | None, int]


class FirstTokenHistory(NamedTuple):
    """What the first-token deadline of an attempt rests on, for one model on one node (None: unmeasured)."""

    warm_ttft_p95_s: float | None   # 95th percentile of the time to first token, cold loads taken out
    load_s: float | None            # mean cold-load time
    tokens_per_s: float | None      # mean decode speed


def percentile(values: Iterable[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no data."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def tokens_per_second(eval_count: int | None, eval_duration_ns: int | None) -> float | None:
    """Decode speed as Ollama reports it: eval_count / eval_duration."""
    if not eval_count or not eval_duration_ns or eval_duration_ns <= 0:
        return None
    return eval_count / (eval_duration_ns / 1e9)


@dataclass
class _Window:
    ttft: deque[float]
    tps: deque[float]
    outcomes: deque[bool]
    load: deque[float]
    warm_ttft: deque[float] = field(default_factory=deque)   # ttft minus the load it included
    requests: int = 0
    successes: int = 0
    failures: int = 0


class RollingStats:
    """Per (node, model) rolling windows plus per-node aggregates."""

    def __init__(self, window: int = 50) -> None:
        self._window = window
        self._lock = threading.Lock()
        self._by_key: dict[tuple[str, str], _Window] = {}
        self._keys_of: dict[str, list[tuple[str, str]]] = {}
        # Routing reads estimates and success rates for every decision, many per dispatch round,
        # and a submit routes at once: so they are kept up to date by record() for the one (node,
        # model) that changed, and replaced (never mutated) so readers take them without the lock.
        self._estimates: dict[tuple[str, str], Estimate] = {}
        self._rates: dict[str, SuccessRate] = {}

    def _get(self, node: str, model: str) -> _Window:
        key = (node, model)
        win = self._by_key.get(key)
        if win is None:
            n = self._window
            win = self._by_key[key] = _Window(deque(maxlen=n), deque(maxlen=n), deque(maxlen=n), deque(maxlen=n),
                                              deque(maxlen=n))
            self._keys_of.setdefault(node, []).append(key)
        return win

    def record(self, node: str, model: str, *, ok: bool, ttft_s: float | None = None,
               tokens_per_s: float | None = None, load_s: float | None = None) -> None:
        with self._lock:
            win = self._get(node, model)
            win.requests += 1
            win.outcomes.append(ok)
            if ok:
                win.successes += 1
            else:
                win.failures += 1
            if ttft_s is not None:
                win.ttft.append(ttft_s)
                win.warm_ttft.append(max(0.0, ttft_s - (load_s or 0.0)))
            if tokens_per_s:
                win.tps.append(tokens_per_s)
            if load_s is not None and load_s > 0.05:
                win.load.append(load_s)
            self._refresh(node, model)

    def _refresh(self, node: str, model: str | None) -> None:
        """Lock held: recompute what routing reads for ``node`` (and ``model``), copy on write."""
        estimates = dict(self._estimates)
        if model is not None:
            win = self._by_key[(node, model)]
            estimates[(node, model)] = (percentile(win.ttft, 50), _mean(win.tps), _mean(win.load))
        rates = dict(self._rates)
        outcomes = [o for key in self._keys_of.get(node, ()) for o in self._by_key[key].outcomes]
        if outcomes or node in rates:
            rates[node] = ((sum(outcomes) / len(outcomes)) if outcomes else None, len(outcomes))
        self._estimates, self._rates = estimates, rates

    def forget_node(self, node: str) -> None:
        with self._lock:
            for key in self._keys_of.pop(node, []):
                del self._by_key[key]
            self._estimates = {k: v for k, v in self._estimates.items() if k[0] != node}
            self._rates = {n: v for n, v in self._rates.items() if n != node}

    # --- reads (copies under the lock, computation outside it) ---

    def _copy(self, node: str | None = None) -> list[tuple[tuple[str, str], _Window]]:
        with self._lock:
            return [(k, _Window(deque(w.ttft), deque(w.tps), deque(w.outcomes), deque(w.load),
                                requests=w.requests, successes=w.successes, failures=w.failures))
                    for k, w in self._by_key.items() if node is None or k[0] == node]

    def model_snapshots(self) -> tuple[ModelStatsSnapshot, ...]:
        out = []
        for (node, model), w in sorted(self._copy()):
            out.append(ModelStatsSnapshot(
                node=node, model=model, requests=w.requests, successes=w.successes, failures=w.failures,
                ttft_p50_s=percentile(w.ttft, 50), ttft_p95_s=percentile(w.ttft, 95),
                tokens_per_s=_mean(w.tps), load_s=_mean(w.load)))
        return tuple(out)

    def node_summary(self, node: str) -> NodeSummary:
        wins = [w for _, w in self._copy(node)]
        outcomes = [o for w in wins for o in w.outcomes]
        return NodeSummary(
            requests=sum(w.requests for w in wins),
            successes=sum(w.successes for w in wins),
            failures=sum(w.failures for w in wins),
            success_rate=(sum(outcomes) / len(outcomes)) if outcomes else None,
            ttft_p50_s=percentile([t for w in wins for t in w.ttft], 50),
            ttft_p95_s=percentile([t for w in wins for t in w.ttft], 95),
            tokens_per_s=_mean([t for w in wins for t in w.tps]),
        )

    def first_token_history(self, node: str, model: str) -> FirstTokenHistory:
        """The measurements an attempt's first-token deadline rests on (see watchdog.first_token_deadline)."""
        with self._lock:
            win = self._by_key.get((node, model))
            if win is None:
                return FirstTokenHistory(None, None, None)
            warm, load, tps = list(win.warm_ttft), list(win.load), list(win.tps)
        return FirstTokenHistory(percentile(warm, 95), _mean(load), _mean(tps))

    def estimates(self) -> dict[tuple[str, str], Estimate]:
        """(node, model) -> (median TTFT s, mean tokens/s, mean load s), for routing. Read-only."""
        return self._estimates

    def success_rates(self) -> dict[str, SuccessRate]:
        """node -> (success rate over the recent window, samples). Read-only."""
        return self._rates


def _mean(values: Iterable[float]) -> float | None:
    items = list(values)
    return sum(items) / len(items) if items else None


class NodeSummary(TypedDict):
    requests: int
    successes: int
    failures: int
    success_rate: float | None
    ttft_p50_s: float | None
    ttft_p95_s: float | None
    tokens_per_s: float | None


class DistributionCounts(TypedDict):
    by_node: dict[str, int]
    by_model: dict[str, int]
    by_mode: dict[str, int]
    by_task_type: dict[str, int]
    by_status: dict[str, int]
    failovers: int


class Distribution:
    """Counts of finished and routed tasks by node, model, mode, task type and status."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_node: Counter[str] = Counter()
        self.by_model: Counter[str] = Counter()
        self.by_mode: Counter[str] = Counter()
        self.by_task_type: Counter[str] = Counter()
        self.by_status: Counter[str] = Counter()
        self.failovers = 0

    def routed(self, node: str, model: str, mode: str, task_type: str) -> None:
        with self._lock:
            self.by_node[node] += 1
            self.by_model[model] += 1
            self.by_mode[mode] += 1
            self.by_task_type[task_type] += 1

    def finished(self, status: str) -> None:
        with self._lock:
            self.by_status[status] += 1

    def failover(self) -> None:
        with self._lock:
            self.failovers += 1

    def copy(self) -> DistributionCounts:
        with self._lock:
            return DistributionCounts(by_node=dict(self.by_node), by_model=dict(self.by_model),
                                      by_mode=dict(self.by_mode), by_task_type=dict(self.by_task_type),
                                      by_status=dict(self.by_status), failovers=self.failovers)
