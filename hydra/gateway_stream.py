"""The gateway's request plumbing: errors, bounded JSON bodies, submitting, and streaming a task.

``TaskResponse`` is a raw ASGI response because the gateway must notice a
client that leaves: uvicorn drops writes to a closed connection silently, so
one coroutine listens for ``http.disconnect`` while another writes, and any
way out other than the task's own end cancels the task, which frees its node.

``handle.stream()`` blocks, so one plain thread per request pumps its chunks
into an asyncio queue (``call_soon_threadsafe``). A thread of its own, not the
shared threadpool: a queued task may wait minutes for its first chunk, and
200 such waits must not starve every other request of threads.
"""
from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from hydra.sollol import Chunk, TaskHandle, TaskResult, TaskStatus
from hydra.sollol.errors import (ConfigError, HydraError, NoRouteError, QueueFullError, ShutdownError,
                                 TaskError)

MAX_BODY_BYTES = 1 << 20
HEADER_WAIT_S = 30.0   # streaming: how long to hold the headers back waiting for the node to be known
_END = object()


class GatewayError(Exception):
    """An HTTP error the gateway answers with, in the shape of the API that was called."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind


def translate(exc: HydraError | ValueError) -> GatewayError:
    """The engine's refusals as HTTP statuses (one boundary, like client.py does for node errors)."""
    if isinstance(exc, (TaskError, ConfigError, ValueError)):
        return GatewayError(400, str(exc))
    if isinstance(exc, (QueueFullError, NoRouteError, ShutdownError)):
        return GatewayError(503, str(exc), "service_unavailable")
    return GatewayError(500, str(exc), "server_error")


def failure_status(result: TaskResult) -> int:
    """A task that failed before its first byte: 503 when no node could take it, 502 when nodes failed it."""
    error = result.error or ""
    if result.status is TaskStatus.FAILED and "no node could run" in error:
        return 503
    if result.status is TaskStatus.CANCELLED:
        return 499
    return 502


