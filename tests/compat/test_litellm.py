"""LiteLLM (compat/python/litellm.txt) through its ``ollama_chat/``, ``ollama/`` and ``openai/`` providers."""
from __future__ import annotations

from typing import Any

import pytest

from tests.compat.harness import CHAT_MODEL, Gateway, client_python, run_scenarios, value

pytestmark = pytest.mark.compat


@pytest.fixture(scope="module")
def results(gateway: Gateway) -> dict[str, Any]:
    return run_scenarios([str(client_python("litellm")), "compat/scenarios/litellm_py.py"], gateway)


@pytest.mark.feature("LiteLLM", "chat")
@pytest.mark.parametrize("scenario", ["ollama_generate_completion", "openai_completion"])
def test_completion(results: dict[str, Any], gateway: Gateway, scenario: str) -> None:
    assert value(results, scenario).startswith(gateway.sim_answer_prefix(CHAT_MODEL))


@pytest.mark.feature("LiteLLM", "chat")
def test_ollama_chat_completion_with_usage(results: dict[str, Any], gateway: Gateway) -> None:
    reply = value(results, "ollama_chat_completion")
    assert reply["text"].startswith(gateway.sim_answer_prefix(CHAT_MODEL)) and reply["completion_tokens"] == 8


@pytest.mark.feature("LiteLLM", "streaming")
@pytest.mark.parametrize("scenario", ["ollama_chat_stream", "ollama_generate_stream", "openai_stream"])
def test_streaming(results: dict[str, Any], gateway: Gateway, scenario: str) -> None:
    streamed = value(results, scenario)
    assert streamed["chunks"] > 2 and streamed["text"].startswith(gateway.sim_answer_prefix(CHAT_MODEL))


@pytest.mark.feature("LiteLLM", "real model")
def test_the_real_embedded_model(results: dict[str, Any]) -> None:
    assert "Paris" in value(results, "ollama_chat_real_model")


@pytest.mark.feature("LiteLLM", "errors keep their status")
def test_a_nodes_400_is_a_bad_request_not_a_fallback_trigger(results: dict[str, Any]) -> None:
    assert value(results, "openai_image_to_the_embedded_model") == {"type": "BadRequestError", "status": 400}


@pytest.mark.feature("LiteLLM", "embeddings")
def test_ollama_embedding(results: dict[str, Any]) -> None:
    got = value(results, "ollama_embedding")
    assert got["count"] == 2 and len(got["dims"]) == 1 and got["dims"][0] > 0


@pytest.mark.feature("LiteLLM", "embeddings")
def test_openai_embedding(results: dict[str, Any]) -> None:
    got = value(results, "openai_embedding")
    assert got["count"] == 1 and got["dims"] > 0


@pytest.mark.feature("LiteLLM", "generate / completions")
@pytest.mark.parametrize("scenario", ["openai_text_completion", "ollama_text_completion"])
def test_text_completion(results: dict[str, Any], gateway: Gateway, scenario: str) -> None:
    assert value(results, scenario).startswith(gateway.sim_answer_prefix(CHAT_MODEL))
