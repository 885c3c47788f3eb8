"""The gateway over simulated nodes, driven by the official ollama and openai clients and raw HTTP."""
from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import ollama
import openai
import pytest

from hydra.gateway import Gateway
from hydra.service import Hydra
from hydra.sim import SimCluster
from hydra.sollol import TaskStatus
from tests.integration.service_env import hydra_env, running_hydra

TIMEOUT = 20.0




@pytest.fixture
def hydra(seed: SimCluster, tmp_path: Path, eventually: Callable[..., Any]) -> Iterator[Hydra]:
    with running_hydra(seed, tmp_path, eventually, {"SOLLOL_MAX_CONCURRENT_REQUESTS": "8"},
                       no_route_wait_s=1.0) as service:
        yield service


@pytest.fixture
def gateway(hydra: Hydra) -> Iterator[Gateway]:
    with Gateway(hydra, port=0) as gw:
        yield gw


def chat_body(**extra: Any) -> dict[str, Any]:
    return {"model": "llama3.2:3b", "messages": [{"role": "user", "content": "hello there"}],
            "options": {"num_predict": 8}, **extra}


# --- Ollama API ---

def test_ollama_client_chat_and_generate_not_streaming(gateway: Gateway) -> None:
    client = ollama.Client(host=gateway.url, timeout=TIMEOUT)
    reply = client.chat(model="llama3.2:3b", messages=[{"role": "user", "content": "hi"}],
                        options={"num_predict": 8}, stream=False)
    assert reply.done and reply.message.role == "assistant" and reply.message.content
    assert reply.model == "llama3.2:3b" and reply.eval_count == 8 and reply.done_reason == "length"
    generated = client.generate(model="auto", prompt="Write a Python function that adds two numbers",
                                options={"num_predict": 6}, stream=False)
    assert generated.done and generated.response and generated.eval_count == 6
    assert generated.model != "auto"  # tier selection picked a real model


def test_ollama_client_streams_chunks_then_a_final_done(gateway: Gateway) -> None:
    client = ollama.Client(host=gateway.url, timeout=TIMEOUT)
    parts = list(client.chat(model="llama3.2:3b", messages=[{"role": "user", "content": "tell me"}],
                             options={"num_predict": 12}, stream=True))
    assert len(parts) >= 3
    assert all(not p.done for p in parts[:-1]) and parts[-1].done
    final = parts[-1]
    assert final.eval_count == 12 and final.done_reason == "length" and final.eval_duration and final.total_duration
    assert "".join(p.message.content or "" for p in parts).startswith("[simulated llama3.2:3b")


def test_ollama_async_client_streams(gateway: Gateway) -> None:
    async def run() -> list[Any]:
        client = ollama.AsyncClient(host=gateway.url, timeout=TIMEOUT)
        stream = await client.generate(model="llama3.2:3b", prompt="hi", options={"num_predict": 5}, stream=True)
        return [part async for part in stream]

    parts = asyncio.run(run())
    assert parts[-1].done and parts[-1].eval_count == 5
    assert "".join(p.response for p in parts)


def test_ollama_client_thinking_with_a_qwen3_model(gateway: Gateway) -> None:
    client = ollama.Client(host=gateway.url, timeout=TIMEOUT)
    reply = client.chat(model="qwen3:8b", messages=[{"role": "user", "content": "why is the sky blue?"}],
                        think=True, options={"num_predict": 40}, stream=False)
    assert reply.message.thinking and reply.message.content
    parts = list(client.chat(model="qwen3:8b", messages=[{"role": "user", "content": "why?"}], think=True,
                             options={"num_predict": 40}, stream=True))
    assert any(p.message.thinking for p in parts) and parts[-1].done


