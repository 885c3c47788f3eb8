"""The gateway against hostile pages and leaked secrets, over simulated nodes: a foreign Host (DNS
rebinding) or a foreign page's origin runs nothing, browsers must send JSON, preflights are answered,
the real SDKs still work, a blank key stops start-up, the Bearer scheme is case-insensitive, and node
credentials never show in the status or the metrics."""
from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import ollama
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hydra.gateway import Gateway
from hydra.service import Hydra
from hydra.sim import SimCluster
from hydra.sollol.errors import ConfigError
from tests.integration.service_env import hydra_env

TIMEOUT = 20.0
ROOT = Path(__file__).resolve().parents[2]
BODY = {"model": "llama3.2:3b", "messages": [{"role": "user", "content": "hello"}], "stream": False,
        "options": {"num_predict": 4}}
PAGE = "http://localhost:3000"          # a page of this machine: allowed by default
EVIL = "http://evil.example"            # any other site




@pytest.fixture
def hydra(seed_service: Hydra) -> Hydra:
    return seed_service


@pytest.fixture
def gateway(seed_gateway: Gateway) -> Gateway:
    return seed_gateway


def tasks_run(hydra: Hydra, gateway: Gateway) -> tuple[int, float]:
    """Tasks in history, and generation requests the gateway's metrics counted (any outcome)."""
    rows = len(hydra.history.recent_tasks(1000))
    text = httpx.get(gateway.url + "/metrics").text
    counted = sum(s.value for f in text_string_to_metric_families(text) if f.name == "hydra_gateway_requests"
                  for s in f.samples if s.name.endswith("_total"))
    return rows, counted


def post(gateway: Gateway, path: str, body: Any = BODY, **headers: str) -> httpx.Response:
    return httpx.post(gateway.url + path, content=json.dumps(body), headers=headers, timeout=TIMEOUT)


# --- Host: DNS rebinding ---

def test_a_foreign_host_is_refused_and_runs_nothing(hydra: Hydra, gateway: Gateway) -> None:
    foreign = {"Host": f"evil.example:{gateway.port}"}
    chat = post(gateway, "/api/chat", **foreign, **{"Content-Type": "application/json"})
    assert chat.status_code == 403
    assert "HYDRA_ALLOWED_HOSTS" in chat.json()["error"] and "evil.example" in chat.json()["error"]
    completion = post(gateway, "/v1/chat/completions", **foreign)
    assert completion.status_code == 403
    assert completion.json()["error"]["type"] == "permission_error"
    assert "HYDRA_ALLOWED_HOSTS" in completion.json()["error"]["message"]
    for path in ("/api/hydra/status", "/api/tags", "/metrics", "/"):   # what a rebinding page would read
        assert httpx.get(gateway.url + path, headers=foreign).status_code == 403, path
    assert tasks_run(hydra, gateway) == (0, 0)
    # the same request by a name of this machine runs
    assert post(gateway, "/api/chat", Host=f"localhost:{gateway.port}").status_code == 200
    assert tasks_run(hydra, gateway) == (1, 1)


def test_names_the_operator_adds_are_served(hydra: Hydra) -> None:
    with Gateway(hydra, port=0, allowed_hosts=["hydra.example.com", "*.lan.example"]) as gw:
        for name in ("hydra.example.com", "gpu.lan.example", "localhost"):
            assert httpx.get(gw.url + "/api/tags", headers={"Host": f"{name}:{gw.port}"}).status_code == 200, name
        assert httpx.get(gw.url + "/api/tags", headers={"Host": "other.example.com"}).status_code == 403


# --- Origin: pages of other sites ---

def test_a_cross_origin_text_plain_post_runs_nothing(hydra: Hydra, gateway: Gateway) -> None:
    # What a form or a fetch() without headers on another site sends: no preflight, text/plain.
    simple = {"Origin": EVIL, "Content-Type": "text/plain;charset=UTF-8"}
    for path in ("/api/chat", "/api/generate", "/v1/chat/completions"):
        body = {**BODY, "prompt": "hello"} if path == "/api/generate" else BODY
        answer = post(gateway, path, body, **simple)
        assert answer.status_code == 403, path
        assert "access-control-allow-origin" not in answer.headers
    assert "HYDRA_ALLOWED_ORIGINS" in post(gateway, "/api/chat", **simple).json()["error"]
    # even from an allowed page, a body that is not declared JSON is refused
    plain = post(gateway, "/api/chat", Origin=PAGE, **{"Content-Type": "text/plain"})
    assert plain.status_code == 415 and "application/json" in plain.json()["error"]
    assert post(gateway, "/api/chat", Origin=PAGE, **{"Content-Type": "application/x-www-form-urlencoded"}
                ).status_code == 415
    assert tasks_run(hydra, gateway) == (0, 0)


