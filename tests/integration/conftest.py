"""Fixtures for integration tests: simulated clusters on 127.0.0.x and routers over them.

Every cluster and router a test starts is stopped at teardown (routers first),
and settings that would leak in from the shell (HYDRA_*, SOLLOL_*, OLLAMA_HOST)
are cleared for every test here.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pytest

from hydra.sim import NodeProfile, SimCluster, start_cluster
from hydra.sollol import Router, SollolConfig, TaskEvent, TierEntry
from hydra.sollol.config import parse_nodes
from hydra.tiers import SEED_TIERS, classify
from tests.integration.service_env import hydra_env

TIME_SCALE = 0.05   # a 7B model "loads" in 0.1-0.25 s and decodes 20 tokens in 0.02-0.1 s


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith(("HYDRA_", "SOLLOL_")) or key == "OLLAMA_HOST":
            monkeypatch.delenv(key)


def _eventually(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition",
                interval: float = 0.01) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


@pytest.fixture
def eventually() -> Callable[..., Any]:
    """``eventually(predicate, timeout=10, what="...")``: a bounded poll that fails the test on timeout."""
    return _eventually


def router_config(cluster: SimCluster | str, **overrides: Any) -> SollolConfig:
    nodes = cluster if isinstance(cluster, str) else cluster.sollol_nodes()
    values: dict[str, Any] = {
        "nodes": tuple(parse_nodes(nodes)), "discover_localhost": False, "poll_interval_s": 0.1,
        "max_backoff_s": 0.5, "breaker_cooldown_s": 0.5, "connect_timeout_s": 1.0, "first_token_timeout_s": 5.0,
        "idle_timeout_s": 5.0}
    values.update(overrides)
    return SollolConfig(**values)


@pytest.fixture
def clusters() -> Iterator[Callable[..., SimCluster]]:
    """``start(preset_or_profiles, time_scale=TIME_SCALE)`` -> a started cluster, stopped at teardown."""
    started: list[SimCluster] = []

    def start(preset: str | Sequence[NodeProfile] = "seed", *, time_scale: float = TIME_SCALE,
              **kwargs: Any) -> SimCluster:
        cluster = start_cluster(preset, time_scale=time_scale, **kwargs)
        started.append(cluster)
        return cluster

    yield start
    for cluster in started:
        cluster.stop()


@pytest.fixture
def seed(clusters: Callable[..., SimCluster]) -> SimCluster:
    """The seed's two nodes: "light" (CPU, 30B) on 127.0.0.2 and "powerful" (GPU, 70B) on 127.0.0.3."""
    return clusters("seed")


@pytest.fixture
def make_router(clusters: Callable[..., SimCluster]) -> Iterator[Callable[..., Router]]:
    """``make(cluster, **config_overrides)`` -> a started Router, closed at teardown (before the clusters stop).
    It has the seed's tiers and classifier unless ``tiers=`` / ``classify=`` say otherwise (None: none)."""
    routers: list[Router] = []

    def make(cluster: SimCluster | str, *, events: list[TaskEvent] | None = None,
             tiers: Mapping[str, Sequence[TierEntry]] | None = SEED_TIERS,
             classify: Callable[[str], str] | None = classify, **overrides: Any) -> Router:
        router = Router(config=router_config(cluster, **overrides), tiers=tiers, classify=classify)
        if events is not None:
            router.subscribe(events.append)
        routers.append(router)
        return router.start()

    yield make
    for router in routers:
        router.close()


@pytest.fixture
def seed_service(seed: SimCluster, tmp_path: Any) -> Iterator[Any]:
    """A Hydra over the seed cluster, both nodes healthy, quick to end a task no node can take."""
    from hydra.service import Hydra

    hydra = Hydra.from_env(hydra_env(seed, tmp_path), poll_interval_s=0.1, no_route_wait_s=1.0).start()
    try:
        _eventually(lambda: len(hydra.snapshot().healthy_nodes) == 2, what="both nodes healthy")
        yield hydra
    finally:
        hydra.close()


@pytest.fixture
def seed_gateway(seed_service: Any) -> Iterator[Any]:
    """``seed_service`` behind a Gateway on a free port."""
    from hydra.gateway import Gateway

    with Gateway(seed_service, port=0) as gateway:
        yield gateway

