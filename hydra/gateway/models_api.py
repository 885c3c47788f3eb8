"""The gateway's model-management routes, in Ollama's shapes: /api/pull, /api/delete, /api/copy,
/api/create, /api/push, /api/blobs/<digest> (HEAD and POST).

Where each goes (``model_ops`` chooses): the node an ``X-Hydra-Node`` header names (a name as in
/api/hydra/status; an unknown one is a 400 listing the names), else

- pull: every healthy node able to hold the model (its declared max_model_b and VRAM, the size
  from a node that has the model or else from its name), each node's progress lines streamed as
  they come, each with ``"node"``;
- delete: every node that has the model; copy: every node that has the source;
- create: every node that has ``from`` (a create from uploaded ``files`` goes where the blobs are:
  one node, named by the header unless the cluster has only one);
- push: one node that has the model; blobs: the named node (or the only one).

A node failing does not stop the others; the answer says which failed and why (``model_ops``).
After a pull, delete, copy or create, each node's model list is fetched again at once so routing
sees the change. With ``HYDRA_API_KEY`` set these need the key like every route but ``/``.
"""
from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from hydra.gateway import model_ops
from hydra.gateway.admission import GatewayError, read_json
from hydra.gateway.model_ops import NODE_HEADER, Outcome, Target, TargetError
from hydra.gateway.service_api import GatewayService

NDJSON = "application/x-ndjson"
SETTLE_S = 2.0        # how long an answer waits for routing to see the change (the monitor's fetch, ~ms)
SETTLE_POLL_S = 0.02
DIGEST = re.compile(r"sha256:[0-9a-f]{64}\Z")
# (request body, model) -> the nodes a request goes to when no X-Hydra-Node names one
Where = Callable[[dict[str, Any], str], list[Target]]


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _text(body: dict[str, Any], *fields: str) -> str | None:
    """The first of ``fields`` that holds a non-blank string, trimmed."""
    for name in fields:
        value = body.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _model_name(body: dict[str, Any]) -> str:
    model = _text(body, "model", "name")  # "name": the field's older spelling, which clients still send
    if model is None:
        raise GatewayError(400, "model is required")
    return model


def _headers(targets: Sequence[Target], model: str) -> dict[str, str]:
    return {"X-Hydra-Node": ",".join(t.name for t in targets), "X-Hydra-Model": model}