def test_ollama_listing_routes(gateway: Gateway, hydra: Hydra) -> None:
    client = ollama.Client(host=gateway.url, timeout=TIMEOUT)
    names = {m.model for m in client.list().models}
    assert names == set(hydra.models()) and "llama3.1:70b" in names  # powerful's only model is in the union
    client.chat(model="mistral:latest", messages=[{"role": "user", "content": "x"}], options={"num_predict": 2})
    assert "mistral:latest" in {m.model for m in client.ps().models}
    shown = client.show("llama3.2:3b")
    assert shown.details and shown.details.family == "llama"
    assert httpx.get(gateway.url + "/api/version").json()["version"]
    assert httpx.get(gateway.url + "/").text == "Ollama is running"
    assert httpx.head(gateway.url + "/").status_code == 200


def test_unknown_model_is_404_in_ollamas_shape(gateway: Gateway) -> None:
    client = ollama.Client(host=gateway.url, timeout=TIMEOUT)
    with pytest.raises(ollama.ResponseError) as info:
        client.chat(model="nope:1b", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 404
    reply = httpx.post(gateway.url + "/api/generate", json={"model": "nope:1b", "prompt": "x"})
    assert reply.status_code == 404 and reply.json() == {"error": 'model "nope:1b" not found, try pulling it first'}
    assert httpx.post(gateway.url + "/api/show", json={"model": "nope:1b"}).status_code == 404


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streaming"])
def test_headers_name_node_and_model_and_the_mode_header_is_honoured(gateway: Gateway, hydra: Hydra,
                                                                     stream: bool) -> None:
    headers = {"X-Hydra-Mode": "fast", "X-Hydra-Priority": "9", "X-Hydra-Task-Type": "general"}
    with httpx.stream("POST", gateway.url + "/api/chat", json=chat_body(stream=stream), headers=headers,
                      timeout=TIMEOUT) as reply:
        assert reply.status_code == 200
        lines = [json.loads(line) for line in reply.iter_lines() if line]
    assert reply.headers["x-hydra-model"] == "llama3.2:3b"
    assert reply.headers["x-hydra-node"] in ("light", "powerful")
    assert lines[-1]["done"] is True
    task_id = reply.headers["x-hydra-task-id"]
    decision = next(d for d in hydra.decisions(200) if d.task_id == task_id)
    assert decision.mode.value == "fast" and decision.priority == 9 and decision.node == reply.headers["x-hydra-node"]


@pytest.mark.parametrize("headers, fragment", [
    ({"X-Hydra-Mode": "sideways"}, "mode"),
    ({"X-Hydra-Priority": "eleven"}, "X-Hydra-Priority"),
    ({"X-Hydra-Priority": "11"}, "priority"),
    ({"X-Hydra-Task-Type": "poetry"}, "task_type"),
], ids=["mode", "priority-text", "priority-range", "task-type"])
def test_bad_routing_headers_are_400(gateway: Gateway, headers: dict[str, str], fragment: str) -> None:
    reply = httpx.post(gateway.url + "/api/chat", json=chat_body(stream=False), headers=headers)
    assert reply.status_code == 400 and fragment in reply.json()["error"]


# --- OpenAI API ---

def test_openai_client_not_streaming_reports_usage(gateway: Gateway, hydra: Hydra) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="x", timeout=TIMEOUT)
    assert {m.id for m in client.models.list()} == set(hydra.models())
    completion = client.chat.completions.create(model="llama3.2:3b", max_tokens=7,
                                                messages=[{"role": "user", "content": "hi"}])
    assert completion.choices[0].message.content and completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 7
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 7 > 7


def test_openai_client_streams_sse(gateway: Gateway) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="x", timeout=TIMEOUT)
    chunks = list(client.chat.completions.create(model="auto", max_tokens=6, stream=True,
                                                 stream_options={"include_usage": True},
                                                 messages=[{"role": "user", "content": "hi"}]))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("[simulated ")
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6
    raw = httpx.post(gateway.url + "/v1/chat/completions", timeout=TIMEOUT,
                     json={"model": "auto", "stream": True, "max_tokens": 3, "messages": [{"role": "user",
                                                                                           "content": "x"}]})
    assert raw.headers["content-type"].startswith("text/event-stream") and raw.headers["x-hydra-node"]
    assert raw.text.rstrip().endswith("data: [DONE]")


