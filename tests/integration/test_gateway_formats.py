"""Structured output through the gateway: Ollama's format and OpenAI's response_format reach the node."""
from __future__ import annotations

import json

import httpx
import ollama
import openai
import pytest

from hydra.gateway import Gateway

SCHEMA = {"type": "object", "properties": {"colour": {"type": "string"}}, "required": ["colour"]}


@pytest.fixture
def gateway(seed_gateway: Gateway) -> Gateway:
    return seed_gateway


def test_ollama_format_json_and_schema(gateway: Gateway) -> None:
    client = ollama.Client(host=gateway.url, timeout=20)
    reply = client.chat(model="llama3.2:3b", messages=[{"role": "user", "content": "a colour"}], format="json",
                        options={"num_predict": 10})
    assert isinstance(json.loads(reply.message.content)["answer"], str)
    streamed = "".join(part.message.content for part in client.chat(
        model="llama3.2:3b", messages=[{"role": "user", "content": "a colour"}], format=SCHEMA,
        options={"num_predict": 10}, stream=True))
    assert list(json.loads(streamed)) == ["colour"]
    generated = client.generate(model="llama3.2:3b", prompt="a colour", format=SCHEMA, options={"num_predict": 8})
    assert list(json.loads(generated.response)) == ["colour"]


def test_openai_response_format(gateway: Gateway) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="x", timeout=20)
    as_object = client.chat.completions.create(model="llama3.2:3b", messages=[{"role": "user", "content": "a colour"}],
                                               max_tokens=10, response_format={"type": "json_object"})
    assert isinstance(json.loads(as_object.choices[0].message.content)["answer"], str)
    as_schema = client.chat.completions.create(
        model="llama3.2:3b", messages=[{"role": "user", "content": "a colour"}], max_tokens=10,
        response_format={"type": "json_schema", "json_schema": {"name": "colour", "schema": SCHEMA}})
    assert list(json.loads(as_schema.choices[0].message.content)) == ["colour"]


@pytest.mark.parametrize("path, body, words", [
    ("/api/chat", {"format": "xml"}, "format must be"),
    ("/api/chat", {"keep_alive": [1]}, "keep_alive must be"),
    ("/v1/chat/completions", {"response_format": {"type": "yaml"}}, "response_format.type"),
    ("/v1/chat/completions", {"response_format": {"type": "json_schema", "json_schema": {}}}, "json_schema.schema"),
])
def test_bad_formats_get_a_400_with_the_reason(gateway: Gateway, path: str, body: dict, words: str) -> None:
    request = {"model": "llama3.2:3b", "messages": [{"role": "user", "content": "hi"}], "stream": False, **body}
    reply = httpx.post(gateway.url + path, json=request, timeout=20)
    assert reply.status_code == 400
    assert words in reply.text