def test_a_foreign_origin_cannot_read_either(gateway: Gateway) -> None:
    answer = httpx.get(gateway.url + "/api/hydra/status", headers={"Origin": EVIL})
    assert answer.status_code == 403 and "access-control-allow-origin" not in answer.headers


def test_an_allowed_page_gets_cors_headers(hydra: Hydra, gateway: Gateway) -> None:
    answer = post(gateway, "/api/chat", Origin=PAGE, **{"Content-Type": "application/json"})
    assert answer.status_code == 200 and answer.json()["done"]
    assert answer.headers["access-control-allow-origin"] == PAGE
    assert "Origin" in answer.headers["vary"]
    assert "X-Hydra-Node" in answer.headers["access-control-expose-headers"]
    with httpx.stream("POST", gateway.url + "/v1/chat/completions", timeout=TIMEOUT,
                      headers={"Origin": PAGE, "Content-Type": "application/json"},
                      content=json.dumps({**BODY, "stream": True, "max_tokens": 4})) as streamed:
        assert streamed.status_code == 200
        assert streamed.headers["access-control-allow-origin"] == PAGE and streamed.headers["x-hydra-node"]
        assert any(line.startswith("data: [DONE]") for line in streamed.iter_lines())
    assert tasks_run(hydra, gateway) == (2, 2)


def test_configured_origins_are_allowed(hydra: Hydra) -> None:
    with Gateway(hydra, port=0, allowed_origins=["https://chat.example.com"]) as gw:
        headers = {"Origin": "https://chat.example.com"}
        assert httpx.get(gw.url + "/api/tags", headers=headers).headers["access-control-allow-origin"] \
            == "https://chat.example.com"
        assert httpx.get(gw.url + "/api/tags", headers={"Origin": EVIL}).status_code == 403
    with Gateway(hydra, port=0, allowed_origins=["*"]) as gw:
        assert httpx.get(gw.url + "/api/tags", headers={"Origin": EVIL}).headers["access-control-allow-origin"] \
            == EVIL


# --- preflight ---

def preflight(gateway: Gateway, origin: str, method: str = "POST", path: str = "/v1/chat/completions",
              headers: str = "authorization, content-type, x-stainless-retry-count, x-hydra-mode") -> httpx.Response:
    return httpx.options(gateway.url + path, headers={"Origin": origin, "Access-Control-Request-Method": method,
                                                      "Access-Control-Request-Headers": headers})


def test_an_allowed_origins_preflight_is_answered(gateway: Gateway) -> None:
    answer = preflight(gateway, PAGE)
    assert answer.status_code == 204
    assert answer.headers["access-control-allow-origin"] == PAGE and "Origin" in answer.headers["vary"]
    assert "POST" in answer.headers["access-control-allow-methods"]
    assert set(answer.headers["access-control-allow-headers"].split(", ")) == {
        "authorization", "content-type", "x-stainless-retry-count", "x-hydra-mode"}
    assert int(answer.headers["access-control-max-age"]) > 0
    assert preflight(gateway, PAGE, path="/api/chat").status_code == 204


def test_a_preflight_needs_no_key(hydra: Hydra) -> None:
    with Gateway(hydra, port=0, api_key="s3cret") as gw:
        assert preflight(gw, PAGE).status_code == 204  # browsers send no credentials on a preflight
        refused = httpx.get(gw.url + "/api/tags", headers={"Origin": PAGE})
        assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == PAGE


def test_a_foreign_origins_preflight_is_refused(gateway: Gateway) -> None:
    answer = preflight(gateway, EVIL)
    assert answer.status_code == 403 and "access-control-allow-origin" not in answer.headers
    assert preflight(gateway, PAGE, method="TRACE").status_code == 403


