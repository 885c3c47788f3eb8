"""Model management on a simulated node, in Ollama's shapes: /api/pull, /api/delete, /api/copy,
/api/create, /api/push and /api/blobs/<digest> (HEAD and POST).

A pull downloads from a pretend library (the catalogue of ``presets``, what the node could fetch
from ollama.com) at ``PULL_BYTES_PER_S`` simulated, so a 2 GB model takes ~10 simulated seconds
(half a second at the tests' time scale): Ollama's progress lines ("pulling manifest", "pulling
<digest>" with completed/total, "verifying sha256 digest", "writing manifest", "success"), then
the model is in /api/tags. A name the library does not have fails as Ollama's does ("pull model
manifest: file does not exist"). Delete, copy and create change the node's model list; a push
pretends to upload (there is no registry) and, like ollama.com, refuses a name without a
namespace. Blobs are kept as digests only (their bytes are checked, then dropped).

Installed models are the node's disk: they survive kill/restart (the profile does), as Ollama's do.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import threading
from collections.abc import Callable
from typing import Any

from hydra.sim.engine import SimEngine, Stopped
from hydra.sim.models import NodeProfile, SimModel, normalize_name
from hydra.sim.presets import CATALOG
from hydra.sim.presets import model as catalogue_model
from hydra.sim.request import MODEL_OR_NAME, RequestError, find_model, installed_model, requested_model
from hydra.sim.wire import Wire

PULL_BYTES_PER_S = 200e6        # simulated download speed
PROGRESS_LINES = 20             # "pulling <digest>" lines per large layer
SMALL_LAYERS = (("template", 1_429), ("license", 11_357), ("params", 182))
UNKNOWN_MANIFEST = "pull model manifest: file does not exist"
PUSH_NAMESPACE = "you are not authorized to push to this namespace, create the model under a namespace you own"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}\Z")
# One lock for every simulated node's model list and blobs: changes are rare, reads copy the list.
_lock = threading.Lock()

Handler = Callable[[NodeProfile, SimEngine, dict[str, Any], Wire], None]


def routes() -> dict[tuple[str, str], Handler]:
    """(method, path) -> handler, for the node's dispatch (blobs are matched by prefix: ``blob``)."""
    return {("POST", "/api/pull"): pull, ("DELETE", "/api/delete"): delete, ("POST", "/api/copy"): copy,
            ("POST", "/api/create"): create, ("POST", "/api/push"): push}


def handle(method: str, path: str, body: bytes, profile: NodeProfile, engine: SimEngine, wire: Wire) -> bool:
    """Answer a management request; False when ``method path`` is not one (the caller 404s)."""
    if path.startswith("/api/blobs/") and method in ("HEAD", "POST"):
        blob(method, path.removeprefix("/api/blobs/"), body, profile, wire)
        return True
    handler = routes().get((method, path))
    if handler is None:
        return False
    try:
        request = json.loads(body or b"{}")
    except ValueError as exc:
        wire.error(400, f"invalid JSON in request body: {exc}")
        return True
    if not isinstance(request, dict):
        wire.error(400, "the request body must be a JSON object")
        return True
    try:
        handler(profile, engine, request, wire)
    except RequestError as exc:  # raised only by handlers that have sent nothing yet (delete, copy)
        wire.error(exc.status, exc.message)
    except Stopped:
        wire.abort()  # killed mid-transfer: the stream is cut, as a dead Ollama's is
    return True


def library_model(name: str) -> SimModel | None:
    """What a pull of ``name`` would fetch, or None when the library has no such model."""
    name = normalize_name(name)
    return catalogue_model(name) if name in CATALOG else None


def _install(profile: NodeProfile, model: SimModel) -> None:
    with _lock:  # a new list, so a reader iterating the old one is not disturbed
        profile.models = [m for m in profile.models if m.name != model.name] + [model]


class _Progress:
    """Ollama's progress stream, or (``stream: false``) only its last line or its error."""

    def __init__(self, wire: Wire, stream: bool) -> None:
        self.wire = wire
        self.stream = stream
        self.started = False

    def line(self, obj: dict[str, Any]) -> None:
        if self.stream:
            self.wire.chunk(obj)
            self.started = True

    def fail(self, message: str, status: int = 500) -> None:
        """Before the first line, a refusal with ``status``; after it, Ollama's error line."""
        if self.started:
            self.wire.chunk({"error": message})
            self.wire.end_stream()
        else:
            self.wire.error(status, message)

    def succeed(self) -> None:
        if self.stream:
            self.wire.chunk({"status": "success"})
            self.wire.end_stream()
        else:
            self.wire.send_json(200, {"status": "success"})


def _layers(model: SimModel) -> list[tuple[str, int]]:
    """(digest, bytes) of a model's layers: the weights, then the small files."""
    weights = ("sha256:" + model.digest, model.weights_bytes)
    small = [("sha256:" + hashlib.sha256(f"{model.name}/{kind}".encode()).hexdigest(), size)
             for kind, size in SMALL_LAYERS]
    return [weights, *small]


