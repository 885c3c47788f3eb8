"""The simulator's embedding models and model identity, through the official ``ollama`` client and raw
HTTP: deterministic unit vectors at a simulated speed, Ollama's refusals, stable distinct digests."""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator

import httpx
import ollama
import pytest

from hydra.sim import NodeProfile, SimNode, preset
from hydra.sim.presets import EMBEDDING, model
from hydra.sim.testing import profile

pytestmark = pytest.mark.timeout(60)
NOMIC = "nomic-embed-text:latest"
MODELS = ("llama3.2:3b", NOMIC, "mxbai-embed-large:latest")


@pytest.fixture
def node(sim_node_factory: Callable[..., SimNode]) -> SimNode:
    return sim_node_factory(profile(models=MODELS))


@pytest.fixture
def client(node: SimNode) -> Iterator[ollama.Client]:
    with ollama.Client(host=node.url, timeout=10) as c:
        yield c


def _norm(vector: list[float]) -> float:
    return math.sqrt(sum(x * x for x in vector))


def test_embed_gives_deterministic_unit_vectors_of_the_models_length(client: ollama.Client,
                                                                      sim_node_factory: Callable[..., SimNode]) -> None:
    answer = client.embed(model="nomic-embed-text", input=["hello world", "goodbye"])
    assert answer.model == "nomic-embed-text" and len(answer.embeddings) == 2
    assert all(len(v) == 768 and abs(_norm(list(v)) - 1) < 1e-9 for v in answer.embeddings)
    assert answer.embeddings[0] != answer.embeddings[1]
    assert answer.prompt_eval_count == 3 + 2 and answer.total_duration and answer.load_duration  # ~1.3 a word
    other_node = sim_node_factory(profile(name="other", models=(NOMIC,)))
    with ollama.Client(host=other_node.url, timeout=10) as elsewhere:  # the same text, the same vector anywhere
        assert elsewhere.embed(model=NOMIC, input="hello world").embeddings[0] == answer.embeddings[0]
    mxbai = client.embed(model="mxbai-embed-large", input="hello world").embeddings[0]
    assert len(mxbai) == 1024  # another model, another space


def test_dimensions_truncate_and_empty_input(client: ollama.Client) -> None:
    full = list(client.embed(model=NOMIC, input="one two three").embeddings[0])
    cut = list(client.embed(model=NOMIC, input="one two three", dimensions=10).embeddings[0])
    assert len(cut) == 10 and abs(_norm(cut) - 1) < 1e-9
    scale = _norm(full[:10])
    assert cut == pytest.approx([x / scale for x in full[:10]])
    long_text = "word " * 1000  # mxbai-embed-large's context is 512 tokens
    assert client.embed(model="mxbai-embed-large", input=long_text).prompt_eval_count == 512
    with pytest.raises(ollama.ResponseError) as refused:
        client.embed(model="mxbai-embed-large", input=long_text, truncate=False)
    assert (refused.value.status_code, refused.value.error) == (400, "the input length exceeds the context length")
    assert client.embed(model=NOMIC, input=[]).embeddings == []


def test_the_legacy_route(client: ollama.Client) -> None:
    legacy = client.embeddings(model=NOMIC, prompt="hello world").embedding
    assert list(legacy) == list(client.embed(model=NOMIC, input="hello world").embeddings[0])
    assert list(client.embeddings(model=NOMIC, prompt="").embedding) == []


def test_ollamas_refusals(node: SimNode, client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as chat_model:
        client.embed(model="llama3.2:3b", input="hi")
    assert (chat_model.value.status_code, chat_model.value.error) == (400, "llama3.2:3b does not support embedding")
    with pytest.raises(ollama.ResponseError) as chat:
        client.chat(model="nomic-embed-text", messages=[{"role": "user", "content": "hi"}])
    assert (chat.value.status_code, chat.value.error) == (400, '"nomic-embed-text" does not support chat')
    with pytest.raises(ollama.ResponseError) as generate:
        client.generate(model=NOMIC, prompt="hi")
    assert (generate.value.status_code, generate.value.error) == (400, f'"{NOMIC}" does not support generate')
    with pytest.raises(ollama.ResponseError) as missing:
        client.embed(model="nope", input="hi")
    assert (missing.value.status_code, missing.value.error) == (404, "model 'nope' not found")
    bad = httpx.post(node.url + "/api/embed", json={"model": NOMIC, "input": [1, 2]}, timeout=5)
    assert (bad.status_code, bad.json()) == (400, {"error": "invalid input type"})


def test_embedding_takes_simulated_time(sim_node_factory: Callable[..., SimNode]) -> None:
    slow = NodeProfile(name="slow", gpu=True, vram_mb=8_192, models=[model(NOMIC, prefill_tps=1000.0)])
    node = sim_node_factory(slow, time_scale=1.0)
    with ollama.Client(host=node.url, timeout=10) as client:
        client.embed(model=NOMIC, input="warm")  # the load, out of the way
        started = time.monotonic()
        answer = client.embed(model=NOMIC, input=["alpha beta gamma delta"] * 100)  # 600 tokens: 0.6 s
        elapsed = time.monotonic() - started
    assert answer.prompt_eval_count == 600
    assert 0.55 < elapsed < 3.0


def test_embedding_faults_apply(node: SimNode, client: ollama.Client) -> None:
    node.set_fault("http_500", count=1)
    with pytest.raises(ollama.ResponseError) as failed:
        client.embed(model=NOMIC, input="hi")
    assert failed.value.status_code == 500
    assert client.embed(model=NOMIC, input="hi").embeddings


def test_show_and_tags_say_what_a_model_is(node: SimNode, client: ollama.Client) -> None:
    shown = client.show(NOMIC)
    assert shown.capabilities == ["embedding"]
    assert shown.modelinfo["nomic-bert.embedding_length"] == 768
    assert shown.modelinfo["nomic-bert.context_length"] == 2048
    assert client.show("llama3.2:3b").capabilities == ["completion"]
    listed = {m.model: m for m in client.list().models}
    assert listed[NOMIC].details.parameter_size == "137M" and listed[NOMIC].details.quantization_level == "F16"
    assert len({m.digest for m in listed.values()}) == len(listed)


def test_digests_and_modified_at_are_stable_and_distinct() -> None:
    first, second = preset("cluster8"), preset("cluster8")
    for a, b in zip(first, second, strict=True):
        for ma, mb in zip(a.models, b.models, strict=True):
            assert (ma.digest, ma.modified_at) == (mb.digest, mb.modified_at)  # the same across restarts
    by_name = {m.name: m.digest for node in first for m in node.models}
    assert len(set(by_name.values())) == len(by_name)  # one digest per model name
    assert model("qwen3:8b", revision="again").digest != model("qwen3:8b").digest


def test_presets_serve_embedding_models_on_several_nodes() -> None:
    for name in ("seed", "cluster8"):
        for embedder in EMBEDDING:
            holders = [n.name for n in preset(name) if n.model(embedder)]
            assert len(holders) >= 2, (name, embedder, holders)  # so an embedding can fail over
