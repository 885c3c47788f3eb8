"""The JavaScript ``ollama`` and ``openai`` packages (compat/js, ``npm ci``) run by Node against ``hydra serve``."""
from __future__ import annotations

from typing import Any

import pytest

from tests.compat.harness import CHAT_MODEL, REAL_MODEL, Gateway, node_binary, run_scenarios, value

pytestmark = pytest.mark.compat


@pytest.fixture(scope="module")
def results(gateway: Gateway) -> dict[str, Any]:
    return run_scenarios([*node_binary(), "compat/scenarios/clients_js.mjs"], gateway)


@pytest.mark.feature("ollama (JS)", "list models")
def test_ollama_list_has_identities(results: dict[str, Any]) -> None:
    models = value(results, "ollama_list")
    names = [m["name"] for m in models]
    assert len(names) == len(set(names)) and {CHAT_MODEL, REAL_MODEL} <= set(names)
    assert all(m["digest"] for m in models), [m["name"] for m in models if not m["digest"]]


@pytest.mark.feature("ollama (JS)", "show / retrieve")
def test_ollama_show(results: dict[str, Any]) -> None:
    assert value(results, "ollama_show") == {"family": "llama", "capabilities": ["completion"]}


@pytest.mark.feature("ollama (JS)", "streaming")
def test_ollama_chat_streams(results: dict[str, Any], gateway: Gateway) -> None:
    streamed = value(results, "ollama_chat_stream")
    assert streamed["chunks"] > 2 and streamed["done"]
    assert streamed["text"].startswith(gateway.sim_answer_prefix(CHAT_MODEL))


@pytest.mark.feature("ollama (JS)", "real model")
def test_ollama_chat_with_the_real_model(results: dict[str, Any]) -> None:
    assert "Paris" in value(results, "ollama_chat_real_model")


@pytest.mark.feature("ollama (JS)", "embeddings")
def test_ollama_embed(results: dict[str, Any]) -> None:
    got = value(results, "ollama_embed")
    assert got["count"] == 2 and got["dims"] > 0


# Chunks already buffered when abort() is called may still be delivered: a handful, not the 2000 asked for.
ABORTED_WITHIN_CHUNKS = 50


@pytest.mark.feature("ollama (JS)", "abort")
def test_ollama_abort_ends_the_stream_at_once(results: dict[str, Any]) -> None:
    got = value(results, "ollama_abort")
    assert got["error"] == "AbortError" and got["chunks"] < ABORTED_WITHIN_CHUNKS and got["ms"] < 5000


@pytest.mark.feature("openai (JS)", "list models")
def test_openai_models(results: dict[str, Any]) -> None:
    ids = value(results, "openai_models")
    assert len(ids) == len(set(ids)) and {CHAT_MODEL, REAL_MODEL} <= set(ids)


@pytest.mark.feature("openai (JS)", "streaming")
def test_openai_chat_streams(results: dict[str, Any], gateway: Gateway) -> None:
    streamed = value(results, "openai_chat_stream")
    assert streamed["chunks"] > 2 and streamed["text"].startswith(gateway.sim_answer_prefix(CHAT_MODEL))


@pytest.mark.feature("openai (JS)", "embeddings")
def test_openai_embeddings(results: dict[str, Any]) -> None:
    got = value(results, "openai_embeddings")
    assert got["count"] == 2 and got["dims"] > 0


@pytest.mark.feature("openai (JS)", "abort")
def test_openai_abort_ends_the_stream_at_once(results: dict[str, Any]) -> None:
    got = value(results, "openai_abort")  # the SDK ends an aborted stream's iteration without raising
    assert got["chunks"] < ABORTED_WITHIN_CHUNKS and got["ms"] < 5000
