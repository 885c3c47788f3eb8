"""The OpenAI Batch API on the gateway, driven by the official ``openai`` client, and the uploads it refuses."""
from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from hydra.gateway import Gateway
from hydra.service import Hydra
from hydra.sim import SimCluster
from tests.integration.service_env import hydra_env

MODEL = "llama3.2:3b"
TIMEOUT = 60.0


@pytest.fixture
def hydra(seed: SimCluster, tmp_path: Path, eventually: Callable[..., Any]) -> Iterator[Hydra]:
    h = Hydra.from_env(hydra_env(seed, tmp_path)).start()
    eventually(lambda: h.has_model(MODEL), 10, "the nodes' models")
    try:
        yield h
    finally:
        h.close()


@pytest.fixture
def gateway(hydra: Hydra) -> Iterator[Gateway]:
    with Gateway(hydra, port=0) as gw:
        yield gw


@pytest.fixture
def client(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0, timeout=TIMEOUT)


def request_line(custom_id: str, content: str, **body: Any) -> str:
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
                       "body": {"model": MODEL, "messages": [{"role": "user", "content": content}], "max_tokens": 10,
                                **body}}) + "\n"


def test_the_openai_clients_batch_flow(client: openai.OpenAI, hydra: Hydra, eventually: Callable[..., Any]):
    lines = "".join(request_line(f"req-{i}", f"Say {i}") for i in range(15))
    lines += request_line("bad-model", "hello", model="no-such-model:1b")
    uploaded = client.files.create(file=("requests.jsonl", io.BytesIO(lines.encode())), purpose="batch")
    assert uploaded.id.startswith("file-") and uploaded.bytes == len(lines.encode()) and uploaded.purpose == "batch"
    assert client.files.content(uploaded.id).text == lines

    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                  completion_window="24h", metadata={"job": "nightly"})
    assert batch.status == "in_progress" and batch.request_counts.total == 16
    assert batch.metadata == {"job": "nightly"}

    done = eventually(lambda: (b := client.batches.retrieve(batch.id)).status == "completed" and b, TIMEOUT,
                      "the batch to complete")
    assert done.request_counts.completed == 15 and done.request_counts.failed == 1
    assert done.output_file_id and done.error_file_id

    output = [json.loads(line) for line in client.files.content(done.output_file_id).text.splitlines()]
    assert sorted(o["custom_id"] for o in output) == sorted(f"req-{i}" for i in range(15))
    first = output[0]
    assert first["error"] is None and first["response"]["status_code"] == 200
    completion = first["response"]["body"]
    assert completion["object"] == "chat.completion" and completion["model"] == MODEL
    assert completion["choices"][0]["message"]["content"]
    assert completion["usage"]["completion_tokens"] > 0
    # The answer is the one history recorded for that request's task.
    task = hydra.history.get_task(first["response"]["request_id"])
    assert task is not None and task["text"] == completion["choices"][0]["message"]["content"]
    assert task["priority"] == 2

    errors = [json.loads(line) for line in client.files.content(done.error_file_id).text.splitlines()]
    assert [e["custom_id"] for e in errors] == ["bad-model"]
    assert errors[0]["response"]["status_code"] >= 400 and "no-such-model" in json.dumps(errors[0])

    listed = client.batches.list(limit=10)
    assert [b.id for b in listed.data] == [batch.id]


def test_cancel_through_the_client(client: openai.OpenAI, eventually: Callable[..., Any]):
    lines = "".join(request_line(f"r{i}", f"Write a long story {i}", max_tokens=300) for i in range(40))
    uploaded = client.files.create(file=("long.jsonl", io.BytesIO(lines.encode())), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    cancelled = client.batches.cancel(batch.id)
    assert cancelled.status in ("cancelling", "cancelled")
    final = eventually(lambda: (b := client.batches.retrieve(batch.id)).status == "cancelled" and b, TIMEOUT,
                       "the batch to be cancelled")
    assert final.request_counts.completed + final.request_counts.failed == 40
    assert final.request_counts.failed > 0 and final.error_file_id
    errors = client.files.content(final.error_file_id).text.splitlines()
    assert any(json.loads(e)["error"]["code"] == "batch_cancelled" for e in errors)


@pytest.mark.parametrize("content, message", [
    (b"\xff\xfe not utf-8", "not UTF-8"),
    (b"", "no requests"),
    (b'{"custom_id": "a"', "line 1 is not JSON"),
    (b'[1]\n', "line 1 must be a JSON object"),
    (request_line("a", "x").encode() + request_line("a", "y").encode(), "custom_id 'a' is used twice"),
    (json.dumps({"custom_id": "a", "method": "POST", "url": "/v1/embeddings", "body": {}}).encode(), "url must be"),
    (json.dumps({"custom_id": "a", "method": "POST", "url": "/v1/chat/completions",
                 "body": {"messages": []}}).encode(), "line 1: messages"),
    (request_line("a", "x", temperature="hot").encode(), "line 1: temperature"),
], ids=["encoding", "empty", "bad-json", "not-object", "duplicate-id", "endpoint", "empty-messages", "bad-field"])
def test_bad_files_are_refused_and_nothing_is_kept(client: openai.OpenAI, hydra: Hydra, content: bytes, message: str):
    with pytest.raises(openai.BadRequestError, match=message):
        client.files.create(file=("bad.jsonl", io.BytesIO(content)), purpose="batch")
    with hydra.batches.store._read() as conn:
        assert conn.execute("SELECT COUNT(*) FROM batch_files").fetchone()[0] == 0


def test_a_100_mb_upload_is_refused_with_413(gateway: Gateway, hydra: Hydra):
    big = b"x" * (100 * 2**20)
    response = httpx.post(f"{gateway.url}/v1/files", data={"purpose": "batch"}, files={"file": ("big.jsonl", big)},
                          timeout=TIMEOUT)
    assert response.status_code == 413 and "over 20 MB" in response.json()["error"]["message"]
    with hydra.batches.store._read() as conn:
        assert conn.execute("SELECT COUNT(*) FROM batch_files").fetchone()[0] == 0


def test_batch_create_refuses_what_it_cannot_run(client: openai.OpenAI, hydra: Hydra):
    uploaded = client.files.create(file=("r.jsonl", io.BytesIO(request_line("a", "x").encode())), purpose="batch")
    with pytest.raises(openai.BadRequestError, match="endpoint must be"):
        client.batches.create(input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h")
    with pytest.raises(openai.NotFoundError, match="no file"):
        client.batches.create(input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h")
    with pytest.raises(openai.BadRequestError, match="purpose"):
        client.files.create(file=("r.jsonl", io.BytesIO(b"{}")), purpose="fine-tune")
    assert hydra.batches.batches() == []