def test_openai_unknown_model_is_404_in_openais_shape(gateway: Gateway) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="x", timeout=TIMEOUT, max_retries=0)
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert "not found" in info.value.body["message"]  # type: ignore[index]


# --- load and disconnects ---

def test_fifty_concurrent_streaming_clients_all_complete(gateway: Gateway) -> None:
    def one(i: int) -> tuple[bool, str]:
        client = ollama.Client(host=gateway.url, timeout=60)
        parts = list(client.chat(model="auto", messages=[{"role": "user", "content": f"question {i}"}],
                                 options={"num_predict": 6}, stream=True))
        return parts[-1].done and parts[-1].eval_count == 6, "".join(p.message.content or "" for p in parts)

    with ThreadPoolExecutor(50) as pool:
        outcomes = list(pool.map(one, range(50), timeout=90))
    assert all(ok for ok, _ in outcomes) and all(text for _, text in outcomes)


def test_a_client_that_disconnects_mid_stream_cancels_its_task(gateway: Gateway, hydra: Hydra, seed: SimCluster,
                                                               eventually: Callable[..., Any]) -> None:
    body = chat_body(options={"num_predict": 5000})
    with httpx.stream("POST", gateway.url + "/api/chat", json=body, timeout=TIMEOUT) as reply:
        lines = reply.iter_lines()
        assert json.loads(next(lines))["done"] is False
        task_id, node = reply.headers["x-hydra-task-id"], reply.headers["x-hydra-node"]
    handle = hydra.handle(task_id)
    assert handle is not None
    result = handle.result(timeout=TIMEOUT)
    assert result.status is TaskStatus.CANCELLED and (result.eval_count or 0) < 5000
    eventually(lambda: seed.node(node).stats()["in_flight"] == 0, timeout=TIMEOUT, what="the sim node freed")
    eventually(lambda: hydra.snapshot().in_flight == 0, timeout=TIMEOUT, what="the router's slot freed")


# --- refusals ---

@pytest.mark.parametrize("path", ["/api/chat", "/api/generate", "/v1/chat/completions", "/api/show"])
def test_malformed_json_is_400_and_oversized_body_413(gateway: Gateway, path: str) -> None:
    bad = httpx.post(gateway.url + path, content=b"{not json", headers={"content-type": "application/json"})
    assert bad.status_code == 400 and "error" in bad.json()
    assert httpx.post(gateway.url + path, content=b"[1, 2]").status_code == 400
    huge = httpx.post(gateway.url + path, content=b"{" + b" " * (2 << 20) + b"}")
    assert huge.status_code == 413


def test_missing_fields_are_400(gateway: Gateway) -> None:
    assert httpx.post(gateway.url + "/api/chat", json={"model": "auto"}).status_code == 400
    assert httpx.post(gateway.url + "/api/generate", json={"model": "auto", "prompt": " "}).status_code == 400
    assert httpx.post(gateway.url + "/api/chat", json=chat_body(options={"num_predict": "x"})).status_code == 400
    assert httpx.post(gateway.url + "/v1/chat/completions", json={"messages": "hi"}).status_code == 400


def test_api_key_guards_every_route_but_root(hydra: Hydra) -> None:
    with Gateway(hydra, port=0, api_key="s3cret") as gw:
        assert httpx.get(gw.url + "/").status_code == 200
        for path in ("/api/tags", "/api/version", "/metrics", "/api/hydra/status", "/v1/models"):
            assert httpx.get(gw.url + path).status_code == 401, path
            assert httpx.get(gw.url + path, headers={"Authorization": "Bearer wrong"}).status_code == 401, path
            assert httpx.get(gw.url + path, headers={"Authorization": "Bearer s3cret"}).status_code == 200, path
        assert httpx.post(gw.url + "/api/chat", json=chat_body()).json()["error"]
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=gw.url + "/v1", api_key="wrong", max_retries=0).models.list()
        assert openai.OpenAI(base_url=gw.url + "/v1", api_key="s3cret").models.list().data
        reply = ollama.Client(host=gw.url, headers={"Authorization": "Bearer s3cret"}).chat(
            model="llama3.2:3b", messages=[{"role": "user", "content": "x"}], options={"num_predict": 2})
        assert reply.done


