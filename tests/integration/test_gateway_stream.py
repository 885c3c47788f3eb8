"""The gateway's streaming response over ``TaskHandle.astream()``: no thread per open stream, headers held
back (bounded) without losing or repeating a chunk, piled-up chunks in one write, the reader closed on
every way out, and a submit whose request is gone cancels its task."""
from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from hydra.gateway import Gateway
from hydra.gateway.admission import INLINE_SUBMIT_CHARS, SUBMIT_THREADS, submit
from hydra.gateway.ollama_api import OllamaRenderer
from hydra.gateway.stream import TaskResponse
from hydra.service import Hydra
from hydra.sim import SimCluster
from hydra.sollol.handle import TaskHandle, TaskState
from hydra.sollol.types import FailureKind, RoutingMode, Task, TaskResult, TaskStatus

TIMEOUT = 20.0


# --- through a real gateway ---

def test_open_streams_cost_no_thread_each(seed: SimCluster, tmp_path: Path, eventually: Callable[..., Any]) -> None:
    env = {"SOLLOL_NODES": seed.sollol_nodes(), "HYDRA_DB": str(tmp_path / "h.db"), "HYDRA_EMBEDDED_NODE": "off",
           "SOLLOL_DISCOVER_LOCALHOST": "false", "HYDRA_GATEWAY_PORT": "0", "SOLLOL_MAX_CONCURRENT_REQUESTS": "1"}
    service = Hydra.from_env(env, poll_interval_s=0.1, no_route_wait_s=1.0).start()
    try:
        eventually(lambda: len(service.snapshot().healthy_nodes) == 2, what="both nodes healthy")
        with Gateway(service, port=0) as gw:
            reply = httpx.post(gw.url + "/api/chat", timeout=TIMEOUT, json={
                "model": "llama3.2:3b", "messages": [{"role": "user", "content": "warm"}],
                "options": {"num_predict": 2}})
            assert reply.status_code == 200
            # The one slot is taken, so the 20 streams below wait in the queue, open, with their headers held.
            blocker = service.submit("hold the slot", model="llama3.2:3b", max_tokens=100_000)
            eventually(lambda: blocker.status is TaskStatus.RUNNING, what="the blocker running")
            before = _threads()
            replies = asyncio.run(_open_streams(gw.port, 20, service, blocker, before))
    finally:
        service.close()
    for raw in replies:
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        lines = [json.loads(line) for line in _dechunk(body).splitlines() if line.strip()]
        assert lines[-1]["done"] is True and lines[-1]["eval_count"] == 3


def _threads() -> list[str]:
    """This process's threads but the simulated nodes' (one per connection, opened as their pollers
    reconnect, which is nothing to do with the gateway)."""
    return [t.name for t in threading.enumerate() if not t.name.endswith("(process_request_thread)")]


