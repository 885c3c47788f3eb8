"""The second half of a generation request: streaming the task's answer (admission is admission.py's).

``TaskResponse`` is a raw ASGI response because the gateway must notice a
client that leaves: uvicorn drops writes to a closed connection silently, so
one coroutine listens for ``http.disconnect`` while another writes, and any
way out other than the task's own end cancels the task, which frees its node.

Chunks come from ``handle.astream()``: the engine's thread that adds a chunk
wakes the event loop itself (one ``call_soon_threadsafe`` per batch), so a
request costs no thread however long its task waits in the queue, and the
first chunk reaches the loop without a hop through a thread of the gateway.

A task that fails before its first byte answers with the HTTP status of its
``TaskResult.failure`` (``FAILURE_STATUS``), never with one guessed from the text.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import Any, Protocol

from starlette.types import Receive, Scope, Send

from hydra.sollol import Chunk, TaskHandle, TaskResult, TaskStatus
from hydra.sollol.types import FailureKind

HEADER_WAIT_S = 30.0   # streaming: how long to hold the headers back waiting for the node to be known
_END = object()


# The HTTP status of a task that ended without an answer, by why it ended.
FAILURE_STATUS: Mapping[FailureKind, int] = {
    FailureKind.NO_ROUTE: 503,      # no node can serve it now: try again later
    FailureKind.REJECTED: 400,      # a node refused the request itself: the caller's to fix (its message says why)
    FailureKind.NODE_FAILED: 502,   # the nodes that tried failed
    FailureKind.DEADLINE: 504,      # the task's own deadline passed first
    FailureKind.CANCELLED: 499,     # nginx's "client closed request": the gateway cancels when the client leaves
    FailureKind.SHUTDOWN: 503,      # the service closed before it ran
    FailureKind.INTERRUPTED: 503,   # the service closed while it ran
    FailureKind.INTERNAL: 500,      # a defect in Hydra ended the attempt (logged with its traceback)
}
UNKNOWN_FAILURE_STATUS = 502  # a result not done that names no kind: an engine defect, blamed on the nodes


def failure_status(result: TaskResult) -> int:
    """The HTTP status of a task that failed before its first byte, from ``result.failure``; a node's
    refusal keeps the node's own 4xx (404 for a model it lacks, 400 for tools it refuses, ...)."""
    if result.failure is None:
        return UNKNOWN_FAILURE_STATUS
    status = result.rejected_status
    if result.failure is FailureKind.REJECTED and status is not None and 400 <= status < 500:
        return status
    return FAILURE_STATUS[result.failure]