def test_a_busy_port_fails_at_start(hydra: Hydra, gateway: Gateway) -> None:
    with pytest.raises(OSError):
        Gateway(hydra, port=gateway.port).start()


# --- metrics and status ---

def test_metrics_parse_and_count_what_was_sent(gateway: Gateway) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    client = ollama.Client(host=gateway.url, timeout=TIMEOUT)
    for _ in range(3):
        client.chat(model="llama3.2:3b", messages=[{"role": "user", "content": "x"}], options={"num_predict": 3})
    for _ in range(2):
        client.generate(model="llama3.2:3b", prompt="x", options={"num_predict": 3}, stream=True)
        list(client.generate(model="llama3.2:3b", prompt="x", options={"num_predict": 3}, stream=True))
    httpx.post(gateway.url + "/api/chat", json=chat_body(model="nope"))
    openai.OpenAI(base_url=gateway.url + "/v1", api_key="x").chat.completions.create(
        model="llama3.2:3b", max_tokens=3, messages=[{"role": "user", "content": "x"}])

    families = {f.name: f for f in text_string_to_metric_families(httpx.get(gateway.url + "/metrics").text)}
    counts: dict[tuple[str, str], float] = {}
    for sample in families["hydra_gateway_requests"].samples:
        if sample.name.endswith("_total"):
            key = (sample.labels["api"], sample.labels["status"])
            counts[key] = counts.get(key, 0) + sample.value
    # a generator that is never iterated sends nothing: the first generate loop sends 2, not 4
    assert counts == {("ollama_chat", "done"): 3, ("ollama_generate", "done"): 2, ("ollama_chat", "http_404"): 1,
                      ("openai_chat", "done"): 1}
    tokens = sum(s.value for s in families["hydra_gateway_tokens"].samples
                 if s.name.endswith("_total") and s.labels["kind"] == "completion")
    assert tokens == 3 * 6
    ttft = [s for s in families["hydra_gateway_ttft_seconds"].samples if s.name.endswith("_count")]
    assert sum(s.value for s in ttft) == 6
    healthy = {s.labels["node"]: s.value for s in families["hydra_node_healthy"].samples}
    assert healthy == {"light": 1.0, "powerful": 1.0}
    assert {s.labels["node"] for s in families["hydra_node_vram_used_bytes"].samples} == {"light", "powerful"}
    closed = {s.labels["node"] for s in families["hydra_node_circuit_state"].samples
              if s.labels["state"] == "closed" and s.value == 1.0}
    assert closed == {"light", "powerful"}
    assert families["hydra_queue_depth"].samples[0].value == 0
    assert families["hydra_gateway_in_flight"].samples[0].value == 0


def test_status_is_the_snapshot_as_json(gateway: Gateway) -> None:
    ollama.Client(host=gateway.url).chat(model="llama3.2:3b", messages=[{"role": "user", "content": "x"}],
                                         options={"num_predict": 2})
    status = httpx.get(gateway.url + "/api/hydra/status").json()
    assert {n["name"] for n in status["nodes"]} == {"light", "powerful"}
    assert sum(status["distribution"]["by_model"].values()) >= 1
    assert status["decisions"][0]["model"] == "llama3.2:3b" and status["decisions"][0]["candidates"]


def test_a_client_that_gives_up_on_a_whole_answer_cancels_it_too(gateway: Gateway, hydra: Hydra,
                                                                 eventually: Callable[..., Any]) -> None:
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(gateway.url + "/api/chat", json=chat_body(stream=False, options={"num_predict": 5000}),
                   timeout=httpx.Timeout(10.0, read=0.5))
    handle = eventually(lambda: next((h for h in hydra.tasks(5) if h.task.max_tokens == 5000), None),
                        what="the task")
    assert handle.result(timeout=TIMEOUT).status is TaskStatus.CANCELLED


