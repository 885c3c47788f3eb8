"""The first half of a generation request: admission. Its errors (``GatewayError`` and the 4xx/5xx a
refusal becomes), the bounded JSON body, the X-Hydra-* headers, the model asked for, and the submit.

``service.asubmit`` waits for the task's history row without a thread (the rows of all waiting
requests are committed together); a request with a long text is submitted on a small pool of the
gateway's own instead (``SUBMIT_THREADS``), so that classifying it does not hold the event loop.
The second half, streaming the answer, is stream.py's.
"""
from __future__ import annotations

import asyncio
from collections.abc import Mapping
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.requests import Request

from hydra.gateway.service_api import GatewayService
from hydra.gateway.validate import parse_body
from hydra.history import HistoryUnavailableError
from hydra.sollol import TaskHandle, TaskResult
from hydra.sollol.errors import ConfigError, HydraError, QueueFullError, ShutdownError, TaskError
from hydra.sollol.types import RoutingMode
from hydra.sollol.validation import FieldError

MAX_BODY_BYTES = 1 << 20
# Threads for service.submit. It is mostly Python (holding the GIL) and its history write is serialized,
# so more threads than this only queue; a bounded pool of its own also keeps a burst of requests from
# spawning a thread each, as anyio's shared pool (40) would.
SUBMIT_THREADS = 4
INLINE_SUBMITS = 128  # submits on the event loop waiting for their rows at once (one group commit); more wait
INLINE_SUBMIT_CHARS = 2_000  # text up to this is submitted on the event loop: classifying it takes a few ms at most


