"""The embedded node's refusals reach the client as the node said them (issue 12, item 6): a 400 from
the node (a real SmolLM2 model: images, which it cannot see) used to become 503 "no node
could run this task" at the gateway, and the OpenAI SDKs then POSTed three times. Now: 400 with the
node's message, one request to the node, nothing charged. Tools, which Open WebUI sends with every
chat, are taken and answered in text, so its default chat works with the shipped model."""
from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ollama
import openai
import pytest

from hydra.gateway import Gateway
from hydra.node import DEFAULT_MODEL_NAME, NodeServer
from hydra.service import Hydra

pytestmark = pytest.mark.model

TOOL = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}
REFUSED_IMAGES = f'"{DEFAULT_MODEL_NAME}" does not support images'


@pytest.fixture(scope="module")
def node() -> Iterator[NodeServer]:
    server = NodeServer(port=0).start()
    yield server
    server.stop()


@pytest.fixture
def gateway(node: NodeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Gateway]:
    for name in list(os.environ):
        if name.startswith(("HYDRA_", "SOLLOL_")) or name == "OLLAMA_HOST":
            monkeypatch.delenv(name)
    env = {"HYDRA_DB": str(tmp_path / "h.db"), "SOLLOL_DISCOVER_LOCALHOST": "false", "HYDRA_GATEWAY_PORT": "0",
           "SOLLOL_NODES": f"embedded={node.url};slots=1", "HYDRA_EMBEDDED_NODE": "off"}
    hydra = Hydra.from_env(env, poll_interval_s=0.1).start()
    try:
        with Gateway(hydra, port=0) as gw:
            yield gw
    finally:
        hydra.close()


def _embedded(gateway: Gateway) -> Any:
    return gateway.service.snapshot().node("embedded")


def test_an_image_refused_by_the_embedded_node_is_a_400_once_over_both_apis(gateway: Gateway) -> None:
    image = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()
    with pytest.raises(ollama.ResponseError) as refused:
        ollama.Client(host=gateway.url, timeout=120).chat(
            model=DEFAULT_MODEL_NAME, messages=[{"role": "user", "content": "What is it?", "images": [image]}])
    assert (refused.value.status_code, refused.value.error) == (400, REFUSED_IMAGES)
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", timeout=120)  # default retries on
    content = [{"type": "text", "text": "What is it?"},
               {"type": "image_url", "image_url": {"url": "data:image/png;base64," + image}}]
    with pytest.raises(openai.BadRequestError) as sdk:
        client.chat.completions.create(model=DEFAULT_MODEL_NAME,
                                       messages=[{"role": "user", "content": content}])  # type: ignore[misc,list-item]
    assert sdk.value.body["message"] == REFUSED_IMAGES
    embedded = _embedded(gateway)
    assert (embedded.circuit, embedded.failures, embedded.healthy) == ("closed", 0, True)
    tasks = gateway.service.tasks(10)
    assert len(tasks) == 2 and all(t.result(timeout=5).attempts == 1 for t in tasks)  # one POST each, no retry


def test_tools_sent_to_the_embedded_model_are_answered_in_text(gateway: Gateway) -> None:
    # What Open WebUI does by default: its built-in tools with every chat.
    reply = ollama.Client(host=gateway.url, timeout=180).chat(
        model=DEFAULT_MODEL_NAME, messages=[{"role": "user", "content": "Say hello."}], tools=[TOOL],
        options={"num_predict": 8})
    assert reply.message.content and not reply.message.tool_calls
    assert reply.done_reason in ("stop", "length")


def test_an_image_for_the_embedded_model_is_ollamas_400(gateway: Gateway) -> None:
    image = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()
    with pytest.raises(ollama.ResponseError) as refused:
        ollama.Client(host=gateway.url, timeout=120).generate(model=DEFAULT_MODEL_NAME, prompt="What is it?",
                                                              images=[image])
    assert (refused.value.status_code, refused.value.error) == (400, f'"{DEFAULT_MODEL_NAME}" does not support images')
    assert _embedded(gateway).failures == 0


def test_the_embedded_model_answers_generate_with_its_context(gateway: Gateway) -> None:
    reply = ollama.Client(host=gateway.url, timeout=180).generate(
        model=DEFAULT_MODEL_NAME, prompt="The capital of France is", raw=True, options={"num_predict": 4})
    assert reply.done and reply.response
