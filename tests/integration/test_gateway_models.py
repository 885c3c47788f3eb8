"""Model identity through the gateway: /api/tags, /api/ps and /api/show carry what the nodes report (digest,
modified_at, size, details, capabilities) in Ollama's shapes, each model once; /api/hydra/status names
the models whose nodes disagree on the digest."""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest

from hydra.gateway import Gateway
from hydra.service import Hydra
from hydra.sim import NodeProfile, SimCluster
from hydra.sim.presets import model
from tests.integration.service_env import hydra_env

TIMEOUT = 20.0
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def test_tags_list_each_model_once_with_the_nodes_digest_and_details(seed: SimCluster,
                                                                     seed_gateway: Gateway) -> None:
    listed = ollama.Client(host=seed_gateway.url, timeout=TIMEOUT).list().models
    raw = httpx.get(seed_gateway.url + "/api/tags", timeout=TIMEOUT).json()["models"]
    names = [m.model for m in listed]
    assert len(names) == len(set(names)) == len(raw)
    powerful = seed["powerful"].profile
    assert set(names) == {m.name for m in powerful.models}  # powerful holds every model light has, and more
    digests = {m.model: m.digest for m in listed}
    assert len(set(digests.values())) == len(digests)  # distinct: llm-ollama groups models by digest
    for sim in powerful.models:
        entry = next(e for e in raw if e["name"] == sim.name)
        assert entry["digest"] == sim.digest and len(entry["digest"]) == 64
        assert entry["size"] == sim.weights_bytes
        assert datetime.fromisoformat(entry["modified_at"]) == datetime.fromisoformat(sim.modified_at)
        assert RFC3339.match(entry["modified_at"]), entry["modified_at"]
        assert entry["details"] == sim.details()
    nomic = next(e for e in raw if e["name"] == "nomic-embed-text:latest")
    assert nomic["details"]["parameter_size"] == "137M" and nomic["details"]["family"] == "nomic-bert"
    assert sorted(nomic["nodes"]) == ["light", "powerful"]


def test_ps_has_rfc3339_expiry_details_digest_and_vram(seed: SimCluster, seed_gateway: Gateway,
                                                      eventually: Callable[..., Any]) -> None:
    client = ollama.Client(host=seed_gateway.url, timeout=TIMEOUT)
    client.chat(model="llama3.2:3b", messages=[{"role": "user", "content": "hi"}], options={"num_predict": 2},
                keep_alive="10m")
    entry = eventually(lambda: next((m for m in httpx.get(seed_gateway.url + "/api/ps", timeout=TIMEOUT)
                                     .json()["models"] if m["name"] == "llama3.2:3b" and m["expires_at"]), None),
                       what="llama3.2:3b in /api/ps as its node reports it")
    sim = seed["powerful"].profile.model("llama3.2:3b")
    assert sim is not None
    assert RFC3339.match(entry["expires_at"]), entry["expires_at"]  # a "T", never a space
    assert entry["digest"] == sim.digest and entry["details"] == sim.details()
    assert entry["size"] >= sim.memory_bytes and entry["context_length"] == sim.context_length
    assert entry["size_vram"] == sim.memory_bytes * entry["nodes"].count("powerful")  # light is a CPU node
    typed = next(m for m in client.ps().models if m.model == "llama3.2:3b")  # the client parses it back
    assert typed.expires_at is not None and typed.digest == sim.digest and typed.details.family == "llama"


def test_show_carries_the_capabilities(seed_gateway: Gateway) -> None:
    client = ollama.Client(host=seed_gateway.url, timeout=TIMEOUT)
    assert client.show("nomic-embed-text").capabilities == ["embedding"]
    assert client.show("nomic-embed-text").modelinfo["nomic-bert.embedding_length"] == 768
    assert client.show("qwen3:8b").capabilities == ["completion", "thinking"]


def test_the_monitor_keeps_each_models_capabilities(seed_service: Hydra, eventually: Callable[..., Any]) -> None:
    def capabilities() -> dict[str, tuple[str, ...] | None]:
        node = seed_service.snapshot().node("light")
        return {m.name: m.capabilities for m in node.installed} if node else {}

    known = eventually(lambda: (c := capabilities()) and all(v is not None for v in c.values()) and c,
                       what="every model's capabilities known")
    assert known["nomic-embed-text:latest"] == ("embedding",)
    assert known["llama3.2:3b"] == ("completion",)


def _node(name: str, revision: str) -> NodeProfile:
    return NodeProfile(name=name, ram_mb=16_384, max_model_b=9,
                       models=[model("qwen3:8b", revision=revision), model("llama3.2:3b")])


@pytest.fixture
def split(clusters: Callable[..., SimCluster], tmp_path: Path,
          eventually: Callable[..., Any]) -> Iterator[tuple[SimCluster, Gateway]]:
    """Three nodes: two hold one build of qwen3:8b, the third another; all agree on llama3.2:3b."""
    cluster = clusters([_node("a", ""), _node("b", ""), _node("c", "pulled-later")])
    service = Hydra.from_env(hydra_env(cluster, tmp_path), poll_interval_s=0.1, no_route_wait_s=1.0).start()
    try:
        eventually(lambda: len(service.snapshot().healthy_nodes) == 3, what="three nodes healthy")
        with Gateway(service, port=0) as gateway:
            yield cluster, gateway
    finally:
        service.close()


def test_a_digest_conflict_is_listed_once_and_reported(split: tuple[SimCluster, Gateway]) -> None:
    cluster, gateway = split
    majority = cluster["a"].profile.model("qwen3:8b")
    minority = cluster["c"].profile.model("qwen3:8b")
    assert majority is not None and minority is not None and majority.digest != minority.digest
    tags = httpx.get(gateway.url + "/api/tags", timeout=TIMEOUT).json()["models"]
    qwen = [m for m in tags if m["name"] == "qwen3:8b"]
    assert len(qwen) == 1 and qwen[0]["digest"] == majority.digest  # the build most nodes hold
    status = httpx.get(gateway.url + "/api/hydra/status", timeout=TIMEOUT).json()
    assert status["model_conflicts"] == [{"model": "qwen3:8b",
                                          "digests": {majority.digest: ["a", "b"], minority.digest: ["c"]}}]
    shown = httpx.post(gateway.url + "/api/show", json={"model": "qwen3:8b"}, timeout=TIMEOUT)
    assert shown.headers["x-hydra-node"] in ("a", "b")  # described as the listed build
