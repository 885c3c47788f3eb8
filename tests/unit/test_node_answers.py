"""Node answers with meaning: 429 (Retry-After), 401/403 and a model-404 become their own NodeErrors, none
charged to the breaker; what NodeState learns from them; and when a node that takes nothing now is due back."""
from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import ollama
import pytest

from hydra.sollol.client import MAX_RETRY_AFTER_S, node_error_from, parse_retry_after
from hydra.sollol.eligibility import due_back_in, why_unroutable
from hydra.sollol.errors import (
    ModelNotFoundError,
    NodeAuthError,
    NodeBackoffError,
    NodeError,
    NodeUnavailableError,
    RequestRejectedError,
)
from hydra.sollol.node import MISSING_MODEL_TTL_S, Circuit, NodeState
from hydra.sollol.types import ModelInfo, NodeSpec

URL = "http://127.0.0.9:11434"


def _answered(status: int, body: str, headers: dict[str, str] | None = None) -> ollama.ResponseError:
    """The error the ollama client raises for an HTTP error answer (from httpx's, as it does)."""
    request = httpx.Request("POST", URL + "/api/chat")
    response = httpx.Response(status, headers=headers, text=body, request=request)
    try:
        try:
            response.raise_for_status()
        except httpx.HTTPStatusError as exc:
            raise ollama.ResponseError(exc.response.text, exc.response.status_code) from None
    except ollama.ResponseError as error:
        return error
    raise AssertionError("no error")


def _mapped(status: int, body: str, headers: dict[str, str] | None = None) -> NodeError:
    return node_error_from(_answered(status, body, headers), "n", URL, during="before the first token")


@pytest.mark.parametrize("status, body, headers, kind, retry_after", [
    (429, '{"error": "slow down"}', {"Retry-After": "7"}, NodeBackoffError, 7.0),
    (429, '{"error": "slow down"}', {}, NodeBackoffError, None),
    (401, '{"error": "unauthorized"}', {}, NodeAuthError, None),
    (403, "forbidden", {}, NodeAuthError, None),
    (404, '{"error": "model \\"llama3:8b\\" not found, try pulling it first"}', {}, ModelNotFoundError, None),
    (404, "{\"error\": \"model 'x' not found\"}", {}, ModelNotFoundError, None),
    (404, "404 page not found", {}, RequestRejectedError, None),   # not a model: a route it does not have
    (400, '{"error": "invalid options"}', {}, RequestRejectedError, None),
    (408, '{"error": "timeout"}', {}, NodeUnavailableError, None),
    (503, '{"error": "server busy"}', {}, NodeUnavailableError, None),
])
def test_an_http_error_becomes_the_node_error_it_means(status, body, headers, kind, retry_after) -> None:
    error = _mapped(status, body, headers)
    assert type(error) is kind, error
    assert error.status == status and error.node == "n"
    if kind is NodeBackoffError:
        assert isinstance(error, NodeBackoffError) and error.retry_after_s == retry_after
    # Only real node faults count against the node; these say something of it, or of the request.
    assert error.counts_against_node is (kind is NodeUnavailableError)


def test_the_messages_say_what_the_node_meant() -> None:
    assert "asked Hydra to back off before the first token (HTTP 429, retry after 7 s): slow down" in str(
        _mapped(429, '{"error": "slow down"}', {"Retry-After": "7"}))
    assert "refuses Hydra's credentials" in str(_mapped(401, '{"error": "unauthorized"}'))
    assert "does not have the model" in str(_mapped(404, '{"error": "model \\"m\\" not found"}'))


@pytest.mark.parametrize("value, expected", [
    ("7", 7.0),
    (" 2.5 ", 2.5),
    ("0", 0.0),
    ("-3", 0.0),
    ("100000", MAX_RETRY_AFTER_S),
    ("inf", MAX_RETRY_AFTER_S),
    ("nan", None),
    ("soon", None),
    ("", None),
    (None, None),
    ("\uff17", None),  # a full-width 7: not an HTTP number
])
def test_retry_after_in_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_retry_after_as_an_http_date() -> None:
    now = time.time()
    when = format_datetime(datetime.fromtimestamp(now, UTC) + timedelta(seconds=30), usegmt=True)
    seconds = parse_retry_after(when, now=now)
    assert seconds is not None and 29.0 <= seconds <= 30.0
    past = format_datetime(datetime.fromtimestamp(now, UTC) - timedelta(hours=1), usegmt=True)
    assert parse_retry_after(past, now=now) == 0.0


# --- what NodeState learns ---

MODELS = {"m:7b": ModelInfo("m:7b", 7.0, 4_000_000_000), "small:1b": ModelInfo("small:1b", 1.0, 700_000_000)}


