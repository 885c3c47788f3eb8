"""A simulated node manages its models as Ollama does: pull with progress lines, delete, copy, create,
push and blobs, in Ollama's shapes and with its errors, driven by the official ollama client."""
from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import ollama
import pytest

from hydra.sim import SimCluster
from hydra.sim.management import PUSH_NAMESPACE, UNKNOWN_MANIFEST


def _names(client: ollama.Client) -> set[str]:
    return {m.model or "" for m in client.list().models}


def test_pull_streams_ollamas_progress_then_the_model_is_listed(seed: SimCluster) -> None:
    client = ollama.Client(host=seed.node("light").url)
    client.delete("qwen3:1.7b")
    assert "qwen3:1.7b" not in _names(client)
    lines = list(client.pull("qwen3:1.7b", stream=True))
    statuses = [p.status for p in lines]
    assert statuses[0] == "pulling manifest"
    assert statuses[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
    layer = [p for p in lines if p.digest == lines[1].digest]
    assert layer[0].status == f"pulling {layer[0].digest[7:19]}" and layer[0].digest.startswith("sha256:")
    done = [p.completed for p in layer]
    assert done == sorted(done) and done[0] == 0 and done[-1] == layer[0].total > 1_000_000
    assert "qwen3:1.7b" in _names(client)


def test_pull_of_a_name_the_library_lacks_fails_like_ollama(seed: SimCluster) -> None:
    client = ollama.Client(host=seed.node("light").url)
    with pytest.raises(ollama.ResponseError) as not_streamed:
        client.pull("no-such-model:1b")
    assert not_streamed.value.status_code == 500 and not_streamed.value.error == UNKNOWN_MANIFEST
    with pytest.raises(ollama.ResponseError, match="file does not exist"):
        list(client.pull("no-such-model:1b", stream=True))
    reply = httpx.post(f"{seed.node('light').url}/api/pull", json={})
    assert reply.status_code == 400 and reply.json() == {"error": "model is required"}  # refused before any line


def test_delete_and_copy_change_the_list_and_404_like_ollama(seed: SimCluster) -> None:
    client = ollama.Client(host=seed.node("light").url)
    assert client.copy("llama3.2:3b", "mine:v1").status == "success"
    assert {"llama3.2:3b", "mine:v1"} <= _names(client)
    assert client.delete("mine:v1").status == "success"
    assert "mine:v1" not in _names(client)
    with pytest.raises(ollama.ResponseError) as gone:
        client.delete("mine:v1")
    assert gone.value.status_code == 404 and gone.value.error == "model 'mine:v1' not found"
    with pytest.raises(ollama.ResponseError) as no_source:
        client.copy("absent:1", "x:1")
    assert no_source.value.status_code == 404
    reply = httpx.post(f"{seed.node('light').url}/api/copy", json={"source": "llama3.2:3b"})
    assert reply.status_code == 400 and reply.json()["error"] == "source and destination are required"


def test_create_from_a_model_and_from_an_uploaded_blob(seed: SimCluster, tmp_path: Path) -> None:
    url = seed.node("light").url
    client = ollama.Client(host=url)
    assert client.create("helper", from_="llama3.2:3b", system="You help.").status == "success"
    assert "helper:latest" in _names(client)
    weights = tmp_path / "w.gguf"
    weights.write_bytes(b"GGUF tiny")
    digest = client.create_blob(weights)
    assert digest == "sha256:" + hashlib.sha256(b"GGUF tiny").hexdigest()
    assert httpx.head(f"{url}/api/blobs/{digest}").status_code == 200
    assert httpx.head(f"{url}/api/blobs/sha256:{'0' * 64}").status_code == 404
    bad = httpx.post(f"{url}/api/blobs/sha256:{'0' * 64}", content=b"other bytes")
    assert bad.status_code == 400 and "digest mismatch" in bad.json()["error"]
    assert client.create("fromfile", files={"w.gguf": digest}).status == "success"
    with pytest.raises(ollama.ResponseError, match="neither 'from' or 'files'"):
        client.create("nothing")


def test_push_needs_a_namespace_as_ollama_com_does(seed: SimCluster) -> None:
    client = ollama.Client(host=seed.node("light").url)
    with pytest.raises(ollama.ResponseError) as refused:
        client.push("llama3.2:3b")
    assert refused.value.status_code == 401 and refused.value.error == PUSH_NAMESPACE
    client.copy("llama3.2:3b", "me/llama:3b")
    statuses = [p.status for p in client.push("me/llama:3b", stream=True)]
    assert statuses[0] == "retrieving manifest" and statuses[-2:] == ["pushing manifest", "success"]


def test_a_pulled_model_survives_a_restart_as_on_disk(seed: SimCluster) -> None:
    node = seed.node("light")
    client = ollama.Client(host=node.url)
    client.delete("qwen3:1.7b")
    client.pull("qwen3:1.7b")
    node.kill()
    node.restart()
    assert "qwen3:1.7b" in _names(ollama.Client(host=node.url))
