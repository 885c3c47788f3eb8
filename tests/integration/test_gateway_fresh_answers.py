"""What the real clients found on the merged gateway (issue 12's compatibility suite), each checked over
sim nodes: /api/ps right after a task or an unload says what the nodes say now (not the monitor's last
poll), a plain /api/generate gives its context, and a format schema is answered with every property.

The service here polls its nodes every 30 s, so only an on-demand poll can make /api/ps current."""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest

from hydra.gateway import Gateway
from hydra.service import Hydra
from hydra.sim import SimCluster
from tests.integration.service_env import hydra_env

TIMEOUT = 20.0
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
CHAT_MODEL = "llama3.2:3b"
EMBED_MODEL = "nomic-embed-text:latest"


@pytest.fixture
def slow_poll_gateway(seed: SimCluster, tmp_path: Path, eventually: Callable[..., Any]) -> Iterator[Gateway]:
    hydra = Hydra.from_env(hydra_env(seed, tmp_path), poll_interval_s=30.0, no_route_wait_s=1.0).start()
    try:
        eventually(lambda: len(hydra.snapshot().healthy_nodes) == 2, what="both nodes healthy")
        with Gateway(hydra, port=0) as gateway:
            yield gateway
    finally:
        hydra.close()


def _ps(gateway: Gateway) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in httpx.get(gateway.url + "/api/ps", timeout=TIMEOUT).json()["models"]}


def test_a_model_a_task_just_loaded_has_its_nodes_expiry_in_ps(slow_poll_gateway: Gateway) -> None:
    client = ollama.Client(host=slow_poll_gateway.url, timeout=TIMEOUT)
    client.embed(model=EMBED_MODEL, input="hello", keep_alive="10m")
    entry = _ps(slow_poll_gateway)[EMBED_MODEL]  # at once: no later poll of the monitor can have helped
    assert entry["expires_at"] and RFC3339.match(entry["expires_at"]), entry
    assert entry["digest"] and entry["details"]["family"] == "nomic-bert"


def test_keep_alive_0_is_seen_in_ps_at_once(slow_poll_gateway: Gateway) -> None:
    client = ollama.Client(host=slow_poll_gateway.url, timeout=TIMEOUT)
    client.chat(model=CHAT_MODEL, messages=[{"role": "user", "content": "hi"}], options={"num_predict": 2})
    assert CHAT_MODEL in _ps(slow_poll_gateway)
    unloaded = client.generate(model=CHAT_MODEL, prompt="", keep_alive=0)
    assert (unloaded.done, unloaded.done_reason) == (True, "unload")
    assert CHAT_MODEL not in _ps(slow_poll_gateway)


def test_a_plain_generate_gives_its_context_and_goes_on_from_it(seed_gateway: Gateway) -> None:
    client = ollama.Client(host=seed_gateway.url, timeout=TIMEOUT)
    first = client.generate(model=CHAT_MODEL, prompt="Pick a word.", options={"num_predict": 4})
    assert first.context and all(isinstance(t, int) for t in first.context)
    second = client.generate(model=CHAT_MODEL, prompt="Which word?", context=first.context, options={"num_predict": 4})
    assert second.context and len(second.context) > len(first.context)
    streamed = list(client.generate(model=CHAT_MODEL, prompt="Pick a word.", options={"num_predict": 4}, stream=True))
    assert streamed[-1].done and streamed[-1].context


def test_a_format_schema_is_answered_with_every_property(seed_gateway: Gateway) -> None:
    schema = {"type": "object", "required": ["country", "capital", "population", "coastal"],
              "properties": {"country": {"type": "integer"}, "capital": {"type": "string"},
                             "population": {"type": "integer"}, "coastal": {"type": "boolean"}}}
    reply = ollama.Client(host=seed_gateway.url, timeout=TIMEOUT).chat(
        model=CHAT_MODEL, messages=[{"role": "user", "content": "France?"}], format=schema)
    answer = json.loads(reply.message.content or "")
    assert set(answer) == set(schema["required"])
    assert isinstance(answer["capital"], str) and answer["capital"]  # the text goes to the string property
    assert isinstance(answer["country"], int) and isinstance(answer["population"], int)
    assert isinstance(answer["coastal"], bool)
