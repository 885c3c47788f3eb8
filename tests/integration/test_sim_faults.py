"""Every fault mode, seen the way the official ``ollama`` client reports it.

What the client raises (ollama 0.6.3 over httpx 0.28), pinned here because the
router's error mapping is built on it:
  http_500 / busy_503    ollama.ResponseError, status_code 500 / 503
  error_midstream        ollama.ResponseError from the iterator, status_code -1
                         (stream=False: status_code 500)
  drop_midstream (FIN)   httpx.RemoteProtocolError (not wrapped by ollama)
  reset_midstream (RST)  httpx.ReadError (not wrapped by ollama)
  hang                   httpx.ReadTimeout (Client(timeout=...))
  malformed_json, html   json.JSONDecodeError (a ValueError)
  node killed            stream=False: builtin ConnectionError;
                         stream=True: httpx.ConnectError (not wrapped);
                         a stream cut by the kill: httpx.RemoteProtocolError
"""
from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import ollama
import pytest

from hydra.sim import BUSY_MESSAGE, SimNode
from hydra.sim.testing import profile, wait_until

pytestmark = pytest.mark.timeout(60)
SMALL = "qwen2.5-coder:1.5b"


@pytest.fixture
def client(sim_node: SimNode) -> ollama.Client:
    with ollama.Client(host=sim_node.url, timeout=5) as c:
        yield c


def stream(client: ollama.Client, received: list, n: int = 20) -> None:
    for chunk in client.generate(model=SMALL, prompt="fault", stream=True, options={"num_predict": n}):
        received.append(chunk)  # noqa: PERF402 - one at a time: other threads watch the list grow


def works(client: ollama.Client) -> bool:
    return client.generate(model=SMALL, prompt="ok", options={"num_predict": 2}).eval_count == 2


@pytest.mark.parametrize("kind,status,message", [
    ("http_500", 500, "simulated fault (http_500): internal server error"),
    ("busy_503", 503, BUSY_MESSAGE),
])
@pytest.mark.parametrize("streaming", [True, False], ids=["stream", "no-stream"])
def test_status_faults_raise_response_error(client, sim_node, kind, status, message, streaming) -> None:
    sim_node.set_fault(kind, count=1)
    with pytest.raises(ollama.ResponseError) as err:
        if streaming:
            stream(client, [])
        else:
            client.generate(model=SMALL, prompt="x")
    assert (err.value.status_code, err.value.error) == (status, message)
    assert works(client)  # count=1: the fault cleared itself
    assert sim_node.stats()["faults_applied"] == {kind: 1}


def test_error_line_midstream(client, sim_node) -> None:
    sim_node.set_fault("error_midstream", after_chunks=4)
    received: list = []
    with pytest.raises(ollama.ResponseError) as err:
        stream(client, received)
    assert len(received) == 4 and not any(c.done for c in received)
    assert err.value.status_code == -1 and "error was encountered" in err.value.error
    with pytest.raises(ollama.ResponseError) as err:
        client.generate(model=SMALL, prompt="x")
    assert err.value.status_code == 500
    sim_node.clear_faults()
    assert works(client)


def test_dropped_connection_midstream(client, sim_node) -> None:
    sim_node.set_fault("drop_midstream", after_chunks=3, count=2)
    received: list = []
    with pytest.raises(httpx.RemoteProtocolError):
        stream(client, received)
    assert len(received) == 3
    with pytest.raises(httpx.RemoteProtocolError):
        client.generate(model=SMALL, prompt="x")
    assert works(client)


def test_reset_connection_midstream(client, sim_node) -> None:
    sim_node.set_fault("reset_midstream", after_chunks=5, count=2)
    received: list = []
    with pytest.raises(httpx.ReadError):
        stream(client, received)
    assert len(received) == 5
    with pytest.raises(httpx.ReadError):
        client.generate(model=SMALL, prompt="x")
    assert works(client)


def test_malformed_json_midstream(client, sim_node) -> None:
    sim_node.set_fault("malformed_json", after_chunks=2, count=2)
    received: list = []
    with pytest.raises(json.JSONDecodeError):
        stream(client, received)
    assert len(received) == 2
    with pytest.raises(json.JSONDecodeError):
        client.generate(model=SMALL, prompt="x")
    assert works(client)


