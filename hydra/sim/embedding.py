"""``/api/embed`` and ``/api/embeddings`` of a simulated node: deterministic unit vectors at a simulated speed.

A vector is a sum of one dense pseudo-random vector per word (SHAKE-256 of the model's name and the word),
normalised to length 1. So a text always has the same vector on every node that has the model (a
failover answers alike), different models give different vectors, and texts that share words point in
similar directions: retrieval over them behaves like the real thing, roughly.

Timing: the request takes a slot like a generation (FIFO), loads the model if cold, then reads the
tokens at the node's prefill speed (every delay times ``time_scale``); ``total_duration`` and
``load_duration`` are simulated nanoseconds, as in generation.py.

Errors are Ollama's: a chat model asked to embed, an embedding model asked to chat or generate, input
longer than the context with ``truncate: false``, an input that is not a string or a list of strings.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from typing import Any

from hydra.sim import textgen
from hydra.sim.engine import SimEngine
from hydra.sim.models import NodeProfile, SimModel
from hydra.sim.request import RequestError, find_model, parse_keep_alive

ROUTES = {"/api/embed": False, "/api/embeddings": True}  # path -> legacy (prompt in, "embedding" out)?


def generation_refusal(chat: bool, body: bytes, profile: NodeProfile) -> RequestError | None:
    """Ollama's 400 for a chat or generate request to an embedding model (None: let it through)."""
    try:
        request = json.loads(body or b"null")
    except ValueError:
        return None  # generation.py answers a body that is not JSON
    name = request.get("model") if isinstance(request, dict) else None
    model = profile.model(name) if isinstance(name, str) and name.strip() else None
    if model is None or not model.embedding:
        return None
    return RequestError(400, f"{json.dumps(name)} does not support {'chat' if chat else 'generate'}")


def handle(legacy: bool, raw_body: bytes, engine: SimEngine) -> dict[str, Any]:
    """The answer to one embed request; RequestError with Ollama's status and words when it is refused.
    Busy, OutOfMemory and Stopped come from the engine as in generation.py."""
    body = _body(raw_body)
    label, model = find_model(body, engine.profile)
    texts = _texts(body, legacy)
    keep_alive_s = parse_keep_alive(body.get("keep_alive"))
    truncate = body.get("truncate", True) is not False
    dimensions = _dimensions(body.get("dimensions"))
    if not model.embedding:
        raise RequestError(400, f"{label} does not support embedding")
    started = time.monotonic()
    engine.acquire_slot()
    try:
        load_s = engine.acquire_model(model, keep_alive_s)
        try:
            counted = [_tokens(text, model, truncate) for text in texts]
            tokens = sum(n for n, _ in counted)
            engine.sleep(tokens / engine.profile.prefill_tps(model) if tokens else 0.0)
            vectors = [embed_text(model, text, dimensions) for _, text in counted]
        finally:
            engine.release_model(model, keep_alive_s)
    finally:
        engine.release_slot()
    if legacy:
        return {"embedding": vectors[0] if vectors else []}
    total_s = (time.monotonic() - started) / engine.time_scale
    return {"model": label, "embeddings": vectors, "total_duration": int(max(total_s, load_s) * 1e9),
            "load_duration": int(load_s * 1e9), "prompt_eval_count": tokens}


def embed_text(model: SimModel, text: str, dimensions: int | None = None) -> list[float]:
    """The model's unit vector for ``text`` (its first ``dimensions``, normalised again, when asked)."""
    size = model.embedding_length
    vector = [0.0] * size
    words = text.lower().split() or [text]  # no words: a vector of its own, from the whole text
    for word in words:
        for i, byte in enumerate(hashlib.shake_256(f"{model.name}\0{word}".encode()).digest(size)):
            vector[i] += byte - 127.5
    if dimensions is not None and 0 < dimensions < size:
        vector = vector[:dimensions]
    return _unit(vector)


def _unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector))
    if norm == 0.0:  # every dimension cancelled out exactly (words whose bytes mirror): along the first axis
        return [1.0] + [0.0] * (len(vector) - 1)
    return [x / norm for x in vector]


def _body(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        raise RequestError(400, "missing request body")
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise RequestError(400, f"invalid JSON in request body: {exc}") from None
    if not isinstance(body, dict):
        raise RequestError(400, "invalid request body: expected a JSON object")
    return body


def _texts(body: dict[str, Any], legacy: bool) -> list[str]:
    """Ollama's input: a string (empty: none, the model only loads) or a list of strings."""
    value = body.get("prompt") if legacy else body.get("input")
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    if not legacy and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise RequestError(400, "invalid input type")


def _dimensions(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(400, "json: cannot unmarshal into Go struct field EmbedRequest.dimensions of type int")
    return value


def _tokens(text: str, model: SimModel, truncate: bool) -> tuple[int, str]:
    """(tokens read, the text embedded): a text past the model's context is cut to it, or refused."""
    count = textgen.prompt_token_count([text]) if text.split() else 1
    if count <= model.context_length:
        return count, text
    if not truncate:
        raise RequestError(400, "the input length exceeds the context length")
    words = text.split()[: int(model.context_length / 1.3)]  # textgen counts ~1.3 tokens a word
    return model.context_length, " ".join(words)