class ModelRoutes:
    def __init__(self, service: GatewayService) -> None:
        self.service = service
        self._http: httpx.AsyncClient | None = None  # made on first use, inside the server's event loop

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = model_ops.new_client()
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _named(self, request: Request) -> Target | None:
        return model_ops.named_target(self.service.node_specs(), request.headers.get(NODE_HEADER))

    async def _refresh(self, outcomes: Sequence[Outcome], model: str, *, present: bool) -> None:
        """Have each node's model list fetched now, and wait (bounded) until routing sees ``model``
        there (or, ``present=False``, no longer), so a chat right after a pull finds it."""
        for outcome in outcomes:
            self.service.refresh_models(outcome.node)
        changed = {o.node for o in outcomes if o.ok}
        deadline = time.monotonic() + SETTLE_S
        while changed and time.monotonic() < deadline:
            if model_ops.settled(self.service.snapshot(), changed, model, present=present):
                return
            await asyncio.sleep(SETTLE_POLL_S)

    # --- streamed: pull, create, push ---

    async def pull(self, request: Request) -> Response:
        return await self._progress(request, "/api/pull", "pull", self._pull_targets)

    async def push(self, request: Request) -> Response:
        return await self._progress(request, "/api/push", "push", self._push_targets, changes=False)

    async def create(self, request: Request) -> Response:
        return await self._progress(request, "/api/create", "create", self._create_targets)

    def _pull_targets(self, body: dict[str, Any], model: str) -> list[Target]:
        return model_ops.pull_targets(self.service.node_specs(), self.service.snapshot(), model)

    def _push_targets(self, body: dict[str, Any], model: str) -> list[Target]:
        holders = model_ops.holder_targets(self.service.node_specs(), self.service.snapshot(), model)
        return holders[:1]  # one upload is the push (a healthy holder first); another node's copy adds nothing

    def _create_targets(self, body: dict[str, Any], model: str) -> list[Target]:
        specs, snapshot = self.service.node_specs(), self.service.snapshot()
        if body.get("files") or body.get("adapters"):
            return [model_ops.sole_target(specs, snapshot, "a create from uploaded files")]
        base = body.get("from")
        if not isinstance(base, str) or not base.strip():
            raise TargetError(400, "neither 'from' or 'files' was specified")
        return model_ops.holder_targets(specs, snapshot, base.strip())

    async def _progress(self, request: Request, path: str, verb: str, where: Where, *,
                        changes: bool = True) -> Response:
        """A request whose answer is Ollama's progress stream, sent to the nodes ``where`` gives."""
        try:
            body = await read_json(request)
            model = _model_name(body)
            named = self._named(request)
            targets = [named] if named is not None else where(body, model)
        except (GatewayError, TargetError) as exc:
            return _error(exc.status, exc.message)
        what = f"{verb} {model}"
        headers = _headers(targets, model)
        if body.get("stream") is False:
            outcomes: list[Outcome] = []
            async for _ in model_ops.stream_all(self.http, targets, path, body, outcomes):
                pass
            if changes:
                await self._refresh(outcomes, model, present=True)
            status, answer = model_ops.summary(what, outcomes)
            return JSONResponse(answer, status_code=status, headers=headers)
        lines = self._lines(targets, path, body, what, model if changes else None)
        return StreamingResponse(lines, media_type=NDJSON, headers=headers)

    async def _lines(self, targets: Sequence[Target], path: str, body: dict[str, Any], what: str,
                     changed: str | None) -> AsyncIterator[bytes]:
        outcomes: list[Outcome] = []
        finished = False
        try:
            async for line in model_ops.stream_all(self.http, targets, path, body, outcomes):
                yield _line(line)
            finished = True
        finally:
            if changed is not None and not finished:  # the client left: a node may have finished meanwhile
                for outcome in outcomes:
                    self.service.refresh_models(outcome.node)
        if changed is not None:
            await self._refresh(outcomes, changed, present=True)
        yield _line(model_ops.summary(what, outcomes)[1])

    # --- plain: delete, copy ---

    async def delete(self, request: Request) -> Response:
        try:
            body = await read_json(request)
            model = _model_name(body)
            named = self._named(request)
            targets = [named] if named is not None else model_ops.holder_targets(
                self.service.node_specs(), self.service.snapshot(), model)
        except (GatewayError, TargetError) as exc:
            return _error(exc.status, exc.message)
        return await self._plain(targets, "DELETE", "/api/delete", {**body, "model": model}, f"delete {model}", model,
                                 present=False)

    async def copy(self, request: Request) -> Response:
        try:
            body = await read_json(request)
            source, destination = _text(body, "source"), _text(body, "destination")
            if source is None or destination is None:
                raise GatewayError(400, "source and destination are required")
            named = self._named(request)
            targets = [named] if named is not None else model_ops.holder_targets(
                self.service.node_specs(), self.service.snapshot(), source)
        except (GatewayError, TargetError) as exc:
            return _error(exc.status, exc.message)
        return await self._plain(targets, "POST", "/api/copy", {"source": source, "destination": destination},
                                 f"copy {source} to {destination}", destination, present=True)

    async def _plain(self, targets: Sequence[Target], method: str, path: str, body: dict[str, Any], what: str,
                     model: str, *, present: bool) -> Response:
        outcomes = await model_ops.call_all(self.http, targets, method, path, body)
        await self._refresh(outcomes, model, present=present)
        status, answer = model_ops.summary(what, outcomes)
        if status == 200:  # Ollama answers these with an empty 200; which nodes did it is in the headers
            return Response(b"", status_code=200, headers=_headers(targets, model))
        return JSONResponse(answer, status_code=status, headers=_headers(targets, model))

    # --- blobs ---

    async def blob(self, request: Request) -> Response:
        digest = request.path_params["digest"]
        if not DIGEST.match(digest):  # checked here: it becomes part of a URL on the node
            return _error(400, f"invalid digest {digest[:80]!r}: expected sha256:<64 hex digits>")
        try:
            target = self._named(request) or model_ops.sole_target(
                self.service.node_specs(), self.service.snapshot(), "a blob")
        except TargetError as exc:
            return _error(exc.status, exc.message)
        url = f"{target.base_url}/api/blobs/{digest}"
        auth = target.auth or httpx.USE_CLIENT_DEFAULT
        headers = {"X-Hydra-Node": target.name}
        try:
            if request.method == "HEAD":
                reply = await self.http.head(url, auth=auth)
                return Response(b"", status_code=reply.status_code, headers=headers)
            # Passed through as it arrives (a model file can be gigabytes), its length declared as the client did.
            length = request.headers.get("content-length")
            sent = {"Content-Length": length} if length is not None else {}
            reply = await self.http.post(url, content=request.stream(), headers=sent, auth=auth)
        except httpx.HTTPError as exc:
            return _error(502, f"node {target.name}: {model_ops.failure_reason(exc)}")
        if reply.status_code >= 400:
            return _error(reply.status_code, f"node {target.name}: {model_ops.error_text(reply.content, reply.status_code)}")
        return Response(b"", status_code=reply.status_code, headers=headers)
