"""The gateway's HTTP status for a task that ended without an answer: from its FailureKind, one table."""
from __future__ import annotations

import pytest

from hydra.gateway.admission import refusal_as_http_error
from hydra.gateway.openai_api import OpenAIRenderer
from hydra.gateway.stream import FAILURE_STATUS, UNKNOWN_FAILURE_STATUS, failure_status
from hydra.sollol.errors import ConfigError, HydraError, QueueFullError, ShutdownError, TaskError
from hydra.sollol.types import FailureKind, TaskResult, TaskStatus

EXPECTED = {FailureKind.NO_ROUTE: 503, FailureKind.REJECTED: 400, FailureKind.NODE_FAILED: 502,
            FailureKind.DEADLINE: 504, FailureKind.CANCELLED: 499, FailureKind.SHUTDOWN: 503,
            FailureKind.INTERRUPTED: 503, FailureKind.INTERNAL: 500}


def test_the_table_names_every_kind() -> None:
    assert set(FAILURE_STATUS) == set(FailureKind)


@pytest.mark.parametrize("kind", list(FailureKind), ids=lambda k: k.value)
@pytest.mark.parametrize("error", ["no node could run this task: no model", "HTTP 400: bad request", None])
def test_each_kind_has_its_status_whatever_the_text(kind: FailureKind, error: str | None) -> None:
    status = TaskStatus.CANCELLED if kind is FailureKind.CANCELLED else TaskStatus.FAILED
    assert failure_status(TaskResult("t", status, error=error, failure=kind)) == EXPECTED[kind]


def test_a_result_that_names_no_kind_is_blamed_on_the_nodes() -> None:
    assert failure_status(TaskResult("t", TaskStatus.FAILED, error="no node could run it")) == UNKNOWN_FAILURE_STATUS


@pytest.mark.parametrize(("exc", "status"), [
    (TaskError("no prompt"), 400), (ConfigError("mode", "x", "fast"), 400), (ValueError("bad"), 400),
    (QueueFullError("full"), 503), (ShutdownError("closed"), 503), (HydraError("other"), 500)])
def test_a_refused_submit_is_an_http_error(exc: HydraError | ValueError, status: int) -> None:
    error = refusal_as_http_error(exc)
    assert (error.status, error.message) == (status, str(exc))


def test_the_openai_error_type_follows_the_status() -> None:
    renderer = OpenAIRenderer("t", None, None, False)
    assert renderer.error(400, "refused")["error"]["type"] == "invalid_request_error"
    assert renderer.error(503, "no node")["error"]["type"] == "service_unavailable"
    assert renderer.error(502, "failed")["error"]["type"] == "server_error"
