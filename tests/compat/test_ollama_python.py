"""The Python ``ollama`` client (compat/python/ollama.txt), every route of issue 12, against ``hydra serve``."""
from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from tests.compat.harness import (
    CHAT_MODEL,
    EMBED_MODEL,
    REAL_MODEL,
    Gateway,
    client_python,
    failure,
    run_scenarios,
    value,
)

pytestmark = pytest.mark.compat


@pytest.fixture(scope="module")
def results(gateway: Gateway) -> dict[str, Any]:
    return run_scenarios([str(client_python("ollama")), "compat/scenarios/ollama_py.py"], gateway)


def _year(stamp: str) -> int:
    return datetime.fromisoformat(stamp).year


@pytest.mark.feature("ollama (Python)", "list models")
def test_list_carries_each_models_identity_once(results: dict[str, Any]) -> None:
    models = value(results, "list_models")
    names = [m["name"] for m in models]
    assert len(names) == len(set(names)), f"a model is listed more than once: {names}"
    assert {CHAT_MODEL, REAL_MODEL} <= set(names)
    for m in models:
        assert m["digest"], f"{m['name']} has no digest"
        assert _year(m["modified_at"]) > 2000, f"{m['name']} modified_at {m['modified_at']}"
        assert m["size"] > 0 and m["family"] and m["parameter_size"], m
    assert len({m["digest"] for m in models}) == len(models), "distinct models share a digest"


@pytest.mark.feature("ollama (Python)", "show / retrieve")
def test_show_gives_details_and_capabilities(results: dict[str, Any]) -> None:
    shown = value(results, "show")
    assert shown["family"] == "llama" and shown["parameter_size"]
    assert "completion" in shown["capabilities"] and shown["has_model_info"]


@pytest.mark.feature("ollama (Python)", "chat")
def test_chat_is_answered_by_the_model_asked_for(results: dict[str, Any], gateway: Gateway) -> None:
    reply = value(results, "chat")
    assert reply["content"].startswith(gateway.sim_answer_prefix(CHAT_MODEL))
    assert reply["done"] and reply["eval_count"] == 8 and reply["model"] == CHAT_MODEL


@pytest.mark.feature("ollama (Python)", "streaming")
def test_chat_streams(results: dict[str, Any]) -> None:
    streamed = value(results, "chat_stream")
    assert streamed["chunks"] > 2 and streamed["last_done"]


@pytest.mark.feature("ollama (Python)", "real model")
def test_chat_with_the_real_embedded_model(results: dict[str, Any]) -> None:
    reply = value(results, "chat_real_model")
    assert "Paris" in reply["content"] and reply["model"] == REAL_MODEL


@pytest.mark.feature("ollama (Python)", "tools")
def test_chat_with_tools_returns_tool_calls(results: dict[str, Any]) -> None:
    calls = value(results, "chat_tools")
    assert [c["name"] for c in calls] == ["get_weather"] and "city" in calls[0]["arguments"]


@pytest.mark.feature("ollama (Python)", "list models")
def test_ps_gives_digest_expiry_and_details(results: dict[str, Any], gateway: Gateway) -> None:
    loaded = {m["name"]: m for m in value(results, "ps_after_chat")}
    assert CHAT_MODEL in loaded
    for m in loaded.values():
        assert m["digest"] and m["family"] and m["expires_at"], m
    raw = gateway.get("/api/ps")["models"]  # the wire format: the client's parser forgives a space for 'T'
    for m in raw:
        assert m.get("expires_at") and "T" in m["expires_at"], f"{m['name']} expires_at is not RFC 3339: {m.get('expires_at')!r}"
        assert m["details"], f"{m['name']} has details {{}}"


@pytest.mark.feature("ollama (Python)", "generate / completions")
def test_generate_returns_context(results: dict[str, Any], gateway: Gateway) -> None:
    reply = value(results, "generate")
    assert reply["response"].startswith(gateway.sim_answer_prefix(CHAT_MODEL)) and reply["done"]
    assert reply["context"] and all(isinstance(t, int) for t in reply["context"])


