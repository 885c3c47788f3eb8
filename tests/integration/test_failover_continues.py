"""Issue 13 item 9: a node that fails mid-answer is followed by another that continues the answer.

The simulator continues a trailing assistant message as Ollama does: the tokens of its
deterministic answer after those the message holds (hydra/sim/request.py). Its answer starts with a
marker naming the node, "[simulated <model> on <node>] ", then prose that depends on the model and
the prompt only; so a continued answer is the first node's marker and the very prose that node
would have written, and any repeat or restart shows.
"""
from __future__ import annotations

import json
from typing import Any

import httpx
import ollama
import openai
import pytest

from hydra.sim import textgen
from hydra.sollol import FailureKind, Task, TaskStatus

PROMPT = "Tell me about queues"
MODEL = "llama3.2:3b"
TIMEOUT = 20.0
ASYNC = {"X-Hydra-Mode": "async"}  # async mode puts the CPU node ("light") first
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def expected(model: str, first: str, second: str, sent: int, total: int) -> str:
    """``sent`` tokens of ``first``'s answer, then ``second``'s tokens after them, ``total`` in all."""
    key = f"user: {PROMPT}"
    head = [t for _, t in zip(range(sent), textgen.content_tokens(model, first, key), strict=False)]
    whole = [t for _, t in zip(range(total), textgen.content_tokens(model, second, key), strict=False)]
    return "".join(head + whole[sent:])


def last_received(node: Any) -> dict[str, Any]:
    return node.stats()["received"][-1]


@pytest.mark.parametrize("kind", ["drop_midstream", "error_midstream", "malformed_json"])
def test_a_failure_mid_answer_is_continued_on_another_node(seed, make_router, kind):
    router = make_router(seed)
    seed["light"].set_fault(kind, count=1, after_chunks=4)
    handle = router.submit(Task(prompt=PROMPT, model=MODEL, max_tokens=20, mode="async"))
    chunks = list(handle.stream(timeout=10))
    result = handle.result(timeout=10)
    assert (result.status, result.node, result.attempts, result.failovers) == (TaskStatus.DONE, "powerful", 2, 1)
    assert [c.node for c in chunks] == ["light"] * 4 + ["powerful"] * 16
    assert "".join(c.text for c in chunks) == result.text == expected(MODEL, "light", "powerful", 4, 20)
    assert result.nodes == ("light", "powerful") and result.eval_count == 20
    assert "light failed mid-answer" in result.notice and "[hydra" not in result.text
    assert handle.view().notice == result.notice and handle.view().nodes == ("light", "powerful")
    assert last_received(seed["powerful"]) == {"num_predict": 16, "continued": 4, "think": False}


def test_a_failure_while_thinking_passes_over_the_thinking_already_streamed(seed, make_router):
    router = make_router(seed)
    seed["powerful"].set_fault("error_midstream", count=1, after_chunks=5)  # thinking starts on the GPU
    handle = router.submit(Task(prompt=PROMPT, model="qwen3:8b", think=True, mode="async"))
    chunks = list(handle.stream(timeout=10))
    result = handle.result(timeout=10)
    assert result.status is TaskStatus.DONE and result.nodes == ("powerful", "light"), result
    assert [c.node for c in chunks[:5]] == ["powerful"] * 5 and chunks[5].node == "light"
    thinking = [c.thinking for c in chunks if c.thinking]
    # The thinking (the model's and the prompt's, on any node) streams once, without a repeat.
    assert thinking == [t for _, t in zip(range(len(thinking)), textgen.thinking_tokens("qwen3:8b", f"user: {PROMPT}"),
                                          strict=False)]
    assert "".join(thinking) == result.thinking and result.text


def test_a_failure_after_a_tool_call_ends_the_task_cleanly(seed, make_router):
    router = make_router(seed)
    seed["light"].set_fault("error_midstream", count=1, after_chunks=1)
    handle = router.submit(Task(messages=[{"role": "user", "content": PROMPT}], model=MODEL, tools=[WEATHER],
                                mode="async"))
    result = handle.result(timeout=10)
    assert result.status is TaskStatus.FAILED and result.failure is FailureKind.NODE_FAILED
    assert "tool calls cannot be continued" in (result.error or "")
    assert len(result.tool_calls) == 1 and result.attempts == 1  # never half a call followed by another


