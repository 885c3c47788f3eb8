"""Property-based fuzzing of the running gateway over simulated nodes (hypothesis): generated bodies and
headers for /api/chat, /api/generate and /v1/chat/completions, through a real HTTP client.

Properties: never a 5xx, never a hang (every request has a client timeout and is read to its end),
and afterwards every node is healthy, its breaker closed, and no node was charged for any of it.

Bodies are mostly a valid request with some fields replaced by generated JSON (so the checks behind
the first one are reached), sometimes any JSON value at all; numbers include NaN, infinities and
huge integers, strings lone surrogates (json.dumps writes both, as ``NaN`` and ``\\ud800``). Outputs
are kept short (num_predict 4) unless the fuzzed field is the limit itself, which then stays small
or out of range. Deterministic by default (``derandomize``), so CI runs the same examples;
``HYDRA_FUZZ_EXAMPLES`` sets how many per route, ``HYDRA_FUZZ_RANDOM=1`` explores new ones.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hydra.gateway import Gateway
from hydra.service import Hydra
from hydra.sim import SimCluster

MODEL = "llama3.2:3b"
EXAMPLES = int(os.environ.get("HYDRA_FUZZ_EXAMPLES", "400"))
CLIENT_TIMEOUT_S = 20.0       # a request that takes longer is a hang
BUDGET_S = 120.0              # the three routes together at the default count (measured: ~15 s here)
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                derandomize=os.environ.get("HYDRA_FUZZ_RANDOM") != "1",
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])

# --- values ---

SURROGATES = st.sampled_from(["\ud800", "\udfff", "a\udc00b", "\ud83d"])
text = st.one_of(st.text(max_size=20), SURROGATES, st.sampled_from(["", " ", "auto", MODEL, "json", "5m", "high",
                                                                   "user", "assistant", "function", "aGk="]))
numbers = st.one_of(st.integers(-5, 300), st.sampled_from([10 ** 7, 2 ** 70, -(2 ** 64), 0.5, -0.0, 1.5, 1e308]),
                    st.floats(allow_nan=True, allow_infinity=True))
scalars = st.one_of(st.none(), st.booleans(), numbers, text)
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(text, inner, max_size=4)), max_leaves=12)


def deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


anything = st.one_of(json_values, st.sampled_from([deep(70), {"a": deep(200)}]))

# --- near-valid bodies ---

USER = {"role": "user", "content": "Say something short"}
TOOL = {"type": "function", "function": {"name": "get_weather", "description": "the weather",
                                         "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
message = st.fixed_dictionaries({"role": st.one_of(st.sampled_from(["user", "assistant", "system", "tool"]), text),
                                 "content": st.one_of(text, json_values)},
                                optional={"images": st.one_of(st.lists(text, max_size=2), json_values),
                                          "tool_calls": json_values, "name": text, "thinking": text})
messages = st.one_of(st.just([USER]), st.lists(message, max_size=3).map(lambda ms: [*ms, USER]), json_values)
options = st.one_of(st.dictionaries(st.sampled_from(["temperature", "top_k", "top_p", "stop", "seed", "num_ctx",
                                                     "use_mmap", "num_predict", "unknown"]), json_values, max_size=3)
                    .map(lambda o: {"num_predict": 4, **o}), json_values)
tools = st.one_of(st.just([TOOL]), st.lists(st.one_of(st.just(TOOL), json_values), max_size=2), json_values)

OLLAMA_FIELDS = {"model": st.one_of(st.just(MODEL), text, json_values), "messages": messages, "prompt": text,
                 "system": st.one_of(text, json_values), "options": options, "stream": scalars, "think": scalars,
                 "format": st.one_of(st.just("json"), json_values), "keep_alive": scalars, "tools": tools,
                 "raw": scalars, "images": json_values, "context": json_values}
OPENAI_FIELDS = {"model": st.one_of(st.just(MODEL), text, json_values), "messages": messages,
                 "max_tokens": numbers, "max_completion_tokens": numbers, "temperature": scalars, "top_p": scalars,
                 "stop": st.one_of(text, json_values), "seed": scalars, "n": scalars, "stream": scalars,
                 "stream_options": json_values, "tools": tools, "tool_choice": st.one_of(text, json_values),
                 "response_format": st.one_of(st.sampled_from([{"type": "json_object"}, {"type": "text"}]),
                                              json_values),
                 "reasoning_effort": scalars, "frequency_penalty": scalars, "unknown": json_values}


def mutated(base: dict[str, Any], fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """``base`` with 1-3 of ``fields`` replaced (or removed), or any JSON value at all."""
    def apply(changes: dict[str, Any], removed: list[str]) -> dict[str, Any]:
        body = {**base, **changes}
        for name in removed:
            body.pop(name, None)
        return body

    changes = st.dictionaries(st.sampled_from(sorted(fields)), st.none(), min_size=1, max_size=3).flatmap(
        lambda keys: st.fixed_dictionaries({k: fields[k] for k in keys}))
    near = st.builds(apply, changes, st.lists(st.sampled_from(sorted(base)), max_size=1))
    return st.one_of(near, near, near, anything)


CHAT_BASE = {"model": MODEL, "messages": [USER], "options": {"num_predict": 4}, "stream": False}
GENERATE_BASE = {"model": MODEL, "prompt": "Say something short", "options": {"num_predict": 4}}
OPENAI_BASE = {"model": MODEL, "messages": [USER], "max_tokens": 4}

header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=12)
headers = st.fixed_dictionaries({}, optional={
    "x-hydra-priority": st.one_of(st.sampled_from(["1", "10", "0", "11", "-1", "+5", "５", "5.0"]), header_text),
    "x-hydra-mode": st.one_of(st.sampled_from(["fast", "reliable", "async", "FAST"]), header_text),
    "x-hydra-task-type": st.one_of(st.sampled_from(["code", "math", "general", "poetry"]), header_text),
    "content-type": st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded",
                                     "application/json; charset=utf-8", "garbage/stuff"]),
    "origin": st.sampled_from(["http://localhost:8501", "http://localhost:8501", "http://127.0.0.1:8080",
                               "http://evil.example", "null"]),
})


# --- the running gateway ---

@pytest.fixture
def hydra(seed: SimCluster, tmp_path: Path, eventually: Callable[..., Any]) -> Iterator[Hydra]:
    env = {"SOLLOL_NODES": seed.sollol_nodes(), "HYDRA_DB": str(tmp_path / "h.db"), "HYDRA_EMBEDDED_NODE": "off",
           "SOLLOL_DISCOVER_LOCALHOST": "false", "HYDRA_GATEWAY_PORT": "0"}
    service = Hydra.from_env(env, poll_interval_s=0.1, no_route_wait_s=1.0).start()
    eventually(lambda: len(service.snapshot().healthy_nodes) == 2, what="both nodes healthy")
    yield service
    service.close()


@pytest.fixture
def client(hydra: Hydra) -> Iterator[tuple[Gateway, httpx.Client]]:
    with Gateway(hydra, port=0) as gateway, httpx.Client(base_url=gateway.url, timeout=CLIENT_TIMEOUT_S) as http:
        yield gateway, http


def send(http: httpx.Client, path: str, body: Any, extra: dict[str, str]) -> httpx.Response:
    """One request, read to its end (a stream included); json.dumps writes NaN, Infinity and \\ud800."""
    content = json.dumps(body).encode()
    started = time.monotonic()
    raw_headers = {k: v.strip().encode() for k, v in extra.items()}  # UTF-8 bytes: "５" too (h11 allows obs-text)
    with http.stream("POST", path, content=content, headers=raw_headers) as reply:
        reply.read()
    assert time.monotonic() - started < CLIENT_TIMEOUT_S
    return reply


def check(reply: httpx.Response, path: str, body: Any) -> None:
    assert reply.status_code < 500, (path, reply.status_code, reply.text[:300], json.dumps(body)[:300])
    if reply.status_code >= 400:  # a refusal in the API's shape, with a reason
        assert reply.json()["error"], (reply.status_code, reply.text[:300])


def assert_every_node_closed_and_uncharged(hydra: Hydra) -> None:
    for node in hydra.snapshot().nodes:
        assert node.healthy and node.circuit == "closed", (node.name, node.circuit, node.last_error)
        assert node.failures == 0, (node.name, node.failures, node.last_error)


def fuzz_route(http: httpx.Client, path: str, bodies: st.SearchStrategy[Any], statuses: dict[int, int]) -> None:
    @FUZZ
    @given(body=bodies, extra=headers)
    def one(body: Any, extra: dict[str, str]) -> None:
        reply = send(http, path, body, extra)
        statuses[reply.status_code] = statuses.get(reply.status_code, 0) + 1
        check(reply, path, body)

    one()


ROUTES = [("/api/chat", CHAT_BASE, OLLAMA_FIELDS), ("/api/generate", GENERATE_BASE, OLLAMA_FIELDS),
          ("/v1/chat/completions", OPENAI_BASE, OPENAI_FIELDS)]


def test_generated_requests_never_get_a_5xx_or_hang_and_no_node_is_charged(
        client: tuple[Gateway, httpx.Client], hydra: Hydra) -> None:
    _, http = client
    started = time.monotonic()
    statuses: dict[int, int] = {}
    for path, base, fields in ROUTES:
        fuzz_route(http, path, mutated(base, fields), statuses)
    elapsed = time.monotonic() - started
    assert elapsed < BUDGET_S * max(1.0, EXAMPLES / 400), f"the fuzzing took {elapsed:.0f} s"
    assert statuses.get(200, 0) > 0 and statuses.get(400, 0) > 0, statuses  # it reached both sides
    assert_every_node_closed_and_uncharged(hydra)
    print(f"fuzz: {sum(statuses.values())} requests in {elapsed:.1f} s, statuses {sorted(statuses.items())}")
