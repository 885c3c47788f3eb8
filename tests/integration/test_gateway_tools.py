"""Tool calling through the gateway: the official ollama and openai clients get the model's calls in
their own shapes, send the tool's result back and get a text answer (simulated nodes, real HTTP)."""
from __future__ import annotations

import json
from typing import Any

import httpx
import ollama
import openai
import pytest
from toolspecs import ASK, CLOCK, WEATHER

from hydra.gateway import Gateway

MODEL = "llama3.2:3b"


@pytest.fixture
def gateway(seed_gateway: Gateway) -> Gateway:
    return seed_gateway


def _assert_weather_call(name: str, arguments: dict[str, Any]) -> None:
    assert name == "get_weather"
    assert set(arguments) == {"city", "days"}
    assert isinstance(arguments["city"], str) and arguments["days"] == 1


@pytest.mark.parametrize("stream", [False, True])
def test_ollama_client_gets_the_call_and_answers_after_the_result(gateway: Gateway, stream: bool) -> None:
    client = ollama.Client(host=gateway.url, timeout=20)
    if stream:
        parts = list(client.chat(model=MODEL, messages=ASK, tools=[WEATHER, CLOCK], stream=True))
        with_calls = [p for p in parts if p.message.tool_calls]
        assert len(with_calls) == 1 and not with_calls[0].done and with_calls[0].message.content == ""
        assert parts[-1].done and parts[-1].done_reason == "stop"
        calls = with_calls[0].message.tool_calls
    else:
        reply = client.chat(model=MODEL, messages=ASK, tools=[WEATHER, CLOCK])
        assert reply.done_reason == "stop" and reply.message.content == ""
        calls = reply.message.tool_calls
    assert calls is not None and len(calls) == 1
    _assert_weather_call(calls[0].function.name, dict(calls[0].function.arguments))

    follow_up = ASK + [{"role": "assistant", "content": "", "tool_calls": [c.model_dump() for c in calls]},
                       {"role": "tool", "content": "Sunny, 21 degrees", "tool_name": "get_weather"}]
    if stream:
        parts = list(client.chat(model=MODEL, messages=follow_up, tools=[WEATHER], stream=True))
        assert not any(p.message.tool_calls for p in parts)
        text = "".join(p.message.content or "" for p in parts)
    else:
        answer = client.chat(model=MODEL, messages=follow_up, tools=[WEATHER])
        assert not answer.message.tool_calls
        text = answer.message.content or ""
    assert text.startswith("[simulated llama3.2:3b")


def test_ollama_wire_shape_of_a_call(gateway: Gateway) -> None:
    body = httpx.post(gateway.url + "/api/chat", json={"model": MODEL, "messages": ASK, "tools": [WEATHER],
                                                       "stream": False}, timeout=20).json()
    assert body["message"]["role"] == "assistant" and body["message"]["content"] == ""
    (call,) = body["message"]["tool_calls"]
    assert list(call) == ["function"] and isinstance(call["function"]["arguments"], dict)
    _assert_weather_call(call["function"]["name"], call["function"]["arguments"])
    assert body["done"] is True and body["done_reason"] == "stop"


@pytest.mark.parametrize("stream", [False, True])
def test_openai_client_gets_the_call_and_answers_after_the_result(gateway: Gateway, stream: bool) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="x", timeout=20)
    if stream:
        chunks = list(client.chat.completions.create(model=MODEL, messages=ASK, tools=[WEATHER, CLOCK], stream=True))
        deltas = [d for c in chunks for d in (c.choices[0].delta.tool_calls or []) if c.choices]
        assert [d.index for d in deltas] == [0]
        assert chunks[-1].choices[0].finish_reason == "tool_calls"
        call_id, name, arguments = deltas[0].id, deltas[0].function.name, deltas[0].function.arguments
        assert deltas[0].type == "function"
    else:
        reply = client.chat.completions.create(model=MODEL, messages=ASK, tools=[WEATHER, CLOCK])
        choice = reply.choices[0]
        assert choice.finish_reason == "tool_calls" and not choice.message.content
        (call,) = choice.message.tool_calls
        assert call.type == "function"
        call_id, name, arguments = call.id, call.function.name, call.function.arguments
    assert call_id.startswith("call_") and isinstance(arguments, str)
    _assert_weather_call(name, json.loads(arguments))

    follow_up = ASK + [
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": call_id, "content": "Sunny, 21 degrees"}]
    if stream:
        chunks = list(client.chat.completions.create(model=MODEL, messages=follow_up, tools=[WEATHER], stream=True))
        assert not any(c.choices[0].delta.tool_calls for c in chunks if c.choices)
        assert chunks[-1].choices[0].finish_reason == "stop"
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        answer = client.chat.completions.create(model=MODEL, messages=follow_up, tools=[WEATHER])
        assert answer.choices[0].finish_reason == "stop" and not answer.choices[0].message.tool_calls
        text = answer.choices[0].message.content or ""
    assert text.startswith("[simulated llama3.2:3b")
    sent = gateway.service.tasks(1)[0].task.messages  # as the node got them: in Ollama's shape
    assert sent[-2]["tool_calls"] == [{"function": {"name": name, "arguments": json.loads(arguments)}}]
    assert sent[-1] == {"role": "tool", "content": "Sunny, 21 degrees", "tool_name": "get_weather"}


def test_openai_tool_choice_none_answers_with_text(gateway: Gateway) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="x", timeout=20)
    reply = client.chat.completions.create(model=MODEL, messages=ASK, tools=[WEATHER], tool_choice="none",
                                           max_tokens=5)
    assert reply.choices[0].message.tool_calls is None and reply.choices[0].message.content


@pytest.mark.parametrize("path, body, words", [
    ("/api/chat", {"tools": "get_weather"}, "tools must be"),
    ("/v1/chat/completions", {"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools must be"),
    ("/v1/chat/completions", {"messages": ASK + [{"role": "assistant", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{not json"}}]}]},
     "not JSON"),
])
def test_bad_tools_get_a_400_with_the_reason(gateway: Gateway, path: str, body: dict, words: str) -> None:
    request = {"model": MODEL, "messages": ASK, "stream": False, **body}
    reply = httpx.post(gateway.url + path, json=request, timeout=20)
    assert reply.status_code == 400
    assert words in reply.text
