"""Hand-built node views and requests for the routing tests (no I/O, no threads)."""
from __future__ import annotations

import random

from hydra.sollol.config import SollolConfig
from hydra.sollol.node import Circuit, NodeView
from hydra.sollol.routing import RouteRequest
from hydra.sollol.types import ModelInfo, Placement, RoutingMode, TierEntry

# name -> billions of parameters (sizes as Ollama reports them for Q4 quantisations)
SIZES = {
    "qwen2.5-coder:7b": 7.6, "qwen2.5-coder:1.5b": 1.5, "qwen2.5-coder:3b": 3.1, "deepseek-coder-v2:latest": 15.7,
    "llama3.1:70b": 70.6, "qwen2.5-coder:32b": 32.8, "mistral:latest": 7.2, "llama3.2:3b": 3.2, "qwen3:14b": 14.8,
}


def info(name: str) -> ModelInfo:
    size_b = SIZES[name]
    return ModelInfo(name, size_b, size_bytes=int(size_b * 0.6e9))


def view(name: str = "cpu", *, gpu: bool = False, max_b: float | None = 30, slots: int = 2, in_flight: int = 0,
         healthy: bool = True, circuit: Circuit = Circuit.CLOSED, trial: bool = False,
         models: tuple[str, ...] = ("qwen2.5-coder:7b", "qwen2.5-coder:1.5b", "mistral:latest", "llama3.2:3b"),
         loaded: tuple[str, ...] = (), vram_mb: int | None = None, vram_used_mb: int | None = None,
         local: bool = False, polled: bool = True, last_error: str | None = None) -> NodeView:
    if gpu and vram_mb is None:
        vram_mb = 48_000
    if gpu and vram_used_mb is None:
        vram_used_mb = 0
    return NodeView(
        name=name, url=f"http://127.0.0.9:{abs(hash(name)) % 50000 + 1024}", gpu=gpu, local=local, max_model_b=max_b,
        slots=slots, in_flight=in_flight, healthy=healthy, circuit=circuit, trial_in_flight=trial,
        installed={m: info(m) for m in models}, loaded=frozenset(loaded), vram_total_mb=vram_mb if gpu else None,
        vram_used_mb=vram_used_mb if gpu else None, polled=polled, last_error=last_error)


def gpu(name: str = "gpu", **kw) -> NodeView:
    kw.setdefault("max_b", 70)
    kw.setdefault("models", ("qwen2.5-coder:7b", "qwen2.5-coder:1.5b", "mistral:latest", "llama3.2:3b",
                             "llama3.1:70b"))
    return view(name, gpu=True, **kw)


CFG = SollolConfig()
CODE = (TierEntry("qwen2.5-coder:7b", Placement.POWERFUL), TierEntry("qwen2.5-coder:1.5b", Placement.LIGHT))


def request(mode: RoutingMode = RoutingMode.ASYNC, entries=CODE, **kw) -> RouteRequest:
    kw.setdefault("min_success_rate", 0.98)
    return RouteRequest(mode=mode, task_type="code", entries=tuple(entries), max_tokens=kw.pop("max_tokens", 100), **kw)


def reason_of(outcome, node: str) -> str:
    """The reason recorded for ``node``: one candidate per node, its best pair or why it takes nothing."""
    found = [c for c in outcome.candidates if c.node == node]
    assert len(found) == 1, f"expected one candidate for {node} in {outcome.candidates}"
    return found[0].reason


def random_cluster(seed: int) -> tuple[list[NodeView], dict, dict]:
    rng = random.Random(seed)
    names = sorted(SIZES)
    nodes = []
    for i in range(24):
        is_gpu = rng.random() < 0.4
        installed = tuple(m for m in names if rng.random() < 0.6)
        nodes.append(view(f"n{i}", gpu=is_gpu, max_b=rng.choice([8, 16, 30, 70, None]), slots=rng.choice([1, 2, 4]),
                          in_flight=rng.choice([0, 1, 2, 4]), models=installed,
                          loaded=tuple(m for m in installed if rng.random() < 0.3),
                          vram_used_mb=rng.choice([0, 47_000]) if is_gpu else None, local=rng.random() < 0.2,
                          healthy=rng.random() > 0.1))
    estimates = {(n.name, m): (rng.choice([None, 0.3]), rng.choice([None, 25.0, 90.0]), rng.choice([None, 0.0, 4.0]))
                 for n in nodes for m in n.installed if rng.random() < 0.5}
    return nodes, estimates, {}