class GatewayError(Exception):
    """An HTTP error the gateway answers with, in the shape of the API that was called."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error",
                 param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.param = param  # the field a 400 is about (OpenAI's error.param)


def invalid_request(exc: GatewayError | ValueError) -> GatewayError:
    """A request the validation refused (validate.py), as the 400 to answer; a GatewayError as it is."""
    if isinstance(exc, GatewayError):
        return exc
    return GatewayError(400, str(exc), param=exc.field if isinstance(exc, FieldError) else None)


def refusal_as_http_error(exc: HydraError | ValueError) -> GatewayError:
    """A submit the engine refused, as the HTTP error to answer (one boundary, as client.py has for
    the nodes' errors): the caller's mistake is 400, a full or closed engine 503, and so is a
    history that cannot record the task (its message starts "history unavailable: ")."""
    if isinstance(exc, HistoryUnavailableError):
        return GatewayError(503, str(exc), "service_unavailable")
    if isinstance(exc, (TaskError, ConfigError, ValueError)):
        return GatewayError(400, str(exc))
    if isinstance(exc, (QueueFullError, ShutdownError)):
        return GatewayError(503, str(exc), "service_unavailable")
    return GatewayError(500, str(exc), "server_error")



async def read_json(request: Request, limit: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """The body as a JSON object; 413 past ``limit`` bytes (read no further), 400 when not a JSON object
    or not strict JSON (validate.parse_body)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise GatewayError(413, f"request body larger than {limit} bytes")
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > limit:
            raise GatewayError(413, f"request body larger than {limit} bytes")
    try:
        return parse_body(bytes(body))
    except ValueError as exc:  # BodyError, FieldError (validate.py)
        raise invalid_request(exc) from None


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
            if not raw.isascii():  # int() reads other scripts' digits ("５")
                raise ValueError(raw)
            priority = int(raw)
        except ValueError:
            raise GatewayError(400, f"X-Hydra-Priority must be an integer from 1 to 10, got {raw!r}") from None
        mode = request.headers.get("x-hydra-mode", "").strip().lower() or None
        task_type = request.headers.get("x-hydra-task-type", "").strip().lower() or None
        return cls(mode=mode, priority=priority, task_type=task_type)


class Incoming:
    """One generation request being read: what is known of it so far also counts a refusal
    (by the model asked for and the mode) when a later step refuses it. Only names the gateway
    knows become metric labels (an installed model, "auto", a routing mode; anything else "other"):
    a client that sends random names must not grow the metrics without bound."""

    def __init__(self) -> None:
        self.routing: Routing | None = None
        self.requested: Any = None
        self.model_label = ""

    async def read(self, service: GatewayService, request: Request) -> tuple[Routing, dict[str, Any], str | None]:
        """The X-Hydra-* headers, the JSON body and the resolved model; GatewayError when one is bad."""
        self.routing = routing = Routing.from_headers(request)
        body = await read_json(request)
        self.requested = body.get("model")
        self.model_label = "other" if self.requested not in (None, "") else ""
        model = resolve_model(service, self.requested)
        self.model_label = model or ("auto" if self.requested else "")
        return routing, body, model

    def refused(self, tracker: Tracker, api: str, exc: GatewayError) -> None:
        mode = self.routing.mode if self.routing else None
        if mode is not None and mode not in _MODES:
            mode = "other"
        tracker.refused(api, self.model_label, mode, exc.status)


_MODES = frozenset(m.value for m in RoutingMode)


def resolve_model(service: GatewayService, name: Any) -> str | None:
    """None for tier selection ("auto" or empty); the installed name otherwise; 404 in Ollama's words."""
    if name is not None and not isinstance(name, str):
        raise GatewayError(400, "model must be a string")
    name = (name or "").strip()
    if name.lower() in ("", "auto"):
        return None
    # has_healthy_node/has_model, not models()/snapshot(): those build the whole cluster snapshot
    # (per-node statistics included) on the event loop for every request, ~7x the cost for one node.
    if not service.has_healthy_node():
        raise GatewayError(503, "no healthy node: every node is down or not yet polled", "service_unavailable")
    for candidate in (name, f"{name}:latest"):
        if service.has_model(candidate):
            return candidate
    raise GatewayError(404, f'model "{name}" not found, try pulling it first', "not_found_error")


class Tracker(Protocol):
    """Who hears of each generation request: open tasks (cancelled when the gateway stops) and metrics,
    and where ``service.submit`` runs."""

    @property
    def submits(self) -> Executor: ...

    @property
    def admitting(self) -> asyncio.Semaphore: ...

    def started(self, handle: TaskHandle) -> None: ...
    def finished(self, api: str, handle: TaskHandle, result: TaskResult | None, started: float) -> None: ...
    def refused(self, api: str, model: Any, mode: str | None, status: int) -> None: ...


async def submit(service: GatewayService, tracker: Tracker, **kwargs: Any) -> TaskHandle:
    """The task submitted, once history has its row; engine refusals become HTTP errors. A request of
    ordinary size is submitted on the event loop (``service.asubmit``: a hop to a thread and back cost
    more than the submit itself, and the wait for the row takes no thread, so the rows of every waiting
    request are committed together); a long one on the submit pool, where classifying its text cannot
    stall every other stream."""
    if _text_chars(kwargs) <= INLINE_SUBMIT_CHARS:
        # A burst of requests would otherwise run every submit back to back before any stream is served.
        async with tracker.admitting:
            try:
                handle = await service.asubmit(**kwargs, source="gateway")  # /metrics counts tasks by source
            except (HydraError, ValueError) as exc:
                raise refusal_as_http_error(exc) from None
        tracker.started(handle)
        return handle

    def run() -> TaskHandle:
        handle = service.submit(**kwargs, source="gateway")  # /metrics counts tasks by source
        tracker.started(handle)
        return handle

    future = tracker.submits.submit(run)
    try:
        return await asyncio.wrap_future(future)
    except (HydraError, ValueError) as exc:
        raise refusal_as_http_error(exc) from None
    except asyncio.CancelledError:
        future.add_done_callback(_cancel_orphan)  # the submit may still be running: its task has no reader
        raise


def _text_chars(fields: Mapping[str, Any]) -> int:
    """About how much text a submit reads (the classifier and the reasoning engine scan it)."""
    prompt, messages = fields.get("prompt"), fields.get("messages")
    size = len(prompt) if isinstance(prompt, str) else 0
    for message in messages if isinstance(messages, list) else ():
        content = message.get("content") if isinstance(message, dict) else None
        size += len(content) if isinstance(content, str) else len(str(content or ""))
    return size


def _cancel_orphan(future: Future[TaskHandle]) -> None:
    if not future.cancelled() and future.exception() is None:
        future.result().cancel()