def test_hang_times_out_the_client(sim_node) -> None:
    sim_node.set_fault("hang", count=2)
    impatient = ollama.Client(host=sim_node.url, timeout=0.3)
    start = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        impatient.generate(model=SMALL, prompt="x")
    with pytest.raises(httpx.ReadTimeout):
        stream(impatient, [])
    assert 0.55 <= time.monotonic() - start < 2.0
    assert works(impatient)


def test_hang_ends_after_delay_or_when_cleared(sim_node) -> None:
    c = ollama.Client(host=sim_node.url, timeout=10)
    sim_node.set_fault("hang", delay_s=0.3, count=1)
    start = time.monotonic()
    assert works(c)
    assert time.monotonic() - start >= 0.3
    sim_node.set_fault("hang")  # until cleared
    done = threading.Event()
    t = threading.Thread(target=lambda: works(c) and done.set(), daemon=True)
    t.start()
    assert wait_until(lambda: sim_node.stats()["faults_applied"].get("hang") == 2)
    assert not done.wait(0.2)  # still hanging
    sim_node.clear_faults()
    assert done.wait(5)


def test_slow_first_token(client, sim_node) -> None:
    assert works(client)  # warm, so only the fault delays the first token
    sim_node.set_fault("slow_first_token", delay_s=0.4, count=1)
    start = time.monotonic()
    chunks = client.generate(model=SMALL, prompt="slow", stream=True, options={"num_predict": 5})
    first = next(chunks)
    ttft = time.monotonic() - start
    rest = list(chunks)
    assert 0.4 <= ttft < 1.5 and first.response and rest[-1].done
    start = time.monotonic()
    next(client.generate(model=SMALL, prompt="fast", stream=True, options={"num_predict": 5}))
    assert time.monotonic() - start < 0.3


def test_html_answers_every_route(client, sim_node) -> None:
    sim_node.set_fault("html")
    for path in ("/", "/api/version", "/api/tags", "/api/anything"):
        r = httpx.get(sim_node.url + path, timeout=5)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html") and "<html>" in r.text
    with pytest.raises(json.JSONDecodeError):
        client.list()
    with pytest.raises(json.JSONDecodeError):
        client.generate(model=SMALL, prompt="x")
    with pytest.raises(json.JSONDecodeError):
        stream(client, [])
    sim_node.clear_faults()
    assert client.list().models


def test_scope_generate_spares_health_routes_and_all_does_not(client, sim_node) -> None:
    sim_node.set_fault("http_500")
    assert httpx.get(sim_node.url + "/api/version", timeout=5).status_code == 200
    assert client.list().models and client.ps() is not None
    with pytest.raises(ollama.ResponseError):
        client.generate(model=SMALL, prompt="x")
    sim_node.set_fault("http_500", scope="all")
    assert httpx.get(sim_node.url + "/api/version", timeout=5).status_code == 500
    for call in (client.list, client.ps, lambda: client.show(SMALL)):
        with pytest.raises(ollama.ResponseError) as err:
            call()
        assert err.value.status_code == 500


def test_fault_count_expires(client, sim_node) -> None:
    sim_node.set_fault("busy_503", count=2)
    outcomes = []
    for _ in range(4):
        try:
            outcomes.append(works(client))
        except ollama.ResponseError as exc:
            outcomes.append(exc.status_code)
    assert outcomes == [503, 503, True, True]
    assert sim_node.stats()["faults"] == []


def test_faults_over_http(sim_node) -> None:
    url = sim_node.url
    r = httpx.post(url + "/_sim/fault", json={"kind": "busy_503", "count": 1, "scope": "all"}, timeout=5)
    assert r.status_code == 200 and r.json()["armed"]["kind"] == "busy_503"
    assert httpx.get(url + "/_sim/state", timeout=5).json()["faults"][0]["scope"] == "all"
    assert httpx.get(url + "/api/tags", timeout=5).status_code == 503
    assert httpx.get(url + "/api/tags", timeout=5).status_code == 200
    httpx.post(url + "/_sim/fault", json={"kind": "html"}, timeout=5)
    assert httpx.get(url + "/_sim/state", timeout=5).json()["faults"][0]["kind"] == "html"  # controls unaffected
    assert httpx.delete(url + "/_sim/fault", timeout=5).status_code == 200
    state = httpx.get(url + "/_sim/state", timeout=5).json()
    assert state["faults"] == [] and state["requests"]["/api/tags"] == 2 and state["running"]
    assert httpx.post(url + "/_sim/fault", json={"kind": "meteor"}, timeout=5).status_code == 400
    assert httpx.post(url + "/_sim/fault", json={"kind": "hang", "scope": "some"}, timeout=5).status_code == 400