async def _open_streams(port: int, n: int, service: Hydra, blocker: TaskHandle, before: list[str]) -> list[bytes]:
    """Raw sockets (a numeric host resolves without a thread): the count below sees only the gateway's."""
    body = json.dumps({"model": "llama3.2:3b", "messages": [{"role": "user", "content": "q"}],
                       "options": {"num_predict": 3}}).encode()
    request = (b"POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nConnection: close\r\n"
               b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    streams = [await asyncio.open_connection("127.0.0.1", port) for _ in range(n)]
    for _, writer in streams:
        writer.write(request)
    for _ in range(int(TIMEOUT / 0.01)):
        if service.snapshot().queue_depth >= n:
            break
        await asyncio.sleep(0.01)
    assert service.snapshot().queue_depth >= n, "the streams never all reached the queue"
    during = _threads()
    # At most the submit pool grows to its bound; a thread per open stream would add n.
    assert len(during) - len(before) <= SUBMIT_THREADS, (before, during)
    blocker.cancel()
    replies = await asyncio.wait_for(asyncio.gather(*(reader.read() for reader, _ in streams)), TIMEOUT * 3)
    for _, writer in streams:
        writer.close()
    return replies


def _dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size, _, rest = body.partition(b"\r\n")
        length = int(size, 16)
        if length == 0:
            break
        out += rest[:length]
        body = rest[length + 2:]
    return out


# --- TaskResponse over a TaskState driven by the test ---

class _Client:
    """An ASGI client: records what is sent; ``hold_first_body`` blocks the first body write until set."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.started = threading.Event()
        self.hold_first_body: asyncio.Event | None = None
        self.fail_on_body = False

    async def receive(self) -> dict[str, Any]:
        await asyncio.Event().wait()  # never leaves
        raise AssertionError

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.started.set()
        elif self.fail_on_body:
            raise OSError("client gone")
        elif self.hold_first_body is not None and not self.bodies():
            self.messages.append(message)
            await self.hold_first_body.wait()
            return
        self.messages.append(message)

    def bodies(self) -> list[bytes]:
        return [m["body"] for m in self.messages if m["type"] == "http.response.body"]

    def headers(self) -> dict[bytes, bytes]:
        start = next(m for m in self.messages if m["type"] == "http.response.start")
        return dict(start["headers"])


def _task() -> tuple[TaskState, TaskHandle]:
    state = TaskState(Task(prompt="p"), RoutingMode.ASYNC, "general")
    return state, TaskHandle(state, lambda s: s.finish(TaskStatus.CANCELLED) is not None)


def _respond(handle: TaskHandle, client: _Client, finished: list[TaskResult | None], **kwargs: Any) -> TaskResponse:
    return TaskResponse(handle, OllamaRenderer(True, None, None), stream=True,
                        on_finish=lambda h, r: finished.append(r), **kwargs)


async def _serve(response: TaskResponse, client: _Client, state: TaskState) -> list[Any]:
    """Run the response; the task's watchers right after it returns (the reader must be closed by then,
    not later when a finalizer or asyncio.run's shutdown would close it)."""
    await response({"type": "http"}, client.receive, client.send)
    return list(state.watchers)


def _texts(body: bytes) -> list[str]:
    return [json.loads(line)["message"]["content"] for line in body.splitlines() if line.strip()]


def test_headers_wait_is_bounded_and_the_chunks_after_it_come_once() -> None:
    state, handle = _task()
    first = state.bind("n1", "m:1b", None)  # type: ignore[arg-type]
    assert first is not None
    state.requeue(first, "n1", "boom", notice="n1 failed; the answer continues")  # no chunk: the wait runs out
    client, finished = _Client(), []

    def later() -> None:  # the task finds a node only after the headers went out without one
        assert client.started.wait(TIMEOUT)
        attempt = state.bind("n2", "m:1b", None)  # type: ignore[arg-type]
        assert attempt is not None
        state.add(attempt, text="a")
        state.add(attempt, text="b")
        state.finish(TaskStatus.DONE, attempt=attempt)

    producer = threading.Thread(target=later)
    producer.start()
    watchers = asyncio.run(_serve(_respond(handle, client, finished, header_wait_s=0.05), client, state))
    producer.join()
    assert client.headers()[b"x-hydra-task-id"] == handle.id.encode()
    texts = _texts(b"".join(client.bodies()))
    # Nothing was read before the wait ran out; the reader that follows replays from the start, once.
    assert texts == ["a", "b", ""]
    assert finished[0] is not None and finished[0].status is TaskStatus.DONE
    assert watchers == []


def test_chunks_that_piled_up_during_a_write_go_out_in_one_write() -> None:
    state, handle = _task()
    attempt = state.bind("n1", "m:1b", None)  # type: ignore[arg-type]
    assert attempt is not None
    client, finished = _Client(), []

    async def run() -> None:
        client.hold_first_body = asyncio.Event()
        response = asyncio.ensure_future(_respond(handle, client, finished)({"type": "http"}, client.receive,
                                                                             client.send))
        state.add(attempt, text="first")
        while not client.bodies():
            await asyncio.sleep(0.001)
        for i in range(10):  # while the first write is held
            state.add(attempt, text=f"t{i}")
        state.finish(TaskStatus.DONE, attempt=attempt)
        client.hold_first_body.set()
        await response

    asyncio.run(run())
    bodies = client.bodies()
    assert _texts(bodies[0]) == ["first"]
    assert _texts(bodies[1]) == [f"t{i}" for i in range(10)]  # one write, not ten
    assert len(bodies) == 3 and json.loads(bodies[2])["done"] is True


def test_a_failed_write_cancels_the_task_and_closes_the_reader() -> None:
    state, handle = _task()
    attempt = state.bind("n1", "m:1b", None)  # type: ignore[arg-type]
    assert attempt is not None
    state.add(attempt, text="x")
    client, finished = _Client(), []
    client.fail_on_body = True
    watchers = asyncio.run(_serve(_respond(handle, client, finished), client, state))
    assert handle.status is TaskStatus.CANCELLED and finished == [None]
    assert watchers == []


def test_a_task_that_fails_before_its_first_byte_is_a_json_error() -> None:
    state, handle = _task()
    state.finish(TaskStatus.FAILED, error="no node could run it", failure=FailureKind.NO_ROUTE)
    client, finished = _Client(), []
    asyncio.run(_respond(handle, client, finished)({"type": "http"}, client.receive, client.send))
    start = next(m for m in client.messages if m["type"] == "http.response.start")
    assert start["status"] == 503 and json.loads(client.bodies()[0]) == {"error": "no node could run it"}


_EXPECTED_STATUS = {FailureKind.NO_ROUTE: 503, FailureKind.REJECTED: 400, FailureKind.NODE_FAILED: 502,
                    FailureKind.DEADLINE: 504, FailureKind.CANCELLED: 499, FailureKind.SHUTDOWN: 503,
                    FailureKind.INTERRUPTED: 503, FailureKind.INTERNAL: 500}


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
@pytest.mark.parametrize("kind", list(FailureKind), ids=lambda k: k.value)
def test_the_status_of_a_failure_comes_from_its_kind_not_its_text(kind: FailureKind, stream: bool) -> None:
    """The same text for every kind (the one the gateway used to look for): only the kind decides."""
    state, handle = _task()
    status = TaskStatus.CANCELLED if kind is FailureKind.CANCELLED else TaskStatus.FAILED
    message = f"no node could run this task; the node said: bad request for {kind.value}"
    state.finish(status, error=message, failure=kind)
    client, finished = _Client(), []
    response = TaskResponse(handle, OllamaRenderer(True, None, None), stream=stream,
                            on_finish=lambda h, r: finished.append(r))
    asyncio.run(response({"type": "http"}, client.receive, client.send))
    start = next(m for m in client.messages if m["type"] == "http.response.start")
    assert start["status"] == _EXPECTED_STATUS[kind]
    assert json.loads(client.bodies()[0]) == {"error": message}  # the node's own words, e.g. why it refused


def test_a_submit_whose_request_is_gone_cancels_the_task_it_made() -> None:
    _state, handle = _task()
    entered, release = threading.Event(), threading.Event()

    class SlowHydra:
        def submit(self, **kwargs: Any) -> TaskHandle:
            entered.set()
            assert release.wait(TIMEOUT)
            return handle

    class Tracker:
        submits = ThreadPoolExecutor(1)

        def started(self, handle: TaskHandle) -> None:
            pass

    async def run() -> None:
        long_prompt = "p" * (INLINE_SUBMIT_CHARS + 1)  # a long text is submitted on the pool's thread
        request = asyncio.ensure_future(submit(SlowHydra(), Tracker(), prompt=long_prompt))  # type: ignore[arg-type]
        while not entered.is_set():  # cancelled while hydra.submit runs, not before it starts
            await asyncio.sleep(0.001)
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request

    asyncio.run(run())
    assert handle.status is TaskStatus.QUEUED  # the submit is still running
    release.set()
    Tracker.submits.shutdown(wait=True)
    assert handle.status is TaskStatus.CANCELLED


def test_a_request_gone_while_its_row_is_written_cancels_its_task(seed: SimCluster, tmp_path: Path,
                                                                  eventually: Callable[..., Any]) -> None:
    """The event-loop path (``Hydra.asubmit``): a request cancelled while it waits for its history row
    leaves no task running for nobody."""
    env = {"SOLLOL_NODES": seed.sollol_nodes(), "HYDRA_DB": str(tmp_path / "h.db"), "HYDRA_EMBEDDED_NODE": "off",
           "SOLLOL_DISCOVER_LOCALHOST": "false", "HYDRA_GATEWAY_PORT": "0"}
    service = Hydra.from_env(env, poll_interval_s=0.1, no_route_wait_s=1.0).start()
    made: list[TaskHandle] = []

    class Tracker:
        submits = ThreadPoolExecutor(1)
        admitting = asyncio.Semaphore(1)

        def started(self, handle: TaskHandle) -> None:
            made.append(handle)

    try:
        eventually(lambda: len(service.snapshot().healthy_nodes) == 2, what="both nodes healthy")
        with service.history.group():  # the writer cannot commit the row until the block ends
            async def run() -> None:
                request = asyncio.ensure_future(submit(service, Tracker(), prompt="a short one",  # type: ignore[arg-type]
                                                       model="llama3.2:3b", max_tokens=100_000))
                deadline = asyncio.get_running_loop().time() + TIMEOUT
                while service.snapshot().in_flight + service.snapshot().queue_depth < 1:  # submitted
                    assert asyncio.get_running_loop().time() < deadline, "the task was never submitted"
                    await asyncio.sleep(0.01)
                assert not request.done()  # still waiting for its row
                request.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await request
            asyncio.run(run())
        assert made == []  # never handed to the gateway's tracker: nobody reads it
        eventually(lambda: service.snapshot().in_flight == 0 and service.snapshot().queue_depth == 0,
                   what="the orphaned task cancelled")
    finally:
        service.close()


def test_submits_on_the_loop_wait_their_turn_behind_rows_not_yet_written(seed: SimCluster, tmp_path: Path,
                                                                         eventually: Callable[..., Any]) -> None:
    """A burst must not run every submit on the event loop back to back: past ``admitting``'s bound,
    a request waits (the loop serves others meanwhile) until an earlier one's row is written."""
    env = {"SOLLOL_NODES": seed.sollol_nodes(), "HYDRA_DB": str(tmp_path / "h.db"), "HYDRA_EMBEDDED_NODE": "off",
           "SOLLOL_DISCOVER_LOCALHOST": "false", "HYDRA_GATEWAY_PORT": "0", "SOLLOL_MAX_CONCURRENT_REQUESTS": "8"}
    service = Hydra.from_env(env, poll_interval_s=0.1, no_route_wait_s=1.0).start()
    made: list[TaskHandle] = []

    class Tracker:
        submits = ThreadPoolExecutor(1)
        admitting = asyncio.Semaphore(2)

        def started(self, handle: TaskHandle) -> None:
            made.append(handle)

    queued: list[str] = []
    service.router.subscribe(lambda event: queued.append(event.task.id) if event.kind == "queued" else None)

    def submitted() -> int:  # tasks the router was given (they may well have finished since)
        return len(queued)

    async def run() -> list[TaskHandle]:
        loop = asyncio.get_running_loop()
        with service.history.group():  # no row can be written until the block ends
            requests = [asyncio.ensure_future(submit(service, Tracker(), prompt=f"burst {i}",  # type: ignore[arg-type]
                                                     model="llama3.2:3b", max_tokens=2)) for i in range(3)]
            deadline = loop.time() + TIMEOUT
            while submitted() < 2:
                assert loop.time() < deadline, "the first two were never submitted"
                await asyncio.sleep(0.01)
            for _ in range(20):  # the loop runs on meanwhile; the third stays out
                await asyncio.sleep(0.01)
            assert submitted() == 2 and not any(r.done() for r in requests)
        return list(await asyncio.wait_for(asyncio.gather(*requests), TIMEOUT))

    try:
        eventually(lambda: len(service.snapshot().healthy_nodes) == 2, what="both nodes healthy")
        handles = asyncio.run(run())
        assert len(handles) == 3 and made == handles
        for handle in handles:
            assert handle.result(timeout=TIMEOUT).status is TaskStatus.DONE
    finally:
        service.close()