async def read_json(request: Request, limit: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """The body as a JSON object; 413 past ``limit`` bytes (read no further), 400 when not a JSON object."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise GatewayError(413, f"request body larger than {limit} bytes")
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > limit:
            raise GatewayError(413, f"request body larger than {limit} bytes")
    try:
        value = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise GatewayError(400, f"invalid JSON in the request body: {exc}") from None
    if not isinstance(value, dict):
        raise GatewayError(400, "the request body must be a JSON object")
    return value


@dataclass(frozen=True)
class Routing:
    """What the X-Hydra-* request headers ask for."""

    mode: str | None
    priority: int
    task_type: str | None

    @classmethod
    def from_headers(cls, request: Request) -> Routing:
        raw = request.headers.get("x-hydra-priority", "5").strip()
        try:
            priority = int(raw)
        except ValueError:
            raise GatewayError(400, f"X-Hydra-Priority must be an integer from 1 to 10, got {raw!r}") from None
        mode = request.headers.get("x-hydra-mode", "").strip().lower() or None
        task_type = request.headers.get("x-hydra-task-type", "").strip().lower() or None
        return cls(mode=mode, priority=priority, task_type=task_type)


def resolve_model(hydra: Any, name: Any) -> str | None:
    """None for tier selection ("auto" or empty); the installed name otherwise; 404 in Ollama's words."""
    if name is not None and not isinstance(name, str):
        raise GatewayError(400, "model must be a string")
    name = (name or "").strip()
    if name.lower() in ("", "auto"):
        return None
    installed = set(hydra.models())
    if not installed and not hydra.snapshot().healthy_nodes:
        raise GatewayError(503, "no healthy node: every node is down or not yet polled", "service_unavailable")
    for candidate in (name, f"{name}:latest"):
        if candidate in installed:
            return candidate
    raise GatewayError(404, f'model "{name}" not found, try pulling it first', "not_found_error")


def split_options(options: Any) -> tuple[dict[str, Any], int | None]:
    """Ollama options without num_predict, and num_predict as max_tokens (<= 0: unlimited)."""
    if options is None:
        return {}, None
    if not isinstance(options, dict):
        raise GatewayError(400, "options must be a JSON object")
    options = dict(options)
    limit = options.pop("num_predict", None)
    if limit is None:
        return options, None
    if isinstance(limit, bool) or not isinstance(limit, (int, float)) or int(limit) != limit:
        raise GatewayError(400, f"options.num_predict must be an integer, got {limit!r}")
    return options, int(limit) if limit > 0 else None


class Tracker(Protocol):
    """Who hears of each generation request: open tasks (cancelled when the gateway stops) and metrics."""

    def started(self, handle: TaskHandle) -> None: ...
    def finished(self, api: str, handle: TaskHandle, result: TaskResult | None, started: float) -> None: ...
    def refused(self, api: str, model: Any, mode: str | None, status: int) -> None: ...


async def submit(hydra: Any, tracker: Tracker, **kwargs: Any) -> TaskHandle:
    """``hydra.submit`` off the event loop (it writes history); engine refusals become HTTP errors."""
    def run() -> TaskHandle:
        handle = hydra.submit(**kwargs)
        tracker.started(handle)
        return handle

    try:
        return await anyio.to_thread.run_sync(run)
    except (HydraError, ValueError) as exc:
        raise translate(exc) from None


class Renderer(Protocol):
    """How one API writes a task: its chunks, its end, its whole answer, its errors."""

    media_type: str

    def chunk(self, chunk: Chunk) -> bytes | None: ...
    def end(self, result: TaskResult) -> bytes: ...
    def stream_error(self, message: str) -> bytes: ...
    def whole(self, result: TaskResult) -> dict[str, Any]: ...
    def error(self, status: int, message: str) -> dict[str, Any]: ...


class TaskResponse:
    """Streams (or, with ``stream=False``, collects) one task as an ASGI response."""

    def __init__(self, handle: TaskHandle, renderer: Renderer, *, stream: bool,
                 on_finish: Callable[[TaskHandle, TaskResult | None], None],
                 header_wait_s: float = HEADER_WAIT_S) -> None:
        self.handle = handle
        self.renderer = renderer
        self.stream = stream
        self.on_finish = on_finish
        self.header_wait_s = header_wait_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        handle = self.handle
        threading.Thread(target=_pump, args=(handle, loop, queue), name=f"gateway-{handle.id}",
                         daemon=True).start()  # ends with its task; a daemon so it never holds up exit
        watcher = asyncio.ensure_future(_watch_disconnect(receive, handle))
        result: TaskResult | None = None
        try:
            if self.stream:
                result = await self._stream(queue, send)
            else:
                result = await self._collect(queue, send)
        except OSError:
            pass  # the client went away while we wrote; cancelled below
        finally:
            watcher.cancel()
            if not handle.done():
                handle.cancel()
            self.on_finish(handle, result)

    async def _stream(self, queue: asyncio.Queue[Any], send: Send) -> TaskResult | None:
        pending: list[bytes] = []
        item: Any = None
        deadline = time.monotonic() + self.header_wait_s
        node = model = ""
        while not node:  # hold the headers until the node that answers is known (bounded)
            try:
                item = await asyncio.wait_for(queue.get(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                view = self.handle.view()
                node, model = view.node or "", view.model or ""
                item = None
                break
            if item is _END:
                break
            if isinstance(item, Chunk):
                node, model = item.node, item.model
                piece = self.renderer.chunk(item)
                if piece:
                    pending.append(piece)
        if item is _END and not pending:
            result = self.handle.result(timeout=5)
            if result.status is not TaskStatus.DONE:
                await _send_json(send, failure_status(result), self.renderer.error(
                    failure_status(result), result.error or result.status.value), result)
                return result
        await send({"type": "http.response.start", "status": 200,
                    "headers": _headers(self.renderer.media_type, node, model, self.handle.id)})
        for piece in pending:
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        while item is not _END:
            # Whatever has piled up since the last write goes out in one write: fewer syscalls under load.
            items = [await queue.get()]
            while items[-1] is not _END and not queue.empty():
                items.append(queue.get_nowait())
            item = items[-1]
            body = b"".join(piece for piece in (self.renderer.chunk(i) for i in items if isinstance(i, Chunk))
                            if piece)
            if body:
                await send({"type": "http.response.body", "body": body, "more_body": True})
        result = self.handle.result(timeout=5)
        tail = self.renderer.end(result) if result.status is TaskStatus.DONE else self.renderer.stream_error(
            result.error or result.status.value)
        await send({"type": "http.response.body", "body": tail, "more_body": False})
        return result

    async def _collect(self, queue: asyncio.Queue[Any], send: Send) -> TaskResult:
        while await queue.get() is not _END:
            pass
        result = self.handle.result(timeout=5)
        if result.status is TaskStatus.DONE:
            await _send_json(send, 200, self.renderer.whole(result), result)
        else:
            status = failure_status(result)
            await _send_json(send, status, self.renderer.error(status, result.error or result.status.value), result)
        return result


def _pump(handle: TaskHandle, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Any]) -> None:
    try:
        for chunk in handle.stream():
            loop.call_soon_threadsafe(queue.put_nowait, chunk)
    except RuntimeError:
        handle.cancel()  # the event loop is gone (gateway stopped): nobody will read this task
        return
    try:
        loop.call_soon_threadsafe(queue.put_nowait, _END)
    except RuntimeError:
        pass


async def _watch_disconnect(receive: Receive, handle: TaskHandle) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            handle.cancel()
            return


def _headers(media_type: str, node: str, model: str, task_id: str) -> list[tuple[bytes, bytes]]:
    headers = [(b"content-type", media_type.encode()), (b"x-hydra-task-id", task_id.encode()),
               (b"cache-control", b"no-cache")]
    if node:
        headers.append((b"x-hydra-node", node.encode("latin-1", "replace")))
    if model:
        headers.append((b"x-hydra-model", model.encode("latin-1", "replace")))
    return headers


async def _send_json(send: Send, status: int, body: dict[str, Any], result: TaskResult) -> None:
    data = json.dumps(body).encode()
    headers = _headers("application/json", result.node or "", result.model or "", result.task_id)
    headers.append((b"content-length", str(len(data)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data, "more_body": False})


def done_reason(result: TaskResult, max_tokens: int | None) -> str:
    if max_tokens and result.eval_count is not None and result.eval_count >= max_tokens:
        return "length"
    return "stop"
