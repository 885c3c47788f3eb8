"""Embeddings through Hydra over simulated nodes (real HTTP): the official ollama and openai clients, raw
HTTP for what they cannot send, failover when a node dies mid-request, history and metrics rows."""
from __future__ import annotations

import base64
import math
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import openai
import pytest

from hydra.gateway import Gateway
from hydra.service import Hydra
from hydra.sim import NodeProfile, SimCluster
from hydra.sim.presets import model as catalog_model
from hydra.sollol import TaskStatus
from tests.integration.service_env import running_hydra

TIMEOUT = 20.0
NOMIC, MXBAI = "nomic-embed-text", "mxbai-embed-large"


def _norm(vector: list[float]) -> float:
    return math.sqrt(sum(x * x for x in vector))


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / (_norm(a) * _norm(b))


@pytest.fixture
def ollama_client(seed_gateway: Gateway) -> Iterator[ollama.Client]:
    with ollama.Client(host=seed_gateway.url, timeout=TIMEOUT) as client:
        yield client


@pytest.fixture
def openai_client(seed_gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=seed_gateway.url + "/v1", api_key="unused", timeout=TIMEOUT, max_retries=0)


# --- the three routes ---

def test_ollama_embed_single_and_batch_give_deterministic_unit_vectors(ollama_client: ollama.Client) -> None:
    one = ollama_client.embed(model=NOMIC, input="the cat sat on the mat")
    batch = ollama_client.embed(model=NOMIC, input=["the cat sat on the mat", "a dog ran", "the cat sat"])
    assert one.model == NOMIC and len(one.embeddings) == 1 and len(one.embeddings[0]) == 768
    assert len(batch.embeddings) == 3 and all(len(v) == 768 for v in batch.embeddings)
    assert all(abs(_norm(list(v)) - 1.0) < 1e-9 for v in batch.embeddings)
    assert list(batch.embeddings[0]) == list(one.embeddings[0])  # same text, same vector, whichever node served
    cat, dog, cat_again = (list(v) for v in batch.embeddings)
    assert _cosine(cat, cat_again) > _cosine(cat, dog)  # texts sharing words are nearer
    assert batch.prompt_eval_count and batch.prompt_eval_count > one.prompt_eval_count
    assert len(ollama_client.embed(model=MXBAI, input="x").embeddings[0]) == 1024


def test_ollama_embed_dimensions_truncate_keep_alive_and_options(ollama_client: ollama.Client,
                                                                seed: SimCluster) -> None:
    full = list(ollama_client.embed(model=NOMIC, input="some words here").embeddings[0])
    cut = list(ollama_client.embed(model=NOMIC, input="some words here", dimensions=64, keep_alive="1m",
                                   options={"num_ctx": 2048}).embeddings[0])
    assert len(cut) == 64 and abs(_norm(cut) - 1.0) < 1e-9
    assert _cosine(full[:64], cut) > 0.999999  # the first dimensions, normalised again
    long_text = "word " * 3000  # past nomic-embed-text's 2048-token context
    assert len(ollama_client.embed(model=NOMIC, input=long_text).embeddings) == 1  # truncated by default
    with pytest.raises(ollama.ResponseError) as refused:
        ollama_client.embed(model=NOMIC, input=long_text, truncate=False)
    assert refused.value.status_code == 400 and "exceeds the context length" in refused.value.error
    unloaded = ollama_client.embed(model=MXBAI, input="x", keep_alive=0)
    assert unloaded.embeddings and not any(MXBAI in m for n in seed for m in n.loaded_models())


def test_legacy_embeddings_route(ollama_client: ollama.Client) -> None:
    legacy = ollama_client.embeddings(model=NOMIC, prompt="the cat sat on the mat")
    current = ollama_client.embed(model=NOMIC, input="the cat sat on the mat")
    assert list(legacy.embedding) == list(current.embeddings[0])
    assert list(ollama_client.embeddings(model=NOMIC, prompt="").embedding) == []  # loads the model only


