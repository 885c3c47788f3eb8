"""Model management through the gateway over simulated nodes: the official ollama client (pull, delete,
copy, create, push, blobs) and raw HTTP for what it hides (each line's node, the headers)."""
from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import ollama
import pytest

from hydra.gateway import Gateway
from hydra.service import Hydra
from hydra.sim import SimCluster
from hydra.sollol.monitor import TAGS_EVERY_S
from tests.integration.service_env import running_hydra

TIMEOUT = 20.0
REFRESH_WAIT_S = TAGS_EVERY_S / 4  # well before the monitor's own next fetch of the model lists


@pytest.fixture
def hydra(seed: SimCluster, tmp_path: Path, eventually: Callable[..., Any]) -> Iterator[Hydra]:
    with running_hydra(seed, tmp_path, eventually) as service:
        yield service


@pytest.fixture
def gateway(hydra: Hydra) -> Iterator[Gateway]:
    with Gateway(hydra, port=0) as gw:
        yield gw


def _holders(hydra: Hydra, model: str) -> set[str]:
    return {n.name for n in hydra.snapshot().nodes if any(m.name == model for m in n.installed)}


def _pull_lines(url: str, model: str, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    with httpx.stream("POST", f"{url}/api/pull", json={"model": model}, headers=headers, timeout=TIMEOUT) as reply:
        assert reply.status_code == 200 and reply.headers["content-type"] == "application/x-ndjson"
        return [json.loads(line) for line in reply.iter_lines() if line]


def _requests(seed: SimCluster, node: str, path: str) -> int:
    return int(seed.node(node).stats()["requests"].get(path, 0))


def test_ollama_client_pull_streams_every_node_then_routing_sees_the_model(
        seed: SimCluster, hydra: Hydra, gateway: Gateway, eventually: Callable[..., Any]) -> None:
    client = ollama.Client(host=gateway.url, timeout=TIMEOUT)
    client.delete("qwen3:1.7b")
    eventually(lambda: not hydra.has_model("qwen3:1.7b"), timeout=REFRESH_WAIT_S, what="the delete seen")
    parts = list(client.pull("qwen3:1.7b", stream=True))
    assert parts[0].status == "pulling manifest" and parts[-1].status == "success"
    assert any(p.total and p.completed == p.total for p in parts)
    # The model lists are fetched again at once, not at the monitor's next round (TAGS_EVERY_S).
    eventually(lambda: _holders(hydra, "qwen3:1.7b") == {"light", "powerful"}, timeout=REFRESH_WAIT_S,
               what="both nodes list the pulled model")
    tags = httpx.get(f"{gateway.url}/api/tags").json()["models"]
    assert "qwen3:1.7b" in {m["name"] for m in tags}


def test_a_chat_right_after_a_pull_finds_the_model(hydra: Hydra, gateway: Gateway,
                                                   eventually: Callable[..., Any]) -> None:
    client = ollama.Client(host=gateway.url, timeout=TIMEOUT)
    client.delete("qwen3:1.7b")
    assert not hydra.has_model("qwen3:1.7b")  # the delete's answer waited for routing to see it
    assert client.pull("qwen3:1.7b").status == "success"
    reply = client.chat(model="qwen3:1.7b", messages=[{"role": "user", "content": "hi"}],
                        options={"num_predict": 4}, think=False)
    assert reply.model == "qwen3:1.7b" and reply.message.content


def test_each_line_names_its_node_and_each_node_ends_with_success(seed: SimCluster, gateway: Gateway) -> None:
    lines = _pull_lines(gateway.url, "qwen3:1.7b")
    per_node: dict[str, list[dict[str, Any]]] = {}
    for line in lines[:-1]:
        per_node.setdefault(line["node"], []).append(line)
    assert set(per_node) == {"light", "powerful"}
    for node_lines in per_node.values():
        assert node_lines[0]["status"] == "pulling manifest" and node_lines[-1]["status"] == "success"
        progress = [(ln["digest"], ln["completed"]) for ln in node_lines if "completed" in ln]
        weights = [done for digest, done in progress if digest == progress[0][0]]
        assert weights == sorted(weights) and len(weights) > 2
    assert lines[-1] == {"status": "success", "nodes": ["light", "powerful"]}


def test_pull_goes_only_to_nodes_able_to_hold_the_model(seed: SimCluster, gateway: Gateway) -> None:
    # light is declared for 30B at most: a 70B model is pulled on powerful alone
    reply = httpx.post(f"{gateway.url}/api/pull", json={"model": "llama3.1:70b", "stream": False}, timeout=TIMEOUT)
    assert reply.status_code == 200 and reply.json() == {"status": "success", "nodes": ["powerful"]}
    assert reply.headers["x-hydra-node"] == "powerful"
    assert _requests(seed, "light", "/api/pull") == 0 and _requests(seed, "powerful", "/api/pull") == 1


def test_a_name_with_its_size_is_kept_off_nodes_too_small(seed: SimCluster, gateway: Gateway) -> None:
    # a model no node has yet: its size is read from its name (32.8B there, "32b" here)
    reply = httpx.post(f"{gateway.url}/api/pull", json={"model": "qwen2.5-coder:32b", "stream": False},
                       timeout=TIMEOUT)
    assert reply.json()["nodes"] == ["powerful"], reply.text


def test_a_model_no_node_can_hold_is_refused_with_each_nodes_reason(seed: SimCluster, gateway: Gateway) -> None:
    reply = httpx.post(f"{gateway.url}/api/pull", json={"model": "giant:900b"})
    assert reply.status_code == 503
    assert reply.json() == {"error": "no healthy node can hold giant:900b (light: too large: 900B > max 30B; "
                                     "powerful: too large: 900B > max 70B)"}
    assert _requests(seed, "light", "/api/pull") == 0 and _requests(seed, "powerful", "/api/pull") == 0


def test_the_node_header_picks_one_node_and_a_wrong_name_lists_the_names(
        seed: SimCluster, gateway: Gateway) -> None:
    lines = _pull_lines(gateway.url, "qwen3:1.7b", {"X-Hydra-Node": "light"})
    assert {ln.get("node") for ln in lines[:-1]} == {"light"} and lines[-1]["status"] == "success"
    assert _requests(seed, "powerful", "/api/pull") == 0
    wrong = httpx.post(f"{gateway.url}/api/pull", json={"model": "qwen3:1.7b"}, headers={"X-Hydra-Node": "heavy"})
    assert wrong.status_code == 400
    assert wrong.json() == {"error": "X-Hydra-Node 'heavy' is not a node of this cluster; the nodes are: "
                                     "light, powerful"}


def test_one_node_failing_does_not_stop_the_others(seed: SimCluster, gateway: Gateway) -> None:
    lines: list[dict[str, Any]] = []
    with httpx.stream("POST", f"{gateway.url}/api/pull", json={"model": "qwen2.5-coder:7b"},
                      timeout=TIMEOUT) as reply:
        for text in reply.iter_lines():
            if not text:
                continue
            lines.append(json.loads(text))
            if lines[-1].get("node") == "light" and lines[-1].get("completed"):
                seed.node("light").kill()  # its pull is cut mid-layer
    failed = [ln for ln in lines if ln.get("status") == "failed"]
    assert [ln["node"] for ln in failed] == ["light"] and failed[0]["reason"]
    assert [ln for ln in lines if ln.get("node") == "powerful"][-1]["status"] == "success"
    assert lines[-1] == {"error": f"pull qwen2.5-coder:7b failed on 1 of 2 node(s) (light: {failed[0]['reason']}); "
                                  "done on powerful"}


def test_a_pull_every_node_refuses_keeps_the_nodes_status(gateway: Gateway) -> None:
    client = ollama.Client(host=gateway.url, timeout=TIMEOUT)
    with pytest.raises(ollama.ResponseError) as refused:
        client.pull("no-such-model:1b")
    assert refused.value.status_code == 500
    assert "light: pull model manifest: file does not exist" in refused.value.error
    missing = httpx.post(f"{gateway.url}/api/pull", json={"stream": False})
    assert missing.status_code == 400 and missing.json() == {"error": "model is required"}


def test_delete_removes_the_model_from_every_node_that_has_it(
        seed: SimCluster, hydra: Hydra, gateway: Gateway, eventually: Callable[..., Any]) -> None:
    client = ollama.Client(host=gateway.url, timeout=TIMEOUT)
    assert _holders(hydra, "mistral:latest") == {"light", "powerful"}
    assert client.delete("mistral").status == "success"  # the bare name, as Ollama resolves it
    assert _requests(seed, "light", "/api/delete") == 1 and _requests(seed, "powerful", "/api/delete") == 1
    eventually(lambda: not hydra.has_model("mistral:latest"), timeout=REFRESH_WAIT_S, what="routing sees the delete")
    with pytest.raises(ollama.ResponseError) as gone:
        client.delete("mistral")
    assert gone.value.status_code == 404 and gone.value.error == "model 'mistral' not found"


def test_delete_on_the_named_node_only(seed: SimCluster, hydra: Hydra, gateway: Gateway,
                                       eventually: Callable[..., Any]) -> None:
    reply = httpx.request("DELETE", f"{gateway.url}/api/delete", json={"model": "llama3.2:3b"},
                          headers={"X-Hydra-Node": "powerful"})
    assert reply.status_code == 200 and reply.headers["x-hydra-node"] == "powerful"
    eventually(lambda: _holders(hydra, "llama3.2:3b") == {"light"}, timeout=REFRESH_WAIT_S, what="light alone")


def test_copy_and_create_go_where_the_source_is(hydra: Hydra, gateway: Gateway,
                                                eventually: Callable[..., Any]) -> None:
    client = ollama.Client(host=gateway.url, timeout=TIMEOUT)
    assert client.copy("llama3.1:70b", "big:copy").status == "success"
    eventually(lambda: _holders(hydra, "big:copy") == {"powerful"}, timeout=REFRESH_WAIT_S, what="the copy")
    made = client.create("helper", from_="llama3.2:3b", system="You help.")
    assert made.status == "success"
    eventually(lambda: _holders(hydra, "helper:latest") == {"light", "powerful"}, timeout=REFRESH_WAIT_S,
               what="the created model on both nodes")
    with pytest.raises(ollama.ResponseError) as no_source:
        client.copy("absent:1", "x:1")
    assert no_source.value.status_code == 404
    half = httpx.post(f"{gateway.url}/api/copy", json={"source": "llama3.2:3b", "destination": " "})
    assert half.status_code == 400 and half.json() == {"error": "source and destination are required"}


def test_blobs_and_a_create_from_files_need_the_node_named(seed: SimCluster, gateway: Gateway, hydra: Hydra,
                                                           tmp_path: Path, eventually: Callable[..., Any]) -> None:
    weights = tmp_path / "w.gguf"
    weights.write_bytes(b"GGUF " * 1000)
    with pytest.raises(ollama.ResponseError) as unnamed:
        ollama.Client(host=gateway.url).create_blob(weights)
    assert unnamed.value.status_code == 400 and "X-Hydra-Node" in unnamed.value.error
    client = ollama.Client(host=gateway.url, headers={"X-Hydra-Node": "light"}, timeout=TIMEOUT)
    digest = client.create_blob(weights)
    assert httpx.head(f"{gateway.url}/api/blobs/{digest}", headers={"X-Hydra-Node": "light"}).status_code == 200
    assert httpx.head(f"{gateway.url}/api/blobs/{digest}", headers={"X-Hydra-Node": "powerful"}).status_code == 404
    assert client.create("fromfile", files={"w.gguf": digest}).status == "success"
    eventually(lambda: _holders(hydra, "fromfile:latest") == {"light"}, timeout=REFRESH_WAIT_S, what="the model")
    mismatch = httpx.post(f"{gateway.url}/api/blobs/{digest}", content=b"else", headers={"X-Hydra-Node": "light"})
    assert mismatch.status_code == 400 and "digest mismatch" in mismatch.json()["error"]
    for digest_text in ("sha256:..", "sha256:" + "g" * 64, "md5:abc"):  # it becomes part of a URL on the node
        bad = httpx.post(f"{gateway.url}/api/blobs/{digest_text}", content=b"{}", headers={"X-Hydra-Node": "light"})
        assert bad.status_code == 400 and "invalid digest" in bad.json()["error"], digest_text
    assert not any(p.startswith("/api/blobs/sha256:..") for p in seed.node("light").stats()["requests"])


def test_push_goes_to_one_node_that_has_the_model(seed: SimCluster, gateway: Gateway) -> None:
    client = ollama.Client(host=gateway.url, timeout=TIMEOUT)
    client.copy("llama3.2:3b", "me/llama:3b")
    statuses = [p.status for p in client.push("me/llama:3b", stream=True)]
    assert statuses[0] == "retrieving manifest" and statuses[-1] == "success"
    assert _requests(seed, "light", "/api/push") + _requests(seed, "powerful", "/api/push") == 1
    with pytest.raises(ollama.ResponseError, match="namespace"):
        client.push("llama3.2:3b")


def test_with_an_api_key_every_management_route_needs_it(hydra: Hydra) -> None:
    with Gateway(hydra, port=0, api_key="s3cret-key") as gw:
        calls = [("POST", "/api/pull"), ("POST", "/api/push"), ("POST", "/api/create"), ("DELETE", "/api/delete"),
                 ("POST", "/api/copy"), ("HEAD", f"/api/blobs/sha256:{'0' * 64}"),
                 ("POST", f"/api/blobs/sha256:{'0' * 64}")]
        for method, path in calls:
            assert httpx.request(method, gw.url + path, json={}).status_code == 401, path
        keyed = ollama.Client(host=gw.url, headers={"Authorization": "Bearer s3cret-key"}, timeout=TIMEOUT)
        assert keyed.copy("llama3.2:3b", "keyed:1").status == "success"


# --- a node behind HTTP basic auth ---

class _BasicAuthProxy(BaseHTTPRequestHandler):
    """A sim node behind basic auth (ops:p@ss), as a reverse proxy in front of an Ollama would put it."""

    upstream: ClassVar[str] = ""
    seen: ClassVar[list[tuple[str, str]]] = []

    def log_message(self, *args: object) -> None:
        pass

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.seen.append((self.path, self.headers.get("Authorization", "")))
        if self.headers.get("Authorization") != "Basic " + base64.b64encode(b"ops:p@ss").decode():
            status, kind, payload = 401, "application/json", b'{"error": "unauthorized"}'
        else:
            reply = httpx.request(self.command, self.upstream + self.path, content=body, timeout=TIMEOUT)
            status, kind, payload = reply.status_code, reply.headers.get("content-type", ""), reply.content
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_DELETE = do_HEAD = _forward


@pytest.fixture
def guarded_node(seed: SimCluster) -> Iterator[str]:
    _BasicAuthProxy.upstream, _BasicAuthProxy.seen = seed.node("light").url, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BasicAuthProxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("password", ["p%40ss", "wrong"])
def test_a_node_behind_basic_auth_gets_its_credentials_and_they_are_never_shown(
        guarded_node: str, tmp_path: Path, eventually: Callable[..., Any], password: str) -> None:
    nodes = f"guarded=http://ops:{password}@{guarded_node};max_model_b=30"
    service = Hydra.from_env({**hydra_env_nodes(nodes, tmp_path)}, poll_interval_s=0.1).start()
    try:
        with Gateway(service, port=0) as gw:
            reply = httpx.post(f"{gw.url}/api/pull", json={"model": "qwen3:1.7b", "stream": False},
                               headers={"X-Hydra-Node": "guarded"}, timeout=TIMEOUT)
            assert password not in reply.text and "ops:" not in reply.text
            pulls = [auth for path, auth in _BasicAuthProxy.seen if path == "/api/pull"]
            assert pulls and all(auth.startswith("Basic ") for auth in pulls)
            if password == "wrong":
                assert reply.status_code == 401 and "unauthorized" in reply.json()["error"]
            else:
                assert reply.status_code == 200 and reply.json() == {"status": "success", "nodes": ["guarded"]}
    finally:
        service.close()


def hydra_env_nodes(nodes: str, tmp_path: Path) -> dict[str, str]:
    return {"SOLLOL_NODES": nodes, "HYDRA_DB": str(tmp_path / "h.db"), "HYDRA_EMBEDDED_NODE": "off",
            "SOLLOL_DISCOVER_LOCALHOST": "false", "HYDRA_GATEWAY_PORT": "0"}