def _state() -> NodeState:
    state = NodeState(NodeSpec(url=URL, name="n", slots=2))
    state.poll_ok("0.12.0", dict(MODELS), {})
    return state


def test_a_backoff_keeps_work_away_until_it_ends() -> None:
    state = _state()
    state.back_off(3.0, "asked Hydra to back off (HTTP 429)")
    view = state.view()
    now = time.monotonic()
    assert view.backoff_until is not None and (why_unroutable(view, now) or "").startswith("backed off for")
    assert view.circuit is Circuit.CLOSED and state.consecutive_failures == 0   # never charged
    assert why_unroutable(view, view.backoff_until + 0.01) is None
    state.back_off(1.0, "a shorter one")  # a later, shorter backoff does not cut the longer one short
    assert state.view().backoff_until == view.backoff_until


def test_refusing_credentials_excludes_the_node_until_it_accepts_them() -> None:
    state = _state()
    state.refuse_credentials("refuses Hydra's credentials (HTTP 401)")
    view = state.view()
    assert view.healthy and why_unroutable(view) == "refuses Hydra's credentials: refuses Hydra's credentials (HTTP 401)"
    assert due_back_in(view, time.monotonic(), 5.0) is None          # not expected back on its own
    state.poll_ok("0.12.0", dict(MODELS), {})                           # a good poll is not enough
    assert why_unroutable(state.view()) is not None
    state.accept_credentials()
    assert why_unroutable(state.view()) is None


def test_a_model_the_node_lacks_is_hidden_until_its_list_changes() -> None:
    state = _state()
    state.mark_missing("M:7B")  # any spelling of the name
    view = state.view()
    assert "m:7b" not in view.installed and "m:7b" not in view.fits_by_model and "small:1b" in view.installed
    state.poll_ok("0.12.0", dict(MODELS), {})  # the same list again: the node still says it has it
    assert "m:7b" not in state.view().installed
    state.poll_ok("0.12.0", {"small:1b": MODELS["small:1b"]}, {})  # gone from the list: the list is the truth
    assert state.missing == {}
    pulled = {**MODELS, "m:7b": ModelInfo("m:7b", 7.0, 4_100_000_000)}
    state.poll_ok("0.12.0", pulled, {})
    assert "m:7b" in state.view().installed


def test_a_model_marked_missing_comes_back_when_pulled_again_or_after_a_while() -> None:
    state = _state()
    state.mark_missing("m:7b")
    state.poll_ok("0.12.0", {**MODELS, "m:7b": ModelInfo("m:7b", 7.0, 4_100_000_000)}, {})  # pulled anew
    assert "m:7b" in state.view().installed
    state.mark_missing("m:7b")
    key, (info, when) = next(iter(state.missing.items()))
    state.missing = {key: (info, when - MISSING_MODEL_TTL_S)}
    state.poll_ok("0.12.0", {**MODELS, "m:7b": info} if info else dict(MODELS), {})
    assert "m:7b" in state.view().installed


# --- due back soon? ---

def test_due_back_in() -> None:
    cooldown = 5.0
    now = time.monotonic()

    fresh = NodeState(NodeSpec(url=URL, name="fresh"))       # its first poll not answered yet
    due = due_back_in(fresh.view(), now, cooldown)
    assert due is not None and 0.0 < due <= 5.0 + 0.1

    healthy = _state()
    assert due_back_in(healthy.view(), now, cooldown) is None  # routable: nothing to wait for

    healthy.poll_failed("connection refused")                  # healthy until this poll: re-polled soon
    healthy.expect_poll(now + 4.0)
    assert due_back_in(healthy.view(), now, cooldown) == pytest.approx(4.0)
    healthy.poll_failed("connection refused")                  # down for a while now: not expected back
    healthy.expect_poll(now + 8.0)
    assert due_back_in(healthy.view(), now, cooldown) is None

    never = NodeState(NodeSpec(url=URL, name="never"))         # never answered: after its first failed poll
    never.poll_failed("connection refused")
    never.expect_poll(now + 4.0)
    assert due_back_in(never.view(), now, cooldown) is None

    tripped = _state()
    tripped.charge("boom", threshold=1)                         # open, and answering polls: back after cooldown
    due = due_back_in(tripped.view(), time.monotonic(), cooldown)
    assert due is not None and 4.0 < due <= 5.0
    tripped.half_open_if_due(0.0)
    tripped.begin(trial=True)                                   # its trial is running: no knowing when
    assert due_back_in(tripped.view(), now, cooldown) is None

    backed = _state()
    backed.back_off(2.0, "429")
    due = due_back_in(backed.view(), time.monotonic(), cooldown)
    assert due is not None and 1.5 < due <= 2.1