def test_openai_embeddings_float_and_base64(openai_client: openai.OpenAI, ollama_client: ollama.Client) -> None:
    floats = openai_client.embeddings.create(model=NOMIC, input=["alpha beta", "gamma"], encoding_format="float")
    assert [d.index for d in floats.data] == [0, 1] and floats.model == NOMIC
    assert floats.usage.prompt_tokens == floats.usage.total_tokens > 0
    # The SDK asks for base64 when no format is given, and decodes it itself.
    default = openai_client.embeddings.create(model=NOMIC, input="alpha beta")
    assert default.data[0].embedding == pytest.approx(floats.data[0].embedding, abs=1e-6)
    ours = list(ollama_client.embed(model=NOMIC, input="alpha beta").embeddings[0])
    assert floats.data[0].embedding == ours
    short = openai_client.embeddings.create(model=NOMIC, input="alpha beta", dimensions=16, encoding_format="float")
    assert len(short.data[0].embedding) == 16


def test_openai_base64_is_little_endian_float32(seed_gateway: Gateway) -> None:
    body = {"model": NOMIC, "input": "alpha beta", "encoding_format": "base64"}
    raw = httpx.post(seed_gateway.url + "/v1/embeddings", json=body, timeout=TIMEOUT).json()["data"][0]["embedding"]
    decoded = struct.unpack("<768f", base64.b64decode(raw))
    assert abs(_norm(list(decoded)) - 1.0) < 1e-5


# --- refusals ---

def test_openai_token_arrays_and_bad_fields_are_refused_clearly(openai_client: openai.OpenAI,
                                                                seed_gateway: Gateway) -> None:
    for tokens in ([1, 2, 3], [[1, 2], [3]]):
        with pytest.raises(openai.BadRequestError) as refused:
            openai_client.embeddings.create(model=NOMIC, input=tokens)  # type: ignore[arg-type]
        assert "token arrays is not supported" in refused.value.message
    url = seed_gateway.url + "/v1/embeddings"
    cases = [({"model": NOMIC}, "input"), ({"model": NOMIC, "input": [""]}, "input"),
             ({"model": NOMIC, "input": "x", "encoding_format": "int8"}, "encoding_format"),
             ({"model": NOMIC, "input": "x", "dimensions": 0}, "dimensions"),
             ({"model": NOMIC, "input": ["x", 3]}, "input[1]"), ({"input": "x"}, "model")]
    for body, param in cases:
        answer = httpx.post(url, json=body, timeout=TIMEOUT)
        assert answer.status_code == 400, body
        assert answer.json()["error"]["param"] == param and answer.json()["error"]["message"], body


def test_ollama_bad_fields_and_unknown_model(seed_gateway: Gateway) -> None:
    url = seed_gateway.url + "/api/embed"
    for body, words in [({"model": NOMIC, "input": 5}, "input must be a string or a list of strings"),
                        ({"model": NOMIC, "input": "x", "truncate": "yes"}, "truncate must be true or false"),
                        ({"model": NOMIC, "input": "x", "keep_alive": "soon"}, "keep_alive"),
                        ({"model": NOMIC, "input": "x", "options": {"num_ctx": "big"}}, "options.num_ctx")]:
        answer = httpx.post(url, json=body, timeout=TIMEOUT)
        assert answer.status_code == 400 and words in answer.json()["error"], body
    missing = httpx.post(url, json={"model": "no-such-model", "input": "x"}, timeout=TIMEOUT)
    assert missing.status_code == 404 and "not found" in missing.json()["error"]


