"""The exception tree of the routing engine.

Every public call that can fail raises a ``HydraError`` with a message a user
can act on. Foreign exceptions (httpx, ollama) are translated in one place,
``node_errors.py`` (client.py raises its ``NodeError`` ``from exc``).

    HydraError
    ├── ConfigError             a setting has a value that is not allowed
    ├── TaskError               a task is malformed (bad priority, empty prompt, ...)
    ├── QueueFullError          the queue holds its maximum; submit later
    ├── ShutdownError           the router is closed or closing
    ├── TaskTimeoutError        waiting on a handle (result, stream) took longer than asked (also a TimeoutError)
    └── NodeError               one node failed a request (carries node, status)
        ├── NodeUnavailableError    connection refused/reset, DNS, 5xx, busy (503)
        ├── NodeTimeoutError        connect, first token or idle gap timed out
        ├── NodeProtocolError       the node does not speak Ollama's API (HTML, bad JSON)
        ├── NodeBackoffError        429: the node asks to be left alone for a while (Retry-After)
        ├── NodeAuthError           401/403: the node refuses Hydra's credentials
        └── RequestRejectedError    4xx caused by the request itself (bad option)
            ├── ModelNotFoundError      404: the node does not have the model (its list was stale)
            └── CapabilityMissingError  the node's model lacks what the request needs (vision for images)

``NodeError.counts_against_node`` tells the circuit breaker whether the failure
is the node's fault: not for RequestRejectedError (the request's), nor for
NodeBackoffError and NodeAuthError, which say something true of the node that
attempts.py acts on instead (a backoff, an exclusion until it accepts again).
A rejection keeps the node's HTTP status and its own words (``status``, ``detail``): the gateway
answers the client with them. ``node_specific`` says whether another node may accept the same
request (a model missing there, a model without vision there): then the next eligible node is
tried; any other 4xx ends the task at once, as every node would refuse it alike.

A task that ends without an answer is not an exception: its ``TaskResult``
says so, with ``status`` and a machine-readable ``failure`` (``FailureKind``:
no route, rejected, node failed, deadline, cancelled, interrupted, shutdown).
"""
from __future__ import annotations


class HydraError(Exception):
    """Base of every error Hydra raises on purpose."""


class ConfigError(HydraError, ValueError):
    """A setting has a value that is not allowed."""

    def __init__(self, variable: str, value: object, allowed: str) -> None:
        self.variable = variable
        self.value = value
        self.allowed = allowed
        super().__init__(f"{variable}={value!r} is not valid: expected {allowed}")


class TaskError(HydraError, ValueError):
    """A task is malformed; nothing was queued."""


class QueueFullError(HydraError):
    """The queue is full; retry when some tasks have finished."""


class ShutdownError(HydraError):
    """The router is closed; it accepts no more work."""


class TaskTimeoutError(HydraError, TimeoutError):
    """``result(timeout)`` or ``stream(timeout)`` gave up waiting; the task itself goes on."""


class NodeError(HydraError):
    """One node failed one request."""

    counts_against_node = True

    def __init__(self, message: str, *, node: str = "", status: int | None = None) -> None:
        self.node = node
        self.status = status
        prefix = f"node {node}: " if node else ""
        super().__init__(prefix + message)


class NodeUnavailableError(NodeError):
    """The node refused, dropped, errored (5xx) or said it is busy (503)."""


class NodeTimeoutError(NodeError):
    """Connecting, the first token or the gap between tokens took too long."""


class NodeProtocolError(NodeError):
    """The endpoint answered, but not in Ollama's API (HTML page, malformed JSON)."""


class NodeBackoffError(NodeError):
    """The node answered 429: busy for us, not broken. ``retry_after_s`` is its Retry-After, if it sent one."""

    counts_against_node = False

    def __init__(self, message: str, *, node: str = "", status: int | None = 429,
                 retry_after_s: float | None = None) -> None:
        super().__init__(message, node=node, status=status)
        self.retry_after_s = retry_after_s


class NodeAuthError(NodeError):
    """The node answered 401 or 403: it refuses the credentials Hydra sends (or sends none)."""

    counts_against_node = False


class RequestRejectedError(NodeError):
    """The node refused the request itself (4xx). ``detail``: the node's own message, for the client."""

    counts_against_node = False
    node_specific = False  # True: another node may accept the same request (see the module's docstring)

    def __init__(self, message: str, *, node: str = "", status: int | None = None, detail: str = "") -> None:
        super().__init__(message, node=node, status=status)
        self.detail = detail or message


class ModelNotFoundError(RequestRejectedError):
    """The node answered 404 for the model: it does not have it, whatever its last model list said."""

    node_specific = True


class CapabilityMissingError(RequestRejectedError):
    """The model on this node lacks a capability the request needs (its /api/show says so): images
    need "vision". Another node's copy of the model may have it, so the next eligible node is tried."""

    node_specific = True
