"""Issue 12, items 3 to 6 through the gateway, over the seed's simulated nodes (real HTTP) with the
official ollama and openai clients: /api/generate's own fields reach the node's /api/generate and
its context comes back; images go only to a vision model (llava:7b, on "powerful") or are refused
with Ollama's 400; an empty prompt or no messages loads a model, with keep_alive 0 unloads it from
every node; a node's 4xx reaches the client with its status and words and costs the node nothing."""
from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import httpx
import ollama
import openai
import pytest

from hydra.gateway import Gateway
from hydra.sim import SimCluster, preset
from hydra.sim.presets import models as catalog_models

TEXT_MODEL = "llama3.2:3b"     # on both nodes, no vision
VISION_MODEL = "llava:7b"      # on "powerful" only; calls no tools
IMAGE = base64.b64encode(b"\x89PNG\r\n\x1a\n a small picture").decode()
TOOL = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}


@pytest.fixture
def seed(clusters: Callable[..., SimCluster]) -> SimCluster:
    """The seed's two nodes, "powerful" also holding llava:7b (a vision model that calls no tools);
    seed_service and seed_gateway run over this one here."""
    light, powerful = preset("seed")
    powerful.models += catalog_models(VISION_MODEL)
    return clusters([light, powerful])


def _last(node: Any) -> dict[str, Any]:
    received = node.stats()["received"]
    assert received, f"{node.name} received no generation"
    return received[-1]


def _generations(cluster: SimCluster) -> int:
    return sum(len(n.stats()["received"]) for n in cluster)


# --- item 3: generate is generate ---

def test_generate_fields_reach_the_nodes_generate_and_the_context_comes_back(seed: SimCluster,
                                                                              seed_gateway: Gateway) -> None:
    client = ollama.Client(host=seed_gateway.url, timeout=20)
    first = client.generate(model=TEXT_MODEL, prompt="def add(a, b):", suffix="\n    return total",
                            raw=True, template="{{ .Prompt }}", context=[5, 6, 7])
    node = next(n for n in seed if n.stats()["received"])
    sent = _last(node)
    assert sent.get("route", "chat") == "generate"
    assert sent.get("generate") == {"suffix": "\n    return total", "raw": True, "template": "{{ .Prompt }}",
                                "context": [5, 6, 7]}
    assert first.done and first.response
    assert first.context is not None and list(first.context[:3]) == [5, 6, 7] and len(first.context) > 3
    # The context goes back as it came: the next answer goes on from it, on /api/generate again.
    second = client.generate(model=TEXT_MODEL, prompt="and subtract?", context=first.context)
    assert list(second.context[: len(first.context)]) == list(first.context)
    assert second.response != first.response


def test_the_same_prompt_with_another_suffix_is_another_answer(seed_gateway: Gateway) -> None:
    client = ollama.Client(host=seed_gateway.url, timeout=20)
    a = client.generate(model=TEXT_MODEL, prompt="fill the middle", suffix=" end one", options={"num_predict": 8})
    b = client.generate(model=TEXT_MODEL, prompt="fill the middle", suffix=" end two", options={"num_predict": 8})
    assert a.response != b.response  # the suffix reached the model: dropped, both would be the same


def test_streamed_generate_ends_with_the_context(seed_gateway: Gateway) -> None:
    parts = list(ollama.Client(host=seed_gateway.url, timeout=20).generate(
        model=TEXT_MODEL, prompt="stream it", raw=True, stream=True, options={"num_predict": 4}))
    assert [p.done for p in parts].count(True) == 1 and parts[-1].done
    assert "".join(p.response for p in parts[:-1])
    assert parts[-1].context and len(parts[-1].context) > 4


# --- item 4: images go where they can be seen ---

def test_a_generate_image_reaches_the_vision_model(seed: SimCluster, seed_gateway: Gateway) -> None:
    reply = ollama.Client(host=seed_gateway.url, timeout=20).generate(model=VISION_MODEL, prompt="what is this?",
                                                                      images=[IMAGE])
    assert reply.done and reply.response
    sent = _last(seed["powerful"])
    assert (sent.get("route", "chat"), sent.get("images", 0)) == ("generate", 1)  # before: type-checked, then dropped


def test_an_image_for_a_text_model_is_ollamas_400_and_no_node_sees_it(seed: SimCluster,
                                                                     seed_gateway: Gateway) -> None:
    client = ollama.Client(host=seed_gateway.url, timeout=20)
    before = _generations(seed)
    with pytest.raises(ollama.ResponseError) as refused:
        client.generate(model=TEXT_MODEL, prompt="describe the picture", images=[IMAGE])
    assert refused.value.status_code == 400
    assert refused.value.error == f'"{TEXT_MODEL}" does not support images'
    with pytest.raises(ollama.ResponseError) as in_chat:
        client.chat(model=TEXT_MODEL, messages=[{"role": "user", "content": "what is it?", "images": [IMAGE]}])
    assert (in_chat.value.status_code, in_chat.value.error) == (400, f'"{TEXT_MODEL}" does not support images')
    assert _generations(seed) == before  # the worker asked /api/show; the images never went out
    for node in seed:
        assert node.stats()["received"] == [] or all(r.get("images", 0) == 0 for r in node.stats()["received"])


