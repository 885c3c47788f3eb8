"""How a node's failures read: the one place foreign exceptions (httpx, ollama, json) and HTTP
error statuses become ``NodeError`` subclasses, each with a message that says what failed and what
to do. client.py calls ``node_error_from`` around every request; nothing here talks to a node.
"""
from __future__ import annotations

import http.client
import json
import math
import re
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

from .errors import (
    CapabilityMissingError,
    ModelNotFoundError,
    NodeAuthError,
    NodeBackoffError,
    NodeError,
    NodeProtocolError,
    NodeTimeoutError,
    NodeUnavailableError,
    RequestRejectedError,
)

# Ollama's words for a model it does not have: 'model "x" not found, try pulling it first', "model 'x' not found"
_MODEL_NOT_FOUND = re.compile(r"\bmodel\b.*\bnot found\b", re.IGNORECASE | re.DOTALL)
# Ollama's words when a model without vision is sent images: '"llama3.2:3b" does not support images'
_NO_VISION = re.compile(r"does not support (images|vision)", re.IGNORECASE)
MAX_RETRY_AFTER_S = 600.0  # a Retry-After longer than this is taken as this: the node is polled again by then

def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header: a number of seconds or an HTTP date; None when absent or not
    readable. Bounded to 0..MAX_RETRY_AFTER_S."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text) if text.isascii() else math.nan
    except ValueError:
        try:
            seconds = parsedate_to_datetime(text).timestamp() - (time.time() if now is None else now)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def _response_headers(exc: BaseException) -> Mapping[str, str]:
    """The headers of the HTTP answer behind an ollama.ResponseError (the client raises it from the
    httpx error, which stays its ``__context__``)."""
    import httpx

    context = exc.__context__
    return context.response.headers if isinstance(context, httpx.HTTPStatusError) else {}


def node_error_from(exc: BaseException, node: str, url: str, *, during: str,
                    headers: Mapping[str, str] | None = None) -> NodeError:
    """The NodeError that any exception of the client stack (httpx, ollama, json) stands for: the one
    place that knows them. ``headers``: the HTTP answer's, when the caller has them (else they are
    looked for behind the exception)."""
    import httpx
    import ollama

    from .node_stream import NodeStatusError, StreamErrorLine

    if isinstance(exc, NodeError):
        return exc
    if isinstance(exc, ollama.ResponseError):
        return _from_status(exc, node, url, during, _response_headers(exc) if headers is None else headers)
    if isinstance(exc, NodeStatusError):
        return _from_status(ollama.ResponseError(exc.text, exc.status), node, url, during, exc.headers)
    if isinstance(exc, StreamErrorLine):
        return _from_status(ollama.ResponseError(exc.text), node, url, during, {})
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, http.client.IncompleteRead)):
        return NodeUnavailableError(f"dropped the connection {during} ({exc or type(exc).__name__})", node=node)
    if isinstance(exc, TimeoutError):  # the socket's read timeout (node_stream.py)
        return NodeTimeoutError(f"timed out {during} ({type(exc).__name__})", node=node)
    if isinstance(exc, http.client.HTTPException):
        return NodeProtocolError(f"did not answer in HTTP {during} ({type(exc).__name__}) — is {url} an Ollama "
                                 "server?", node=node)
    if isinstance(exc, (ConnectionError, httpx.ConnectError)):
        return NodeUnavailableError(f"cannot connect to {url} {during}: is Ollama running there?", node=node)
    if isinstance(exc, httpx.TimeoutException):
        return NodeTimeoutError(f"timed out {during} ({type(exc).__name__})", node=node)
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError, httpx.CloseError)):
        return NodeUnavailableError(f"dropped the connection {during} ({exc or type(exc).__name__})", node=node)
    if isinstance(exc, json.JSONDecodeError):
        return NodeProtocolError(f"sent a line that is not JSON {during} — is {url} an Ollama server?", node=node)
    if isinstance(exc, httpx.HTTPError):
        return NodeUnavailableError(f"HTTP failure {during}: {exc or type(exc).__name__}", node=node)
    if isinstance(exc, (ValueError, TypeError, KeyError, AttributeError)):
        # pydantic validation of a response that is JSON but not Ollama's shape
        return NodeProtocolError(f"sent a response {during} that is not Ollama's API: {exc}", node=node)
    return NodeUnavailableError(f"unexpected failure {during}: {type(exc).__name__}: {exc}", node=node)


def _from_status(exc: Any, node: str, url: str, during: str, headers: Mapping[str, str]) -> NodeError:
    """An HTTP error status (or an error line in a stream: no status) as the NodeError it means."""
    status = exc.status_code if exc.status_code and exc.status_code > 0 else None
    message = str(exc.error).strip()
    if looks_like_html(message):
        return NodeProtocolError(f"answered {during} with an HTML page, not the Ollama API — "
                                 f"is {url} really an Ollama server?", node=node, status=status)
    if status is None:
        return NodeUnavailableError(f"reported an error {during}: {message}", node=node)
    if status == 503:
        return NodeUnavailableError(f"is busy (503) {during}: {message}", node=node, status=status)
    if status >= 500:
        return NodeUnavailableError(f"failed {during} with HTTP {status}: {message}", node=node, status=status)
    if status == 429:
        wait = parse_retry_after(headers.get("retry-after"))
        after = f", retry after {wait:g} s" if wait is not None else ""
        return NodeBackoffError(f"asked Hydra to back off {during} (HTTP 429{after}): {message}", node=node,
                                retry_after_s=wait)
    if status in (401, 403):
        return NodeAuthError(f"refuses Hydra's credentials {during} (HTTP {status}): {message}", node=node,
                             status=status)
    if status == 408:
        return NodeUnavailableError(f"refused {during} with HTTP {status}: {message}", node=node, status=status)
    if status == 404 and _MODEL_NOT_FOUND.search(message):
        return ModelNotFoundError(f"does not have the model {during} (HTTP 404): {message}", node=node, status=status,
                                  detail=message)
    if status == 400 and _NO_VISION.search(message):  # this node's model cannot see: another node's may
        return CapabilityMissingError(f"cannot take images {during} (HTTP 400): {message}", node=node, status=status,
                                      detail=message)
    return RequestRejectedError(f"rejected the request {during} (HTTP {status}): {message}", node=node, status=status,
                                detail=message)


def looks_like_html(text: str) -> bool:
    head = text.lstrip()[:200].lower()
    return head.startswith(("<!doctype html", "<html")) or "<body" in head
