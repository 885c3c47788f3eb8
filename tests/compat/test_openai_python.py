"""The Python ``openai`` SDK (compat/python/openai.txt) against the gateway's /v1 routes."""
from __future__ import annotations

from typing import Any

import pytest

from tests.compat.harness import CHAT_MODEL, REAL_MODEL, Gateway, client_python, failure, run_scenarios, value

pytestmark = pytest.mark.compat


@pytest.fixture(scope="module")
def results(gateway: Gateway) -> dict[str, Any]:
    return run_scenarios([str(client_python("openai")), "compat/scenarios/openai_py.py"], gateway)


@pytest.mark.feature("openai (Python)", "list models")
def test_models_list_has_each_model_once(results: dict[str, Any]) -> None:
    ids = value(results, "models_list")
    assert len(ids) == len(set(ids)) and {CHAT_MODEL, REAL_MODEL} <= set(ids)


@pytest.mark.feature("openai (Python)", "show / retrieve")
def test_models_retrieve_one(results: dict[str, Any]) -> None:
    found = value(results, "models_retrieve")
    assert found["id"] == CHAT_MODEL and found["object"] == "model" and found["owned_by"]


@pytest.mark.feature("openai (Python)", "chat")
def test_chat(results: dict[str, Any], gateway: Gateway) -> None:
    reply = value(results, "chat")
    assert reply["content"].startswith(gateway.sim_answer_prefix(CHAT_MODEL))
    assert reply["finish_reason"] == "length" and reply["completion_tokens"] == 8 and reply["model"] == CHAT_MODEL


@pytest.mark.feature("openai (Python)", "streaming")
def test_chat_streams_with_usage(results: dict[str, Any]) -> None:
    streamed = value(results, "chat_stream")
    assert streamed["chunks"] > 2 and streamed["text"] and streamed["usage"]


@pytest.mark.feature("openai (Python)", "real model")
def test_chat_streams_from_the_real_embedded_model(results: dict[str, Any]) -> None:
    streamed = value(results, "chat_real_model_stream")
    assert streamed["chunks"] > 2 and "Paris" in streamed["text"]


@pytest.mark.feature("openai (Python)", "chat")
def test_stop_as_string_or_list_and_seed(results: dict[str, Any]) -> None:
    assert value(results, "chat_stop_and_seed") == ["length", "length"]


@pytest.mark.feature("openai (Python)", "chat")
def test_n_2_is_honoured_or_refused_never_silently_one(results: dict[str, Any]) -> None:
    outcome = results["chat_n_2"]
    if outcome["ok"]:
        assert outcome["value"]["choices"] == 2
    else:
        assert outcome["status"] == 400 and "n" in outcome["error"]


@pytest.mark.feature("openai (Python)", "chat")
def test_logprobs_come_back(results: dict[str, Any]) -> None:
    got = value(results, "chat_logprobs")
    assert got["tokens"] > 0 and got["top"] == 2


@pytest.mark.feature("openai (Python)", "tools")
def test_tools_give_tool_calls(results: dict[str, Any]) -> None:
    assert value(results, "chat_tools") == {"finish_reason": "tool_calls", "calls": ["get_weather"]}


@pytest.mark.feature("openai (Python)", "tools")
def test_a_named_tool_choice_is_honoured_or_refused(results: dict[str, Any]) -> None:
    outcome = results["chat_tool_choice_named"]
    if outcome["ok"]:
        assert outcome["value"] == ["get_weather"]
    else:
        assert outcome["status"] == 400 and "tool_choice" in outcome["error"], outcome


@pytest.mark.feature("openai (Python)", "errors keep their status")
def test_the_nodes_400_reaches_the_sdk_once_not_a_503_it_retries(results: dict[str, Any]) -> None:
    got = value(results, "chat_image_to_the_embedded_model")
    assert got["status"] == 400 and "does not support images" in got["message"]
    assert got["requests"] == ["POST /v1/chat/completions"], "the SDK retried: the gateway answered a retryable status"


@pytest.mark.feature("openai (Python)", "errors keep their status")
def test_an_image_part_for_a_text_only_model_is_refused(results: dict[str, Any]) -> None:
    error = failure(results, "chat_image_to_text_model")
    assert error["status"] == 400 and "does not support images" in error["error"]


@pytest.mark.feature("openai (Python)", "generate / completions")
def test_completions(results: dict[str, Any], gateway: Gateway) -> None:
    reply = value(results, "completion")
    assert reply["object"] == "text_completion" and reply["text"].startswith(gateway.sim_answer_prefix(CHAT_MODEL))
    assert reply["finish_reason"] == "length"


@pytest.mark.feature("openai (Python)", "generate / completions")
def test_completions_with_suffix(results: dict[str, Any]) -> None:
    assert value(results, "completion_suffix")["text"]


@pytest.mark.feature("openai (Python)", "generate / completions")
def test_completions_stream(results: dict[str, Any]) -> None:
    streamed = value(results, "completion_stream")
    assert streamed["chunks"] > 2 and streamed["text"]


@pytest.mark.feature("openai (Python)", "embeddings")
def test_embeddings_single_and_batch(results: dict[str, Any]) -> None:
    got = value(results, "embeddings")
    assert got["one"] == 1 and got["dims"] > 0 and got["batch"] == [0, 1] and got["usage"]


@pytest.mark.feature("openai (Python)", "embeddings")
def test_embeddings_dimensions(results: dict[str, Any]) -> None:
    assert value(results, "embeddings_dimensions") == 64


@pytest.mark.feature("openai (Python)", "errors keep their status")
def test_an_unknown_model_is_a_404_sent_once(results: dict[str, Any]) -> None:
    assert value(results, "unknown_model") == {"status": 404, "requests": 1}