def test_a_json_mode_answer_is_not_continued(seed, make_router):
    router = make_router(seed)
    seed["light"].set_fault("error_midstream", count=1, after_chunks=3)
    result = router.submit(Task(prompt=PROMPT, model=MODEL, max_tokens=12, format="json", mode="async")
                           ).result(timeout=10)
    assert result.status is TaskStatus.FAILED and result.failure is FailureKind.NODE_FAILED
    assert "JSON-mode answer cannot be continued" in (result.error or "")


# --- through the gateway, with the official clients ---

def _messages() -> list[dict[str, str]]:
    return [{"role": "user", "content": PROMPT}]


@pytest.mark.parametrize("stream", [True, False])
def test_the_ollama_client_gets_one_answer_and_the_done_object_names_both_nodes(seed, seed_gateway, stream):
    seed["light"].set_fault("error_midstream", count=1, after_chunks=4)
    client = ollama.Client(host=seed_gateway.url, timeout=TIMEOUT, headers=ASYNC)
    reply = client.chat(model=MODEL, messages=_messages(), options={"num_predict": 12}, stream=stream)
    parts = list(reply) if stream else [reply]
    text = "".join(p.message.content or "" for p in parts)
    assert text == expected(MODEL, "light", "powerful", 4, 12) and "[hydra" not in text
    assert parts[-1].done and parts[-1].eval_count == 12
    assert last_received(seed["powerful"])["num_predict"] == 8


def test_the_ollama_done_object_carries_the_nodes_and_the_notice(seed, seed_gateway):
    seed["light"].set_fault("error_midstream", count=1, after_chunks=4)
    body = {"model": MODEL, "messages": _messages(), "options": {"num_predict": 12}}
    with httpx.stream("POST", seed_gateway.url + "/api/chat", json=body, headers=ASYNC, timeout=TIMEOUT) as reply:
        assert reply.headers["x-hydra-node"] == "light"  # sent before the failover could happen
        lines = [json.loads(line) for line in reply.iter_lines() if line]
    assert lines[-1]["done"] and lines[-1]["hydra"]["nodes"] == ["light", "powerful"]
    assert "light failed mid-answer" in lines[-1]["hydra"]["notice"]
    assert all("hydra" not in line["message"]["content"] for line in lines)


def test_the_openai_client_gets_one_answer_and_the_final_chunk_names_both_nodes(seed, seed_gateway):
    seed["light"].set_fault("error_midstream", count=1, after_chunks=4)
    client = openai.OpenAI(base_url=seed_gateway.url + "/v1", api_key="x", timeout=TIMEOUT, default_headers=ASYNC)
    chunks = list(client.chat.completions.create(model=MODEL, messages=_messages(), max_tokens=12,  # type: ignore[arg-type]
                                                 stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected(MODEL, "light", "powerful", 4, 12)
    assert chunks[-1].model_extra is not None and chunks[-1].model_extra["hydra"]["nodes"] == ["light", "powerful"]
    seed["light"].set_fault("error_midstream", count=1, after_chunks=4)
    whole = client.chat.completions.create(model=MODEL, messages=_messages(), max_tokens=12)  # type: ignore[arg-type]
    assert whole.choices[0].message.content == expected(MODEL, "light", "powerful", 4, 12)
    assert whole.model_extra is not None and whole.model_extra["hydra"]["nodes"] == ["light", "powerful"]


def test_a_tool_call_cut_mid_stream_ends_with_an_error_in_each_api(seed, seed_gateway):
    seed["light"].set_fault("error_midstream", count=1, after_chunks=1)
    client = ollama.Client(host=seed_gateway.url, timeout=TIMEOUT, headers=ASYNC)
    parts = []
    with pytest.raises(ollama.ResponseError, match="tool calls cannot be continued"):
        parts.extend(client.chat(model=MODEL, messages=_messages(), tools=[WEATHER], stream=True))  # kept up to the error
    assert sum(len(p.message.tool_calls or []) for p in parts) == 1
    seed["light"].set_fault("error_midstream", count=1, after_chunks=1)
    oai = openai.OpenAI(base_url=seed_gateway.url + "/v1", api_key="x", timeout=TIMEOUT, default_headers=ASYNC)
    with pytest.raises(openai.APIError, match="tool calls cannot be continued"):
        list(oai.chat.completions.create(model=MODEL, messages=_messages(), tools=[WEATHER],  # type: ignore[arg-type, list-item]
                                         stream=True))