def test_stopping_the_gateway_ends_open_streams_and_cancels_their_tasks(hydra: Hydra) -> None:
    gw = Gateway(hydra, port=0).start()
    with httpx.stream("POST", gw.url + "/api/chat", json=chat_body(options={"num_predict": 5000}),
                      timeout=TIMEOUT) as reply:
        lines = reply.iter_lines()
        next(lines)
        task_id = reply.headers["x-hydra-task-id"]
        gw.stop()
        rest: list[str] = []
        with contextlib.suppress(httpx.HTTPError):  # the server may cut the connection rather than end it
            rest = [line for line in lines if line]
    assert not any(json.loads(line).get("done") for line in rest)
    handle = hydra.handle(task_id)
    assert handle is not None and handle.result(timeout=TIMEOUT).status is TaskStatus.CANCELLED


def test_no_healthy_node_is_503_with_the_reason(gateway: Gateway, hydra: Hydra, seed: SimCluster,
                                               eventually: Callable[..., Any]) -> None:
    for node in seed:
        node.kill()
    eventually(lambda: not hydra.snapshot().healthy_nodes, timeout=TIMEOUT, what="every node down")
    explicit = httpx.post(gateway.url + "/api/chat", json=chat_body(stream=False), timeout=TIMEOUT)
    assert explicit.status_code == 503 and "no healthy node" in explicit.json()["error"]
    for stream in (False, True):
        auto = httpx.post(gateway.url + "/api/chat", json=chat_body(model="auto", stream=stream), timeout=TIMEOUT)
        assert auto.status_code == 503 and "no node could run" in auto.json()["error"]
    openai_reply = httpx.post(gateway.url + "/v1/chat/completions", timeout=TIMEOUT,
                              json={"model": "auto", "messages": [{"role": "user", "content": "x"}]})
    assert openai_reply.status_code == 503 and "no node could run" in openai_reply.json()["error"]["message"]


def test_unknown_paths_and_methods_answer_in_the_apis_shape(gateway: Gateway) -> None:
    missing = httpx.post(gateway.url + "/api/no-such-route", json={"model": "x"})  # /api/pull is served now
    assert missing.status_code == 404 and "/api/no-such-route" in missing.json()["error"]
    assert httpx.get(gateway.url + "/api/chat").status_code == 405
    assert httpx.get(gateway.url + "/v1/audio/speech").json()["error"]["type"] == "not_found_error"
    wrong_method = httpx.get(gateway.url + "/v1/embeddings")  # a route since issue 12: POST only
    assert wrong_method.status_code == 405 and wrong_method.json()["error"]["message"]


def test_the_service_starts_and_stops_its_own_gateway_from_the_settings(seed: SimCluster, tmp_path: Path) -> None:
    from hydra.sim.server import free_port

    port = free_port()
    service = Hydra.from_env(hydra_env(seed, tmp_path, HYDRA_GATEWAY_PORT=str(port), HYDRA_API_KEY="k3y"),
                             poll_interval_s=0.1).start()
    try:
        assert service.gateway is not None and service.gateway.url == f"http://127.0.0.1:{port}"
        assert httpx.get(service.gateway.url + "/api/tags").status_code == 401
        assert httpx.get(service.gateway.url + "/api/tags", headers={"Authorization": "Bearer k3y"}).json()["models"]
    finally:
        service.close()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/", timeout=2)


def test_a_failover_mid_answer_continues_the_answer_without_a_note(gateway: Gateway, seed: SimCluster) -> None:
    seed.node("light").set_fault("error_midstream", count=1, after_chunks=4)  # async mode puts CPU nodes first
    client = ollama.Client(host=gateway.url, timeout=TIMEOUT, headers={"X-Hydra-Mode": "async"})
    parts = list(client.chat(model="llama3.2:3b", messages=[{"role": "user", "content": "x"}],
                             options={"num_predict": 10}, stream=True))
    text = "".join(p.message.content or "" for p in parts)
    assert text.startswith("[simulated llama3.2:3b on light] ")  # four chunks from light, then powerful goes on
    assert "[hydra" not in text and "[simulated llama3.2:3b on powerful]" not in text
    assert parts[-1].done and parts[-1].eval_count == 10
