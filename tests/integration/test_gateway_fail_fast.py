"""Fail fast, with a real status (issue 13, item 8): with no node to run a task the gateway answers 503 at
once, streaming or not, and a streaming answer never commits its 200 before a node has taken the task."""
from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ollama
import pytest

from hydra.gateway import Gateway
from hydra.gateway.ollama_api import OllamaRenderer
from hydra.gateway.stream import TaskResponse
from hydra.service import Hydra
from hydra.sim import SimCluster
from hydra.sollol.handle import TaskHandle, TaskState
from hydra.sollol.types import FailureKind, RoutingMode, Task, TaskResult, TaskStatus

TIMEOUT = 20.0
MESSAGES = [{"role": "user", "content": "Write a Python function that merges two sorted lists"}]


@pytest.fixture
def service(seed: SimCluster, tmp_path: Path, eventually: Callable[..., Any]) -> Iterator[Hydra]:
    env = {"SOLLOL_NODES": seed.sollol_nodes(), "HYDRA_DB": str(tmp_path / "h.db"), "HYDRA_EMBEDDED_NODE": "off",
           "SOLLOL_DISCOVER_LOCALHOST": "false", "HYDRA_GATEWAY_PORT": "0"}
    hydra = Hydra.from_env(env, poll_interval_s=0.1).start()   # no_route_wait_s as shipped (30 s)
    eventually(lambda: len(hydra.snapshot().healthy_nodes) == 2, what="both nodes healthy")
    yield hydra
    hydra.close()


def _refused(client: ollama.Client, stream: bool) -> tuple[ollama.ResponseError, float]:
    started = time.monotonic()
    with pytest.raises(ollama.ResponseError) as refused:
        if stream:
            for _ in client.chat(model="auto", messages=MESSAGES, stream=True):
                pass
        else:
            client.chat(model="auto", messages=MESSAGES)
    return refused.value, time.monotonic() - started


def test_every_node_down_is_a_503_at_once_streaming_or_not(seed: SimCluster, service: Hydra,
                                                            eventually: Callable[..., Any]) -> None:
    with Gateway(service, port=0) as gateway:
        for node in seed:
            node.kill()
        eventually(lambda: not service.snapshot().healthy_nodes, what="both nodes seen down")
        client = ollama.Client(host=gateway.url, timeout=TIMEOUT)
        for stream in (True, False, True):   # the last: the nodes have been down a while now
            error, elapsed = _refused(client, stream)
            assert error.status_code == 503, (stream, error)        # not -1: a status, not an error line
            assert elapsed < 1.0, (stream, elapsed)
            assert "no node could run this task" in error.error
            assert "light: unhealthy" in error.error and "powerful: unhealthy" in error.error


def test_nodes_that_ask_to_be_left_alone_are_a_503_not_a_502(seed: SimCluster, service: Hydra) -> None:
    for node in seed:
        node.set_fault("http_429", delay_s=60)
    with Gateway(service, port=0) as gateway:
        client = ollama.Client(host=gateway.url, timeout=TIMEOUT)
        with pytest.raises(ollama.ResponseError) as refused:
            client.chat(model="llama3.2:3b", messages=MESSAGES)
    assert refused.value.status_code == 503 and "backed off" in refused.value.error
    assert all(n.circuit == "closed" and n.failures == 0 for n in service.snapshot().nodes)


# --- the header commit, over a TaskState the test drives ---

class _Client:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.started = threading.Event()

    async def receive(self) -> dict[str, Any]:
        await asyncio.Event().wait()  # never leaves
        raise AssertionError

    async def send(self, message: Any) -> None:
        if message["type"] == "http.response.start":
            self.started.set()
        self.messages.append(message)

    def start(self) -> dict[str, Any]:
        return next(m for m in self.messages if m["type"] == "http.response.start")

    def body(self) -> bytes:
        return b"".join(m["body"] for m in self.messages if m["type"] == "http.response.body")


def _respond(handle: TaskHandle, client: _Client) -> None:
    finished: list[TaskResult | None] = []
    response = TaskResponse(handle, OllamaRenderer(True, None, None), stream=True,
                            on_finish=lambda h, r: finished.append(r), header_wait_s=0.05)
    asyncio.run(response({"type": "http"}, client.receive, client.send))


def _queued() -> tuple[TaskState, TaskHandle]:
    state = TaskState(Task(prompt="p"), RoutingMode.ASYNC, "general")
    return state, TaskHandle(state, lambda s: s.finish(TaskStatus.CANCELLED) is not None)


def _after_the_header_wait(client: _Client, action: Callable[[], object], held: list[bool]) -> threading.Thread:
    """Run ``action`` once the 0.05 s header wait is well past, noting whether the headers were still held."""
    def run() -> None:
        held.append(not client.started.wait(0.3))
        action()
    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_task_no_node_took_ends_with_its_status_even_after_the_header_wait() -> None:
    state, handle = _queued()
    client, held = _Client(), list[bool]()
    ender = _after_the_header_wait(client, lambda: state.finish(
        TaskStatus.FAILED, error="no node could run this task", failure=FailureKind.NO_ROUTE), held)
    _respond(handle, client)
    ender.join()
    assert held == [True]
    assert client.start()["status"] == 503
    assert json.loads(client.body()) == {"error": "no node could run this task"}


def test_the_headers_go_out_once_a_node_took_the_task_naming_it() -> None:
    state, handle = _queued()
    client = _Client()

    def run_on_n2() -> None:
        attempt = state.bind("n2", "m:1b", None)  # type: ignore[arg-type]
        assert attempt is not None
        assert client.started.wait(TIMEOUT)        # committed once bound, before any token
        state.add(attempt, text="a")
        state.finish(TaskStatus.DONE, attempt=attempt)

    held: list[bool] = []
    producer = _after_the_header_wait(client, run_on_n2, held)
    _respond(handle, client)
    producer.join()
    assert held == [True]
    start = client.start()
    assert start["status"] == 200 and dict(start["headers"])[b"x-hydra-node"] == b"n2"
    lines = [json.loads(line) for line in client.body().splitlines() if line.strip()]
    assert [line["message"]["content"] for line in lines] == ["a", ""] and lines[-1]["done"] is True