def test_options_without_a_preflight_is_not_a_route(gateway: Gateway) -> None:
    assert httpx.options(gateway.url + "/api/chat").status_code == 405


# --- the clients people use still work ---

def test_the_real_clients_still_work(gateway: Gateway) -> None:
    reply = ollama.Client(host=gateway.url, timeout=TIMEOUT).chat(
        model="llama3.2:3b", messages=[{"role": "user", "content": "hi"}], options={"num_predict": 4})
    assert reply.done and reply.message.content
    assert ollama.Client(host=f"http://localhost:{gateway.port}", timeout=TIMEOUT).list().models
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="x", timeout=TIMEOUT, max_retries=0)
    assert client.models.list().data
    completion = client.chat.completions.create(model="llama3.2:3b", max_tokens=4,
                                                messages=[{"role": "user", "content": "hi"}])
    assert completion.choices[0].message.content


def test_curl_style_form_posts_still_work(gateway: Gateway) -> None:
    # curl -d declares application/x-www-form-urlencoded; the README's examples send it (no Origin: not a page)
    answer = post(gateway, "/api/chat", **{"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 200 and answer.json()["done"]


# --- keys ---

def test_a_lower_case_bearer_is_accepted(hydra: Hydra) -> None:
    with Gateway(hydra, port=0, api_key="s3cret") as gw:
        for scheme in ("Bearer", "bearer", "BEARER"):
            answer = httpx.get(gw.url + "/api/tags", headers={"Authorization": f"{scheme} s3cret"})
            assert answer.status_code == 200, scheme
        assert httpx.get(gw.url + "/api/tags", headers={"Authorization": "bearer wrong"}).status_code == 401
        assert httpx.get(gw.url + "/api/tags", headers={"Authorization": "Basic s3cret"}).status_code == 401
        client = ollama.Client(host=gw.url, timeout=TIMEOUT, headers={"Authorization": "bearer s3cret"})
        assert client.chat(model="llama3.2:3b", messages=[{"role": "user", "content": "hi"}],
                           options={"num_predict": 3}).done
        assert openai.OpenAI(base_url=gw.url + "/v1", api_key="s3cret", max_retries=0).models.list().data


def test_a_blank_key_is_refused_at_start_up(seed: SimCluster, tmp_path: Path, hydra: Hydra) -> None:
    with pytest.raises(ConfigError, match="HYDRA_API_KEY"):
        Hydra.from_env(hydra_env(seed, tmp_path / "other", HYDRA_API_KEY=" "))
    with pytest.raises(ValueError, match="HYDRA_API_KEY"):
        Gateway(hydra, port=0, api_key="  ")
    env = {k: v for k, v in hydra_env(seed, tmp_path / "cli").items() if k != "HYDRA_GATEWAY_PORT"}
    done = subprocess.run([sys.executable, "-m", "hydra", "serve", "--port", "0"], check=False, cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT),
                                                      "HYDRA_API_KEY": " ", **env})
    assert done.returncode == 2 and "HYDRA_API_KEY" in done.stderr and "unset" in done.stderr
    assert "Traceback" not in done.stderr


# --- secrets in node URLs ---

def test_node_credentials_never_show(clusters: Callable[..., SimCluster], tmp_path: Path,
                                     eventually: Callable[..., Any]) -> None:
    cluster = clusters("seed")
    light, powerful = (n.url for n in cluster.nodes)
    nodes = f"light=http://ops:s3cret@{light.split('://')[1]},powerful=http://TOKEN42@{powerful.split('://')[1]}"
    env = {**hydra_env(cluster, tmp_path), "SOLLOL_NODES": nodes}
    service = Hydra.from_env(env, poll_interval_s=0.1).start()
    try:
        eventually(lambda: all(n.last_seen or n.last_error for n in service.snapshot().nodes), what="first polls")
        with Gateway(service, port=0) as gw:
            status = httpx.get(gw.url + "/api/hydra/status").text
            urls = {n["name"]: n["url"] for n in json.loads(status)["nodes"]}
            assert urls == {"light": f"http://ops:***@{light.split('://')[1]}",
                            "powerful": f"http://***@{powerful.split('://')[1]}"}
            metrics = httpx.get(gw.url + "/metrics").text
            for secret in ("s3cret", "TOKEN42"):
                assert secret not in status and secret not in metrics
    finally:
        service.close()
