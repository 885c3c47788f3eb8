"""OpenAI's ``n``: several choices for one request, each a task of its own (so they may run on
several nodes at once), answered as one body with the choices indexed 0..n-1 and the usage summed.

Only without streaming (validate.openai_n refuses n > 1 with stream). If the client leaves, every
task is cancelled; if one task fails, the others are cancelled and the answer is that failure's
status (a choice short would be an answer that silently differs from what was asked).
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from starlette.types import Receive, Scope, Send

from hydra.gateway.admission import Tracker, submit
from hydra.gateway.service_api import GatewayService
from hydra.gateway.stream import failure_message, failure_status
from hydra.sollol import TaskHandle, TaskResult, TaskStatus
from hydra.sollol.types import FailureKind


class WholeRenderer(Protocol):
    """What a choice is written with: the whole answer of one task, and an error."""

    def whole(self, result: TaskResult) -> dict[str, Any]: ...
    def error(self, status: int, message: str) -> dict[str, Any]: ...


async def submit_choices(service: GatewayService, tracker: Tracker, n: int, **kwargs: Any) -> list[TaskHandle]:
    """``n`` tasks of the same request. If one submit is refused, those already made are cancelled
    and the refusal is raised (one request, one answer)."""
    handles: list[TaskHandle] = []
    try:
        for _ in range(n):
            handles.append(await submit(service, tracker, **kwargs))
    except BaseException:
        for handle in handles:
            handle.cancel()
        raise
    return handles


def merge_choices(bodies: list[dict[str, Any]]) -> dict[str, Any]:
    """One body from each task's whole answer: the first one's id and model, every choice indexed in
    order, the usage summed, and every node that served in ``hydra.nodes``."""
    merged = dict(bodies[0])
    merged["choices"] = [{**body["choices"][0], "index": i} for i, body in enumerate(bodies)]
    usage: dict[str, int] = {}
    for body in bodies:
        for key, value in (body.get("usage") or {}).items():
            if isinstance(value, int):
                usage[key] = usage.get(key, 0) + value
    merged["usage"] = usage
    merged["hydra"] = {"nodes": [n for body in bodies for n in body.get("hydra", {}).get("nodes", [])]}
    return merged


class ChoicesResponse:
    """The ASGI response of a request with n > 1: waits for every task, then writes one body."""

    def __init__(self, handles: list[TaskHandle], renderers: Sequence[WholeRenderer], *,
                 on_finish: Callable[[TaskHandle, TaskResult | None], None]) -> None:
        self.handles = handles
        self.renderers = renderers  # one per handle: each choice is written by its own
        self.on_finish = on_finish

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        watcher = asyncio.ensure_future(self._watch_disconnect(receive))
        results: list[TaskResult | None] = [None] * len(self.handles)
        try:
            results = list(await self._results())
            failed = [r for r in results if r is not None and r.status is not TaskStatus.DONE]
            # the failure that ended the request, not the choices cancelled because of it
            failed.sort(key=lambda r: r.failure is FailureKind.CANCELLED)
            if not failed:
                await _send_json(send, 200, merge_choices([renderer.whole(r) for renderer, r
                                                           in zip(self.renderers, results, strict=True) if r]))
            else:
                status = failure_status(failed[0])
                await _send_json(send, status, self.renderers[0].error(status, failure_message(failed[0])))
        except OSError:
            pass  # the client went away while we wrote
        finally:
            watcher.cancel()
            for handle, result in zip(self.handles, results, strict=True):
                if not handle.done():
                    handle.cancel()
                self.on_finish(handle, result)

    async def _results(self) -> tuple[TaskResult, ...]:
        """Every task's result; the first to fail cancels the others (their choice is moot)."""
        pending = {asyncio.ensure_future(h.aresult()): i for i, h in enumerate(self.handles)}
        out: list[TaskResult | None] = [None] * len(self.handles)
        try:
            while pending:
                done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for future in done:
                    result = out[pending.pop(future)] = future.result()
                    if result.status is not TaskStatus.DONE:
                        for handle in self.handles:
                            handle.cancel()
        finally:
            for future in pending:
                future.cancel()
        return tuple(r for r in out if r is not None)

    async def _watch_disconnect(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                for handle in self.handles:
                    handle.cancel()
                return


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data, "more_body": False})
