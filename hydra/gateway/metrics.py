"""Prometheus metrics of one gateway: its own registry, request counters and histograms filled as
requests end, and cluster gauges (queue, health, circuit, VRAM) read from a snapshot at scrape time."""
from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hydra.gateway.service_api import GatewayService
from hydra.sollol import PrefixCacheSnapshot, TaskResult
from hydra.sollol.redact import redact_url
from hydra.task_counts import TaskKey

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
_CIRCUITS = ("closed", "open", "half_open")


class ClusterCollector(Collector):
    """Gauges from ``service.snapshot()`` at each scrape: never stale, nothing to keep in step."""

    def __init__(self, service: GatewayService) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        snap = self.service.snapshot()
        yield GaugeMetricFamily("hydra_queue_depth", "Tasks waiting for a node.", value=snap.queue_depth)
        yield GaugeMetricFamily("hydra_router_in_flight", "Tasks running on nodes.", value=snap.in_flight)
        yield GaugeMetricFamily("hydra_history_degraded", "1 while history cannot write (new tasks are refused).",
                                value=0.0 if self.service.history_health().ok else 1.0)
        healthy = GaugeMetricFamily("hydra_node_healthy", "1 when the node answers its health poll.",
                                    labels=["node"])
        circuit = GaugeMetricFamily("hydra_node_circuit_state", "1 for the circuit breaker's current state.",
                                    labels=["node", "state"])
        vram = GaugeMetricFamily("hydra_node_vram_used_bytes", "VRAM used by loaded models.", labels=["node"])
        busy = GaugeMetricFamily("hydra_node_in_flight", "Requests running on the node.", labels=["node"])
        for node in snap.nodes:
            name = redact_url(node.name)  # labels are shown to whoever scrapes: no credentials
            healthy.add_metric([name], 1.0 if node.healthy else 0.0)
            for state in _CIRCUITS:
                circuit.add_metric([name, state], 1.0 if node.circuit == state else 0.0)
            vram.add_metric([name], float((node.vram_used_mb or 0) * 1024 * 1024))
            busy.add_metric([name], float(node.in_flight))
        yield from (healthy, circuit, vram, busy)
        # Every task of the service (UI, CLI, Python API, gateway), counted as it ends; the service keeps
        # the counts, so they are read here like the gauges and never kept in step by hand.
        tasks = CounterMetricFamily("hydra_tasks", "Tasks that ended, by node, model, mode, status and source.",
                                    labels=list(TaskKey._fields))
        for key, count in sorted(self.service.task_counts().items()):
            tasks.add_metric([redact_url(key.node), *key[1:]], float(count))
        yield tasks
        yield from _cache_metrics(snap.prefix_cache)


def _cache_metrics(cache: PrefixCacheSnapshot | None) -> Iterator[Metric]:
    """Prefix-aware placement: hits, cached prompt tokens and prefill time saved, per node."""
    if cache is None:
        return
    families = (
        CounterMetricFamily("hydra_prefix_cache_requests", "Finished attempts the prefix record counted.",
                            labels=["node"]),
        CounterMetricFamily("hydra_prefix_cache_hits", "Attempts that found part of their prompt cached where "
                            "they ran.", labels=["node"]),
        CounterMetricFamily("hydra_prefix_cache_prompt_tokens", "Prompt tokens of those attempts (estimated).",
                            labels=["node"]),
        CounterMetricFamily("hydra_prefix_cache_cached_tokens", "Of which already cached where they ran.",
                            labels=["node"]),
        CounterMetricFamily("hydra_prefix_cache_prefill_saved_seconds", "Prefill time the cached tokens saved, "
                            "at each node's measured prefill speed.", labels=["node"]),
    )
    for n in cache.nodes:
        name = redact_url(n.node)
        for family, value in zip(families, (n.requests, n.hits, n.prompt_tokens, n.cached_tokens,
                                            n.prefill_saved_s), strict=True):
            family.add_metric([name], float(value))
    yield from families
    yield GaugeMetricFamily("hydra_prefix_cache_hit_ratio", "Share of attempts that found part of their prompt "
                            "cached where they ran (NaN before any).",
                            value=cache.hit_rate if cache.hit_rate is not None else float("nan"))
    yield GaugeMetricFamily("hydra_prefix_affinity_enabled", "1 when prefix-aware placement is on.",
                            value=1.0 if cache.enabled else 0.0)


class GatewayMetrics:
    def __init__(self, service: GatewayService) -> None:
        self.registry = registry = CollectorRegistry()
        self.requests = Counter("hydra_gateway_requests", "Generation requests by outcome.",
                                ["api", "node", "model", "mode", "status"], registry=registry)
        self.in_flight = Gauge("hydra_gateway_in_flight", "Generation requests being answered.", registry=registry)
        self.ttft = Histogram("hydra_gateway_ttft_seconds", "Time to first token on the node.", ["node", "model"],
                              buckets=_SECONDS, registry=registry)
        self.duration = Histogram("hydra_gateway_request_duration_seconds", "Request duration in the gateway.",
                                  ["node", "model"], buckets=_SECONDS, registry=registry)
        self.tokens = Counter("hydra_gateway_tokens", "Tokens by kind (prompt, completion).",
                              ["node", "model", "kind"], registry=registry)
        registry.register(ClusterCollector(service))

    def finished(self, api: str, mode: str, result: TaskResult | None, duration_s: float) -> None:
        if result is None:
            self.requests.labels(api, "", "", mode, "cancelled").inc()
            return
        node, model = redact_url(result.node or ""), result.model or ""
        self.requests.labels(api, node, model, result.mode.value if result.mode else mode,
                             result.status.value).inc()
        self.duration.labels(node, model).observe(duration_s)
        if result.ttft_s is not None:
            self.ttft.labels(node, model).observe(result.ttft_s)
        if result.eval_count:
            self.tokens.labels(node, model, "completion").inc(result.eval_count)
        if result.prompt_eval_count:
            self.tokens.labels(node, model, "prompt").inc(result.prompt_eval_count)

    def refused(self, api: str, model: str, mode: str, status: int) -> None:
        self.requests.labels(api, "", model, mode, f"http_{status}").inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