def failure_message(result: TaskResult) -> str:
    """What the client reads of a failed task: a node's refusal in the node's own words (as Ollama
    itself would answer), anything else as the engine explains it."""
    if result.failure is FailureKind.REJECTED and result.rejected_message:
        return result.rejected_message
    return result.error or result.status.value

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
                 header_wait_s: float | None = None) -> None:
        self.handle = handle
        self.renderer = renderer
        self.stream = stream
        self.on_finish = on_finish
        # Read at construction, not bound as a default, so a test can shorten HEADER_WAIT_S.
        self.header_wait_s = HEADER_WAIT_S if header_wait_s is None else header_wait_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handle = self.handle
        watcher = asyncio.ensure_future(_watch_disconnect(receive, handle))
        result: TaskResult | None = None
        try:
            result = await (self._stream(send) if self.stream else self._collect(send))
        except OSError:
            pass  # the client went away while we wrote; cancelled below
        finally:
            watcher.cancel()
            if not handle.done():
                handle.cancel()
            self.on_finish(handle, result)

    async def _stream(self, send: Send) -> TaskResult | None:
        handle, renderer = self.handle, self.renderer
        pieces: list[bytes] = []
        taken = 0  # chunks read so far
        node = model = ""
        ended = False
        async with contextlib.AsyncExitStack() as stack:
            chunks = await stack.enter_async_context(contextlib.aclosing(_generator(handle.astream())))
            try:
                # Hold the headers until the node that answers is known (bounded). This task reads the
                # first chunk itself and writes it in the same step: no hand-off to another task.
                async with asyncio.timeout(self.header_wait_s):
                    while not node:
                        try:
                            chunk = await anext(chunks)
                        except StopAsyncIteration:
                            ended = True
                            break
                        taken += 1
                        node, model = chunk.node, chunk.model  # "" on a chunk that names no node: keep waiting
                        piece = renderer.chunk(chunk)
                        if piece:
                            pieces.append(piece)
                skip = 0  # the same generator goes on where it stopped
            except TimeoutError:
                # The timeout cancelled the generator inside its wait, which ends an async generator for
                # good. A new one replays the task from its first chunk: skip those already rendered.
                # (Reading in a task of its own would survive a timeout, but would cost every request's
                # first chunk a hand-off; this way only a request that times out pays.)
                # No 200 for a task no node has taken yet: it may still end without one (no route).
                await _until_started_or_ended(handle)
                view = handle.view()
                node, model = view.node or "", view.model or ""
                ended = view.node is None  # it ended, never having run: no chunk will follow
                chunks = await stack.enter_async_context(contextlib.aclosing(_generator(handle.astream())))
                skip = taken
            if ended and not pieces:
                result = handle.result(timeout=5)  # ended: immediate
                if result.status is not TaskStatus.DONE:
                    status = failure_status(result)
                    await _send_json(send, status, renderer.error(status, failure_message(result)),
                                     result)
                    return result
            await send({"type": "http.response.start", "status": 200,
                        "headers": _headers(renderer.media_type, node, model, handle.id)})
            if pieces:
                await send({"type": "http.response.body", "body": b"".join(pieces), "more_body": True})
            if not ended:
                await self._follow(chunks, skip, send)
        result = handle.result(timeout=5)  # the stream ended, so the task has: immediate
        tail = renderer.end(result) if result.status is TaskStatus.DONE else renderer.stream_error(
            failure_message(result))
        await send({"type": "http.response.body", "body": tail, "more_body": False})
        return result

    async def _follow(self, chunks: AsyncIterator[Chunk], skip: int, send: Send) -> None:
        """The rest of the stream: this task reads and renders, a writer task writes. ``astream()``
        hands out the chunks of one wake-up without pausing, and the writer (woken by the first of
        them) runs only once this task waits again, so whatever piled up since the last write goes
        out in one write: fewer syscalls under load. Only this task ever runs the generator, so
        closing it (``aclosing`` above) never meets it mid-step."""
        batch: list[Any] = []
        wake = asyncio.Event()
        writer = asyncio.ensure_future(_write(batch, wake, send))
        try:
            async for chunk in chunks:
                if skip:
                    skip -= 1
                    continue
                piece = self.renderer.chunk(chunk)
                if piece:
                    batch.append(piece)
                    wake.set()
                if writer.done():
                    break  # the write failed (client gone): its error is raised below
            batch.append(_END)
            wake.set()
            await writer  # everything written, or the writer's error
        finally:
            writer.cancel()  # a no-op once it ended; else this task failed or was cancelled: stop writing

    async def _collect(self, send: Send) -> TaskResult:
        result = await self.handle.aresult()
        if result.status is TaskStatus.DONE:
            await _send_json(send, 200, self.renderer.whole(result), result)
        else:
            status = failure_status(result)
            await _send_json(send, status, self.renderer.error(status, failure_message(result)), result)
        return result


async def _until_started_or_ended(handle: TaskHandle) -> None:
    """Wait, without a thread, until a node has taken the task (an attempt was bound) or it ended:
    only then does Hydra know whether it can start, so only then may a 200 go out."""
    loop = asyncio.get_running_loop()
    changed = asyncio.Event()

    def wake() -> None:  # under the task's lock, on an engine thread
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(changed.set)

    unwatch = handle.watch(wake)
    try:
        while handle.view().node is None and not handle.done():
            await changed.wait()
            changed.clear()
    finally:
        unwatch()


def _generator(chunks: AsyncIterator[Chunk]) -> AsyncGenerator[Chunk, None]:
    """``astream()`` is an async generator (its annotation says only iterator): ``aclosing`` needs its
    ``aclose()``, which unregisters the reader at once on every way out."""
    if not isinstance(chunks, AsyncGenerator):
        raise TypeError(f"TaskHandle.astream() gave a {type(chunks).__name__}, not an async generator")
    return chunks


async def _write(batch: list[Any], wake: asyncio.Event, send: Send) -> None:
    while True:
        if not batch:
            wake.clear()  # only after finding nothing, with no await in between: no set() is lost
            await wake.wait()
            continue
        items = batch[:]
        batch.clear()
        end = items[-1] is _END
        if end:
            items.pop()
        if items:
            await send({"type": "http.response.body", "body": b"".join(items), "more_body": True})
        if end:
            return


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