@pytest.mark.feature("ollama (Python)", "generate / completions")
def test_generate_accepts_the_context_it_gave(results: dict[str, Any]) -> None:
    reply = value(results, "generate_with_context")
    assert reply["first_context"] > 0 and reply["second_context"] > reply["first_context"]


@pytest.mark.feature("ollama (Python)", "generate / completions")
@pytest.mark.parametrize("scenario", ["generate_raw", "generate_suffix"])
def test_generate_only_fields_are_answered(results: dict[str, Any], scenario: str) -> None:
    reply = value(results, scenario)
    assert reply["done"] and reply["response"]


@pytest.mark.feature("ollama (Python)", "errors keep their status")
def test_an_image_for_a_text_only_model_is_refused_like_ollama(results: dict[str, Any]) -> None:
    error = failure(results, "generate_image_to_text_model")
    assert error["status"] == 400 and "does not support images" in error["error"]


@pytest.mark.feature("ollama (Python)", "load / unload")
def test_empty_prompt_loads_the_model(results: dict[str, Any]) -> None:
    reply = value(results, "load_with_empty_prompt")
    assert reply["done"] and reply["done_reason"] == "load" and reply["response"] == ""


@pytest.mark.feature("ollama (Python)", "load / unload")
def test_empty_messages_load_the_model(results: dict[str, Any]) -> None:
    reply = value(results, "load_with_empty_messages")
    assert reply["done"] and reply["done_reason"] == "load"


@pytest.mark.feature("ollama (Python)", "load / unload")
def test_keep_alive_zero_unloads_the_model(results: dict[str, Any]) -> None:
    reply = value(results, "unload")
    assert reply["done"] and reply["done_reason"] == "unload"
    assert CHAT_MODEL not in reply["loaded_after"]


@pytest.mark.feature("ollama (Python)", "embeddings")
def test_embed_one_input(results: dict[str, Any]) -> None:
    reply = value(results, "embed_single")
    assert reply["count"] == 1 and reply["dims"] > 0 and reply["deterministic"]
    assert reply["model"] == EMBED_MODEL


@pytest.mark.feature("ollama (Python)", "embeddings")
def test_embed_a_batch(results: dict[str, Any]) -> None:
    reply = value(results, "embed_batch")
    assert reply["count"] == 3 and len(reply["dims"]) == 1 and reply["distinct"] == 3


@pytest.mark.feature("ollama (Python)", "embeddings")
def test_embed_with_dimensions(results: dict[str, Any]) -> None:
    assert value(results, "embed_dimensions")["dims"] == 64


@pytest.mark.feature("ollama (Python)", "embeddings")
def test_legacy_embeddings(results: dict[str, Any]) -> None:
    assert value(results, "embeddings_legacy")["dims"] > 0


@pytest.mark.feature("ollama (Python)", "model management")
def test_pull_streams_progress_and_the_model_appears(results: dict[str, Any]) -> None:
    pulled = value(results, "pull")
    assert pulled["statuses"][-1] == "success" and len(pulled["statuses"]) > 1
    assert pulled["listed_after"]


@pytest.mark.feature("ollama (Python)", "model management")
def test_copy_then_delete(results: dict[str, Any]) -> None:
    done = value(results, "copy_then_delete")
    assert done == {"copied": "success", "listed": True, "deleted": "success", "gone": True}


@pytest.mark.feature("ollama (Python)", "model management")
def test_create_from_an_existing_model(results: dict[str, Any]) -> None:
    assert value(results, "create_from_existing")["status"] == "success"


@pytest.mark.feature("ollama (Python)", "model management")
def test_create_blob(results: dict[str, Any]) -> None:
    assert value(results, "create_blob").startswith("sha256:")


@pytest.mark.feature("ollama (Python)", "errors keep their status")
def test_an_unknown_model_is_a_404_like_ollama(results: dict[str, Any]) -> None:
    error = failure(results, "chat_unknown_model")
    assert error["status"] == 404 and "not found" in error["error"]
