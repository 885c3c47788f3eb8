"""Helpers and pytest fixtures for tests that need simulated nodes.

Use the fixtures from any test package with, in its conftest.py::

    pytest_plugins = ["hydra.sim.testing"]

or import the helpers directly. Everything runs on 127.0.0.0/8 with free
ports, so test sessions never collide with each other or a real Ollama.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

import pytest

from hydra.sim.cluster import SimCluster, start_cluster
from hydra.sim.models import NodeProfile
from hydra.sim.presets import models as catalog_models
from hydra.sim.server import SimNode

# Fast enough for tests (a 7B model "loads" in 40 ms), slow enough that
# ordering and concurrency are still observable.
FAST = 0.02


def profile(
    name: str = "sim",
    *,
    gpu: bool = False,
    memory_mb: int = 32_768,
    slots: int = 2,
    models: Sequence[str] = ("qwen2.5-coder:1.5b", "qwen2.5-coder:7b", "qwen3:1.7b", "llama3.2:3b"),
    max_model_b: float = 30,
    **kwargs: object,
) -> NodeProfile:
    """A small NodeProfile with catalogue models; ``memory_mb`` is VRAM or RAM."""
    memory = {"vram_mb": memory_mb} if gpu else {"ram_mb": memory_mb}
    return NodeProfile(
        name=name, gpu=gpu, slots=slots, max_model_b=max_model_b, models=catalog_models(*models),
        **memory, **kwargs,  # type: ignore[arg-type]
    )


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.005) -> bool:
    """Poll ``predicate`` until true or ``timeout``; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


@pytest.fixture
def sim_node_factory() -> Iterator[Callable[..., SimNode]]:
    """``make(profile, host=..., port=0, time_scale=FAST)`` -> started node, stopped at teardown."""
    started: list[SimNode] = []

    def make(p: NodeProfile | None = None, *, host: str = "127.0.0.1", port: int = 0, time_scale: float = FAST) -> SimNode:
        node = SimNode(p or profile(), host=host, port=port, time_scale=time_scale).start()
        started.append(node)
        return node

    yield make
    for node in started:
        node.stop()


@pytest.fixture
def sim_node(sim_node_factory: Callable[..., SimNode]) -> SimNode:
    """One small CPU node on 127.0.0.1 at a free port, time_scale FAST."""
    return sim_node_factory()


@pytest.fixture
def seed_cluster() -> Iterator[SimCluster]:
    """The seed preset ("light" on 127.0.0.2, "powerful" on 127.0.0.3), time_scale FAST."""
    with start_cluster("seed", time_scale=FAST) as cluster:
        yield cluster
