"""``llm`` with ``llm-ollama`` (compat/python/llm.txt): each model listed once, each answered by itself."""
from __future__ import annotations

from typing import Any

import pytest

from tests.compat.harness import CHAT_MODEL, EMBED_MODEL, OTHER_MODEL, Gateway, client_python, run_scenarios, value

pytestmark = pytest.mark.compat


@pytest.fixture(scope="module")
def results(gateway: Gateway) -> dict[str, Any]:
    return run_scenarios([str(client_python("llm")), "compat/scenarios/llm_cli.py"], gateway)


@pytest.mark.feature("llm + llm-ollama", "list models")
def test_llm_models_lists_each_model_once(results: dict[str, Any], gateway: Gateway) -> None:
    listed = value(results, "models")
    assert len(listed) == len(set(listed))
    served = {m["name"] for m in gateway.get("/api/tags")["models"]}
    # llm lists the models that complete text; embedding models go to `llm embed-models`
    chat_models = {f"ollama/{name}" for name in served
                   if "completion" in (gateway.post("/api/show", {"model": name}).get("capabilities") or ["completion"])}
    assert chat_models <= set(listed), f"missing from llm models: {sorted(chat_models - set(listed))}"


@pytest.mark.feature("llm + llm-ollama", "chat")
def test_each_model_is_answered_by_itself(results: dict[str, Any], gateway: Gateway) -> None:
    answers = value(results, "each_model_answers_as_itself")
    for name in (CHAT_MODEL, OTHER_MODEL):
        assert answers[name].startswith(gateway.sim_answer_prefix(name)), f"{name} was answered by: {answers[name]}"


@pytest.mark.feature("llm + llm-ollama", "real model")
def test_the_real_model_answers(results: dict[str, Any]) -> None:
    assert "Paris" in value(results, "real_model")


@pytest.mark.feature("llm + llm-ollama", "embeddings")
def test_the_embedding_model_is_offered_and_embeds(results: dict[str, Any]) -> None:
    assert any(EMBED_MODEL in line for line in value(results, "embedding_models"))
    assert value(results, "embed") > 0