def test_a_chat_model_cannot_embed_and_an_embedding_model_cannot_chat(ollama_client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as embed_refused:
        ollama_client.embed(model="llama3.2:3b", input="hello")
    assert embed_refused.value.status_code == 400
    assert "llama3.2:3b does not support embedding" in embed_refused.value.error
    with pytest.raises(ollama.ResponseError) as chat_refused:
        ollama_client.chat(model=NOMIC, messages=[{"role": "user", "content": "hello"}])
    assert chat_refused.value.status_code == 400
    assert '"nomic-embed-text:latest" does not support chat' in chat_refused.value.error
    with pytest.raises(ollama.ResponseError) as generate_refused:
        ollama_client.generate(model=NOMIC, prompt="hello")
    # (the gateway may answer generate through the node's chat: either way the node's words come back)
    assert generate_refused.value.status_code == 400
    assert '"nomic-embed-text:latest" does not support' in generate_refused.value.error


# --- routing, history, metrics ---

def test_embeddings_are_recorded_in_history_and_metrics_as_their_own_task_type(
        seed_service: Hydra, seed_gateway: Gateway, ollama_client: ollama.Client,
        eventually: Callable[..., Any]) -> None:
    answer = httpx.post(seed_gateway.url + "/api/embed", json={"model": NOMIC, "input": ["one text", "two"]},
                        timeout=TIMEOUT)
    assert answer.status_code == 200 and answer.headers["x-hydra-node"] in ("light", "powerful")
    task_id = answer.headers["x-hydra-task-id"]
    row = eventually(lambda: (r := seed_service.history.get_task(task_id)) and r["status"] == "done" and r,
                     what="the embedding's finished row")
    assert row["task_type"] == "embedding" and row["model"] == "nomic-embed-text:latest"
    assert row["prompt"] == "one text\ntwo" and row["options"]["input"] == ["one text", "two"]
    assert row["node"] == answer.headers["x-hydra-node"]
    assert seed_service.snapshot().by_task_type.get("embedding", 0) >= 1
    metrics = httpx.get(seed_gateway.url + "/metrics", timeout=TIMEOUT).text
    assert 'api="ollama_embed"' in metrics


def test_resubmitting_an_embedding_from_history_embeds_again(seed_service: Hydra,
                                                            eventually: Callable[..., Any]) -> None:
    first = seed_service.embed(["resubmit me"], model=NOMIC).result(timeout=TIMEOUT)
    eventually(lambda: (r := seed_service.history.get_task(first.task_id)) and r["status"] == "done",
               what="its finished row")
    again = seed_service.resubmit(first.task_id).result(timeout=TIMEOUT)
    assert again.status is TaskStatus.DONE and again.embeddings == first.embeddings


def _slow_embedder(name: str) -> NodeProfile:
    """A GPU node whose nomic-embed-text reads 100 tokens a second: a batch takes seconds, long enough to
    kill the node while it works."""
    return NodeProfile(name=name, gpu=True, vram_mb=8_192, max_model_b=9, slots=2,
                       models=[catalog_model("nomic-embed-text:latest", prefill_tps=100.0)])


def test_an_embedding_fails_over_when_its_node_dies(clusters: Callable[..., SimCluster], tmp_path: Path,
                                                    eventually: Callable[..., Any]) -> None:
    cluster = clusters([_slow_embedder("left"), _slow_embedder("right")], time_scale=1.0)
    with running_hydra(cluster, tmp_path, eventually, no_route_wait_s=1.0) as service:
        texts = ["alpha beta gamma delta epsilon"] * 30  # ~200 tokens: ~2 s on either node
        handle = service.embed(texts, model=NOMIC)
        first = eventually(lambda: handle.view().node, what="the embedding running on a node")
        assert handle.view().prompt == "\n".join(texts)  # what the pages show of it
        cluster.node(first).kill()
        result = handle.result(timeout=TIMEOUT)
        assert result.status is TaskStatus.DONE, result.error
        other = "right" if first == "left" else "left"
        assert result.node == other and result.nodes == (other,) and result.failovers == 1
        assert len(result.embeddings) == 30 and all(len(v) == 768 for v in result.embeddings)
        row = eventually(lambda: (r := service.history.get_task(result.task_id)) and r["status"] == "done" and r,
                         what="its finished row")
        assert row["node"] == other and row["failovers"] == 1 and row["task_type"] == "embedding"


def test_embeddings_go_to_the_less_loaded_node(clusters: Callable[..., SimCluster], tmp_path: Path,
                                               eventually: Callable[..., Any]) -> None:
    cluster = clusters([_slow_embedder("left"), _slow_embedder("right")], time_scale=0.2)
    with running_hydra(cluster, tmp_path, eventually, no_route_wait_s=1.0) as service:
        texts = ["alpha beta gamma delta epsilon"] * 10
        handles = [service.embed(texts, model=NOMIC) for _ in range(4)]
        results = [h.result(timeout=TIMEOUT) for h in handles]
        assert all(r.status is TaskStatus.DONE for r in results)
        assert {r.node for r in results} == {"left", "right"}  # spread over both, not queued on one