def _transfer(progress: _Progress, engine: SimEngine, verb: str, digest: str, total: int) -> None:
    """One layer's "pulling <digest>" (or "pushing") lines, at the simulated speed."""
    status = f"{verb} {digest.removeprefix('sha256:')[:12]}"
    steps = PROGRESS_LINES if total > 1_000_000 else 1
    progress.line({"status": status, "digest": digest, "total": total, "completed": 0})
    for step in range(1, steps + 1):
        engine.sleep(total / PULL_BYTES_PER_S / steps)
        progress.line({"status": status, "digest": digest, "total": total, "completed": total * step // steps})


def _progress_and_name(request: dict[str, Any], wire: Wire) -> tuple[_Progress, str | None]:
    """The answer's progress stream (or one reply when ``stream`` is false) and the model the request
    names; None once the refusal is sent."""
    progress = _Progress(wire, request.get("stream") is not False)
    try:
        return progress, requested_model(request, MODEL_OR_NAME).strip()
    except RequestError as exc:
        progress.fail(exc.message, exc.status)
        return progress, None


def _installed(profile: NodeProfile, name: str, progress: _Progress) -> SimModel | None:
    """The node's model ``name``, or None once the refusal is sent (a line or a status, as far as it got)."""
    try:
        return installed_model(profile, name)
    except RequestError as exc:
        progress.fail(exc.message, exc.status)
        return None


def pull(profile: NodeProfile, engine: SimEngine, request: dict[str, Any], wire: Wire) -> None:
    progress, name = _progress_and_name(request, wire)
    if name is None:
        return
    progress.line({"status": "pulling manifest"})
    model = library_model(name)
    if model is None:
        progress.fail(UNKNOWN_MANIFEST)
        return
    for digest, size in _layers(model):
        _transfer(progress, engine, "pulling", digest, size)
    progress.line({"status": "verifying sha256 digest"})
    progress.line({"status": "writing manifest"})
    _install(profile, model)
    progress.succeed()


def push(profile: NodeProfile, engine: SimEngine, request: dict[str, Any], wire: Wire) -> None:
    progress, name = _progress_and_name(request, wire)
    if name is None:
        return
    progress.line({"status": "retrieving manifest"})
    model = _installed(profile, name, progress)
    if model is None:
        return
    if "/" not in model.name:
        progress.fail(PUSH_NAMESPACE, 401)
        return
    for digest, size in _layers(model):
        _transfer(progress, engine, "pushing", digest, size)
    progress.line({"status": "pushing manifest"})
    progress.succeed()


def delete(profile: NodeProfile, engine: SimEngine, request: dict[str, Any], wire: Wire) -> None:
    _, model = find_model(request, profile, fields=MODEL_OR_NAME)
    engine.unload(model)
    with _lock:
        profile.models = [m for m in profile.models if m.name != model.name]
    wire.send_body(200, "application/json; charset=utf-8", b"")  # Ollama answers a delete with no body


def copy(profile: NodeProfile, engine: SimEngine, request: dict[str, Any], wire: Wire) -> None:
    source, destination = request.get("source"), request.get("destination")
    if not (isinstance(source, str) and source.strip() and isinstance(destination, str) and destination.strip()):
        wire.error(400, "source and destination are required")
        return
    model = installed_model(profile, source)
    _install(profile, dataclasses.replace(model, name=normalize_name(destination)))
    wire.send_body(200, "application/json; charset=utf-8", b"")


def create(profile: NodeProfile, engine: SimEngine, request: dict[str, Any], wire: Wire) -> None:
    progress, name = _progress_and_name(request, wire)
    if name is None:
        return
    base_name, files = request.get("from"), request.get("files") or {}
    if not base_name and not files:
        progress.fail("neither 'from' or 'files' was specified", 400)
        return
    if not isinstance(files, dict) or not all(isinstance(d, str) for d in files.values()):
        progress.fail("files must map file names to sha256 digests", 400)
        return
    progress.line({"status": "gathering model components"})
    base = _installed(profile, str(base_name), progress) if base_name else None
    if base_name and base is None:
        return
    missing = sorted(d for d in files.values() if d not in profile.blobs)
    if missing:
        progress.fail(f"blob {missing[0]} not found: upload it first (POST /api/blobs/{missing[0]})", 400)
        return
    for digest in files.values():
        progress.line({"status": f"using existing layer {digest}"})
    if base is not None:
        progress.line({"status": f"using existing layer sha256:{base.digest}"})
    for field in ("system", "template", "license", "parameters", "messages"):
        if request.get(field):
            layer = hashlib.sha256(json.dumps(request[field], sort_keys=True).encode()).hexdigest()
            progress.line({"status": f"creating new layer sha256:{layer}"})
    progress.line({"status": "writing manifest"})
    made = (dataclasses.replace(base, name=normalize_name(name)) if base is not None
            else SimModel(name=name, size_b=1.0, family="llama"))
    _install(profile, made)
    progress.succeed()


def blob(method: str, digest: str, body: bytes, profile: NodeProfile, wire: Wire) -> None:
    if not _DIGEST.match(digest):
        wire.error(400, f"invalid digest {digest[:80]!r}: expected sha256:<64 hex digits>")
        return
    if method == "HEAD":
        wire.send_body(200 if digest in profile.blobs else 404, "text/plain; charset=utf-8", b"")
        return
    actual = "sha256:" + hashlib.sha256(body).hexdigest()
    if actual != digest:
        wire.error(400, f"digest mismatch, expected {digest!r}, got {actual!r}")
        return
    with _lock:
        profile.blobs.add(digest)
    wire.send_body(201, "text/plain; charset=utf-8", b"")
