"""Frozen cluster snapshots for pages and tests: copies taken under each owner's lock."""
from __future__ import annotations

import time
from collections.abc import Sequence

from .config import SollolConfig
from .eligibility import vram_low
from .handle import TaskState
from .metrics import Distribution, RollingStats
from .node import NodeState
from .prefix_cache import PrefixCacheSnapshot
from .types import ClusterSnapshot, NodeSnapshot, TaskStatus


def build_snapshot(config: SollolConfig, stats: RollingStats, distribution: Distribution,
                   states: Sequence[NodeState], active: Sequence[TaskState], *,
                   prefix: PrefixCacheSnapshot | None = None) -> ClusterSnapshot:
    nodes = []
    now_wall, now = time.time(), time.monotonic()
    for state in states:
        view = state.view()
        with state.lock:
            loaded = tuple(state.loaded.values())
            version, last_seen = state.version, state.last_seen
            missing = tuple(sorted(state.missing))
        backoff = view.backoff_until
        summary = stats.node_summary(state.name)
        nodes.append(NodeSnapshot(
            name=view.name, url=view.url, healthy=view.healthy, circuit=view.circuit.value,
            last_error=view.last_error, gpu=view.gpu, local=view.local, max_model_b=view.max_model_b,
            slots=view.slots, in_flight=view.in_flight, vram_total_mb=view.vram_total_mb,
            vram_used_mb=view.vram_used_mb, vram_free_mb=view.vram_free_mb,
            installed=tuple(sorted(view.installed.values(), key=lambda m: m.name)), loaded=loaded,
            version=version, last_seen=last_seen, requests=int(summary["requests"] or 0),
            successes=int(summary["successes"] or 0), failures=int(summary["failures"] or 0),
            success_rate=summary["success_rate"], ttft_p50_s=summary["ttft_p50_s"],
            ttft_p95_s=summary["ttft_p95_s"], tokens_per_s=summary["tokens_per_s"],
            vram_low=vram_low(view, config), refuses_credentials=view.credentials_refused,
            backed_off_until=now_wall + (backoff - now) if backoff is not None and backoff > now else None,
            missing_models=missing))
    counts = distribution.copy()
    return ClusterSnapshot(
        time=time.time(), nodes=tuple(nodes), models=stats.model_snapshots(),
        queue_depth=sum(1 for s in active if s.status is TaskStatus.QUEUED),
        in_flight=sum(1 for s in active if s.status is TaskStatus.RUNNING),
        max_concurrent=config.effective_concurrency, parallel=config.parallel_requests,
        default_mode=config.default_mode, vram_monitoring=config.vram_monitoring,
        by_node=counts["by_node"], by_model=counts["by_model"], by_mode=counts["by_mode"],
        by_task_type=counts["by_task_type"], by_status=counts["by_status"], failovers=counts["failovers"],
        prefix_cache=prefix)
