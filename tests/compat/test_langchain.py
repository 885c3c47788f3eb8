"""LangChain's ``langchain-ollama`` (compat/python/langchain-ollama.txt) against ``hydra serve``."""
from __future__ import annotations

from typing import Any

import pytest

from tests.compat.harness import CHAT_MODEL, Gateway, client_python, run_scenarios, value

pytestmark = pytest.mark.compat


@pytest.fixture(scope="module")
def results(gateway: Gateway) -> dict[str, Any]:
    return run_scenarios([str(client_python("langchain-ollama")), "compat/scenarios/langchain_py.py"], gateway)


@pytest.mark.feature("langchain-ollama", "chat")
def test_invoke(results: dict[str, Any], gateway: Gateway) -> None:
    reply = value(results, "invoke")
    assert reply["content"].startswith(gateway.sim_answer_prefix(CHAT_MODEL)) and reply["model"] == CHAT_MODEL


@pytest.mark.feature("langchain-ollama", "real model")
def test_invoke_the_real_embedded_model(results: dict[str, Any]) -> None:
    assert "Paris" in value(results, "invoke_real_model")


@pytest.mark.feature("langchain-ollama", "streaming")
def test_stream(results: dict[str, Any]) -> None:
    streamed = value(results, "stream")
    assert streamed["chunks"] > 2 and streamed["text"]


@pytest.mark.feature("langchain-ollama", "tools")
def test_bound_tools_give_tool_calls(results: dict[str, Any]) -> None:
    calls = value(results, "tools")
    assert [c["name"] for c in calls] == ["get_weather"] and isinstance(calls[0]["args"]["city"], str)


@pytest.mark.feature("langchain-ollama", "structured output")
def test_structured_output_fills_the_schema(results: dict[str, Any]) -> None:
    answer = value(results, "structured_output")
    assert isinstance(answer["country"], str) and isinstance(answer["capital"], str)


@pytest.mark.feature("langchain-ollama", "embeddings")
def test_embeddings(results: dict[str, Any]) -> None:
    got = value(results, "embeddings")
    assert got["query_dims"] > 0 and got["documents"] == 2 and got["doc_dims"] == [got["query_dims"]]
    assert got["same_text_same_vector"]


@pytest.mark.feature("langchain-ollama", "generate / completions")
def test_the_completion_llm_uses_generate(results: dict[str, Any], gateway: Gateway) -> None:
    assert value(results, "llm_generate").startswith(gateway.sim_answer_prefix(CHAT_MODEL))