def test_kill_refuses_connections_and_restart_serves_again(client, sim_node) -> None:
    assert works(client) and sim_node.loaded_models() == [SMALL]
    sim_node.set_fault("http_500")
    url = sim_node.url
    start = time.monotonic()
    sim_node.kill()
    assert time.monotonic() - start < 0.5
    with pytest.raises(ConnectionError):
        client.generate(model=SMALL, prompt="x")
    with pytest.raises(httpx.ConnectError):
        stream(client, [])
    start = time.monotonic()
    sim_node.restart()
    assert time.monotonic() - start < 0.5
    assert sim_node.url == url
    assert client.ps().models == []  # a restarted Ollama has nothing loaded
    assert works(client)  # and the fault is gone
    assert sim_node.stats()["restarts"] == 1


def test_kill_cuts_open_streams_and_queued_requests(sim_node_factory) -> None:
    node = sim_node_factory(profile("victim", slots=1), time_scale=0.2)
    c = ollama.Client(host=node.url, timeout=10)
    received: list = []
    errors: list[Exception] = []

    def run(fn) -> None:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - the test asserts which exception it was
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(lambda: stream(c, received, 5000),), daemon=True)]
    threads[0].start()
    assert wait_until(lambda: len(received) >= 3)
    queued_client = ollama.Client(host=node.url, timeout=10)
    threads.append(threading.Thread(target=run, args=(lambda: works(queued_client),), daemon=True))
    threads[1].start()
    assert wait_until(lambda: node.stats()["queued"] == 1)
    node.kill()
    for t in threads:
        t.join(2)
    assert not any(t.is_alive() for t in threads)
    assert len(errors) == 2 and all(isinstance(e, (httpx.RemoteProtocolError, httpx.ReadError)) for e in errors), errors
    assert not any(ch.done for ch in received)


def test_kill_releases_a_hung_request(sim_node) -> None:
    sim_node.set_fault("hang")
    errors: list[Exception] = []
    c = ollama.Client(host=sim_node.url, timeout=10)

    def run() -> None:
        try:
            works(c)
        except Exception as exc:  # noqa: BLE001 - the test asserts which exception it was
            errors.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    assert wait_until(lambda: sim_node.stats()["faults_applied"].get("hang") == 1)
    sim_node.kill()
    t.join(2)
    assert not t.is_alive() and len(errors) == 1 and isinstance(errors[0], httpx.RemoteProtocolError), errors


def test_flapping_node(client, sim_node) -> None:
    start = time.monotonic()
    for _ in range(15):
        sim_node.kill()
        with pytest.raises(ConnectionError):
            client.list()
        sim_node.restart()
        assert works(client)
    assert time.monotonic() - start < 10
    assert sim_node.stats()["restarts"] == 15


def test_async_client_sees_the_same_exceptions(sim_node) -> None:
    async def consume(c: ollama.AsyncClient) -> int:
        n = 0
        async for _ in await c.generate(model=SMALL, prompt="a", stream=True, options={"num_predict": 10}):
            n += 1
        return n

    async def main() -> dict[str, type]:
        seen: dict[str, type] = {}
        c = ollama.AsyncClient(host=sim_node.url, timeout=0.5)
        for kind in ("http_500", "error_midstream", "drop_midstream", "reset_midstream", "malformed_json", "hang", "html"):
            sim_node.set_fault(kind, count=1)
            try:
                await consume(c)
            except Exception as exc:  # noqa: BLE001 - the test asserts which exception it was
                seen[kind] = type(exc)
        assert await consume(c) == 11
        sim_node.kill()
        try:
            await consume(c)
        except Exception as exc:  # noqa: BLE001 - the test asserts which exception it was
            seen["killed"] = type(exc)
        return seen

    assert asyncio.run(main()) == {
        "http_500": ollama.ResponseError,
        "error_midstream": ollama.ResponseError,
        "drop_midstream": httpx.RemoteProtocolError,
        "reset_midstream": httpx.ReadError,
        "malformed_json": json.JSONDecodeError,
        "hang": httpx.ReadTimeout,
        "html": json.JSONDecodeError,
        "killed": httpx.ConnectError,
    }