def test_an_openai_image_part_reaches_the_vision_model(seed: SimCluster, seed_gateway: Gateway) -> None:
    client = openai.OpenAI(base_url=seed_gateway.url + "/v1", api_key="unused", max_retries=0)
    content = [{"type": "text", "text": "what is in it?"},
               {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{IMAGE}"}}]
    reply = client.chat.completions.create(model=VISION_MODEL, messages=[{"role": "user", "content": content}])
    assert reply.choices[0].message.content
    sent = _last(seed["powerful"])
    assert (sent.get("route", "chat"), sent.get("images", 0)) == ("chat", 1)
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=TEXT_MODEL, messages=[{"role": "user", "content": content}])
    assert refused.value.body["message"] == f'"{TEXT_MODEL}" does not support images'


# --- item 5: load and unload ---

def test_an_empty_prompt_loads_and_keep_alive_0_unloads_from_every_node(seed: SimCluster, seed_gateway: Gateway,
                                                                          eventually: Callable[..., Any]) -> None:
    client = ollama.Client(host=seed_gateway.url, timeout=20)
    loaded = client.generate(model=TEXT_MODEL, prompt="")
    assert (loaded.done, loaded.done_reason, loaded.response) == (True, "load", "")
    assert sum(TEXT_MODEL in n.loaded_models() for n in seed) == 1
    for node in seed:  # loaded everywhere (say, by earlier work)
        assert httpx.post(node.url + "/api/generate", json={"model": TEXT_MODEL, "prompt": ""}).status_code == 200
    eventually(lambda: all(any(m.name == TEXT_MODEL for m in n.loaded) for n in seed_gateway.service.snapshot().nodes),
               what="both nodes seen with the model loaded")
    unloaded = client.generate(model=TEXT_MODEL, prompt="", keep_alive=0)
    assert (unloaded.done, unloaded.done_reason) == (True, "unload")
    assert not any(TEXT_MODEL in n.loaded_models() for n in seed)
    for node in seed:
        httpx.post(node.url + "/api/generate", json={"model": TEXT_MODEL, "prompt": ""})
    eventually(lambda: all(any(m.name == TEXT_MODEL for m in n.loaded) for n in seed_gateway.service.snapshot().nodes),
               what="both nodes seen with the model loaded again")
    raw = httpx.post(seed_gateway.url + "/api/generate", json={"model": TEXT_MODEL, "prompt": "", "keep_alive": "0s"})
    assert raw.json()["done_reason"] == "unload" and sorted(raw.json()["hydra"]["nodes"]) == ["light", "powerful"]
    assert not any(TEXT_MODEL in n.loaded_models() for n in seed)


def test_chat_with_no_messages_loads_and_unloads(seed: SimCluster, seed_gateway: Gateway) -> None:
    raw = httpx.post(seed_gateway.url + "/api/chat", json={"model": VISION_MODEL, "messages": []}, timeout=20)
    assert raw.status_code == 200
    body = raw.json()
    assert (body["done"], body["done_reason"], body["message"]) == (True, "load",
                                                                    {"role": "assistant", "content": ""})
    assert VISION_MODEL in seed["powerful"].loaded_models()
    reply = ollama.Client(host=seed_gateway.url, timeout=20).chat(model=VISION_MODEL, messages=[], keep_alive=0)
    assert reply.done_reason == "unload"


def test_loading_a_model_no_node_has_is_404(seed_gateway: Gateway) -> None:
    reply = httpx.post(seed_gateway.url + "/api/generate", json={"model": "nope:1b", "prompt": ""}, timeout=20)
    assert reply.status_code == 404 and "not found" in reply.json()["error"]


# --- item 6: a node's 4xx keeps its meaning ---

@pytest.mark.parametrize("stream", [False, True])
def test_a_nodes_400_reaches_the_client_as_400_and_costs_the_node_nothing(seed_gateway: Gateway,
                                                                          stream: bool) -> None:
    client = ollama.Client(host=seed_gateway.url, timeout=20)
    with pytest.raises(ollama.ResponseError) as refused:
        reply = client.chat(model=VISION_MODEL, messages=[{"role": "user", "content": "time?"}], tools=[TOOL],
                            stream=stream)
        list(reply) if stream else None  # type: ignore[call-overload]
    assert (refused.value.status_code, refused.value.error) == (400, f'"{VISION_MODEL}" does not support tools')
    powerful = seed_gateway.service.snapshot().node("powerful")
    assert powerful is not None and (powerful.circuit, powerful.failures, powerful.healthy) == ("closed", 0, True)


def test_the_openai_sdk_gets_400_once_not_503_three_times(seed: SimCluster, seed_gateway: Gateway) -> None:
    client = openai.OpenAI(base_url=seed_gateway.url + "/v1", api_key="unused")  # its default retries on
    before = seed["powerful"].stats()["requests"].get("/api/chat", 0)
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=VISION_MODEL, messages=[{"role": "user", "content": "time?"}],
                                       tools=[TOOL])
    assert refused.value.status_code == 400 and "does not support tools" in refused.value.body["message"]
    assert seed["powerful"].stats()["requests"].get("/api/chat", 0) == before + 1


def test_a_model_missing_on_one_node_goes_to_the_next_and_on_all_is_404(seed: SimCluster,
                                                                       seed_gateway: Gateway) -> None:
    client = ollama.Client(host=seed_gateway.url, timeout=20)
    seed["light"].set_fault("model_404", count=1)
    seed["powerful"].set_fault("model_404", count=1)
    with pytest.raises(ollama.ResponseError) as missing:
        client.chat(model=TEXT_MODEL, messages=[{"role": "user", "content": "hi"}])
    assert missing.value.status_code == 404
    assert missing.value.error == f'model "{TEXT_MODEL}" not found, try pulling it first'
    for name in ("light", "powerful"):
        assert seed[name].stats()["faults_applied"] == {"model_404": 1}  # both were tried
        snap = seed_gateway.service.snapshot().node(name)
        assert snap is not None and (snap.circuit, snap.failures) == ("closed", 0)
