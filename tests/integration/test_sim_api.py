"""The simulator seen through the official ``ollama`` client: every endpoint.

Each test runs real HTTP on 127.0.0.0/8 against nodes started at small
time_scale; assertions are about what a router relies on (shapes, counts,
determinism, speeds, status codes).
"""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import ollama
import pytest

from hydra.sim import PRESETS, SimNode, free_port, preset, start_cluster
from hydra.sim.testing import FAST, profile

pytestmark = pytest.mark.timeout(60)
ROOT = Path(__file__).resolve().parents[2]
SMALL = "qwen2.5-coder:1.5b"


@pytest.fixture
def client(sim_node: SimNode) -> ollama.Client:
    with ollama.Client(host=sim_node.url, timeout=10) as c:
        yield c


# -- simple routes -------------------------------------------------------------


def test_root_and_head_say_ollama_is_running(sim_node: SimNode) -> None:
    with httpx.Client(base_url=sim_node.url, timeout=5) as http:
        r = http.get("/")
        assert (r.status_code, r.text) == (200, "Ollama is running")
        assert http.head("/").status_code == 200


def test_version(sim_node: SimNode) -> None:
    r = httpx.get(sim_node.url + "/api/version", timeout=5)
    assert r.status_code == 200
    assert r.json()["version"].startswith("0.")


def test_tags_lists_installed_models_with_details(client: ollama.Client, sim_node: SimNode) -> None:
    listed = {m.model: m for m in client.list().models}
    assert set(listed) == {m.name for m in sim_node.profile.models}
    m = listed["qwen2.5-coder:7b"]
    assert m.details.parameter_size == "7.6B"
    assert m.details.quantization_level == "Q4_K_M"
    assert m.details.family == "qwen2" and m.details.format == "gguf"
    assert 4.0e9 < m.size < 5.5e9  # ~0.6 bytes per parameter at Q4
    assert m.modified_at is not None and len(m.digest) == 64


def test_show_reports_capabilities(client: ollama.Client) -> None:
    thinker = client.show("qwen3:1.7b")
    assert thinker.capabilities == ["completion", "thinking"]
    assert thinker.details.family == "qwen3"
    assert thinker.modelinfo["general.architecture"] == "qwen3"
    plain = client.show("llama3.2:3b")
    assert plain.capabilities == ["completion"]
    assert plain.details.parameter_size == "3.2B"
    with pytest.raises(ollama.ResponseError) as err:
        client.show("nope:1b")
    assert err.value.status_code == 404



@pytest.mark.parametrize("body", [{}, {"model": 5}, {"name": ["qwen3:1.7b"]}, {"model": "  "}, ["qwen3:1.7b"]])
def test_show_without_a_model_name_is_refused_like_the_other_routes(sim_node: SimNode, body: object) -> None:
    # A name that is not a string once dropped the connection (the lookup crashed on it); the
    # same 400 as generate, embed and delete answer.
    reply = httpx.post(sim_node.url + "/api/show", json=body, timeout=5)
    assert (reply.status_code, reply.json()) == (400, {"error": "model is required"})

def test_ps_lists_loaded_models_with_vram_only_on_gpu(sim_node_factory) -> None:
    cpu = sim_node_factory(profile("cpu"))
    gpu = sim_node_factory(profile("gpu", gpu=True, memory_mb=24_000))
    for node, on_gpu in ((cpu, False), (gpu, True)):
        c = ollama.Client(host=node.url, timeout=10)
        assert c.ps().models == []
        c.generate(model=SMALL, prompt="hello", options={"num_predict": 2})
        (loaded,) = c.ps().models
        assert loaded.name == SMALL and loaded.size > 0
        assert loaded.size_vram == (loaded.size if on_gpu else 0)
        assert loaded.context_length and loaded.details.parameter_size == "1.5B"
        assert loaded.expires_at.timestamp() > time.time()


def test_unknown_route_is_404(sim_node: SimNode) -> None:
    r = httpx.get(sim_node.url + "/api/nothing", timeout=5)
    assert r.status_code == 404
    assert httpx.post(sim_node.url + "/api/tags", timeout=5).status_code == 404


# -- generate and chat -----------------------------------------------------------


def test_generate_non_streaming(client: ollama.Client, sim_node: SimNode) -> None:
    r = client.generate(model=SMALL, prompt="Explain queues briefly")
    assert r.done is True and r.done_reason == "stop"
    assert r.response.startswith(f"[simulated {SMALL} on {sim_node.profile.name}] ")
    assert 20 <= r.eval_count <= 120
    assert len(r.response.split()) >= r.eval_count - 2  # one word per token
    assert r.prompt_eval_count == 4  # 3 words * 1.3, rounded up
    for field in ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration"):
        assert getattr(r, field) > 0, field


def test_generate_streams_one_token_per_chunk(client: ollama.Client) -> None:
    chunks = list(client.generate(model=SMALL, prompt="Explain queues briefly", stream=True))
    *tokens, final = chunks
    assert all(not c.done for c in tokens) and final.done and final.done_reason == "stop"
    assert final.eval_count == len(tokens)
    assert final.response == ""
    assert all(c.response and c.model == SMALL and c.created_at for c in tokens)
    full = client.generate(model=SMALL, prompt="Explain queues briefly")
    assert "".join(c.response for c in tokens) == full.response  # deterministic


def test_text_depends_on_prompt_and_code_prompts_get_code(client: ollama.Client) -> None:
    a = client.generate(model=SMALL, prompt="first prompt").response
    b = client.generate(model=SMALL, prompt="second prompt").response
    assert a != b
    code = client.generate(model=SMALL, prompt="Write a Python function that sorts a list").response
    assert "```python" in code and code.count("```") == 2


def test_num_predict_sets_eval_count_exactly(client: ollama.Client) -> None:
    for n in (1, 7, 150):
        r = client.generate(model=SMALL, prompt="count", options={"num_predict": n})
        assert (r.eval_count, r.done_reason) == (n, "length")
        chunks = list(client.generate(model=SMALL, prompt="count", stream=True, options={"num_predict": n}))
        assert len(chunks) == n + 1 and chunks[-1].eval_count == n


def test_reported_speed_is_configured_speed_at_any_time_scale(sim_node_factory) -> None:
    for scale in (0.01, 0.05):
        node = sim_node_factory(profile(f"s{scale}"), time_scale=scale)
        model = node.profile.model(SMALL)
        expected_tps = node.profile.decode_tps(model)
        c = ollama.Client(host=node.url, timeout=10)
        start = time.monotonic()
        r = c.generate(model=SMALL, prompt="speed", options={"num_predict": 40})
        wall = time.monotonic() - start
        assert r.eval_count / r.eval_duration * 1e9 == pytest.approx(expected_tps, rel=1e-3)
        scaled_s = r.total_duration / 1e9 * scale
        assert scaled_s * 0.9 <= wall < scaled_s + 1.0  # the delay was really spent, scaled
        assert r.load_duration / 1e9 == pytest.approx(node.profile.load_s(model), rel=1e-3)


def test_cpu_and_gpu_speeds_differ_realistically() -> None:
    light, powerful = preset("seed")
    model = light.model("qwen2.5-coder:7b")
    assert 50 <= powerful.decode_tps(model) <= 70
    assert 6 <= light.decode_tps(model) <= 12
    assert 1.5 <= powerful.load_s(model) <= 2.5 and 4 <= light.load_s(model) <= 6
    assert light.prefill_tps(model) < powerful.prefill_tps(model) / 10


def test_chat_streaming_and_not(client: ollama.Client, sim_node: SimNode) -> None:
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]
    r = client.chat(model=SMALL, messages=messages)
    assert r.message.role == "assistant" and r.done_reason == "stop"
    assert r.message.content.startswith(f"[simulated {SMALL} on {sim_node.profile.name}]")
    assert r.prompt_eval_count >= 3
    chunks = list(client.chat(model=SMALL, messages=messages, stream=True))
    assert "".join(c.message.content for c in chunks) == r.message.content
    assert chunks[-1].done and chunks[-1].eval_count == len(chunks) - 1


def test_thinking_streams_before_content(client: ollama.Client) -> None:
    chunks = list(client.chat(model="qwen3:1.7b", messages=[{"role": "user", "content": "why?"}],
                              think=True, stream=True, options={"sim_think_tokens": 30}))
    kinds = ["t" if c.message.thinking else "c" for c in chunks[:-1]]
    assert kinds == ["t"] * 30 + ["c"] * (len(kinds) - 30)
    assert "c" in kinds
    assert chunks[-1].eval_count == len(kinds)  # thinking + content
    r = client.generate(model="qwen3:1.7b", prompt="why?", think="high", options={"sim_think_tokens": 12})
    assert r.thinking and len(r.thinking.split()) >= 10 and r.response.startswith("[simulated")
    assert r.eval_count == 12 + len(r.response.split())
    plain = client.generate(model="qwen3:1.7b", prompt="why?")
    assert not plain.thinking


def test_default_think_tokens_deterministic_and_num_predict_caps_total(client: ollama.Client) -> None:
    a = client.generate(model="qwen3:1.7b", prompt="same", think=True)
    b = client.generate(model="qwen3:1.7b", prompt="same", think=True)
    assert a.thinking == b.thinking and 40 <= len(a.thinking.split()) <= 200 + 10
    r = client.generate(model="qwen3:1.7b", prompt="deep", think=True,
                        options={"sim_think_tokens": 20_000, "num_predict": 50})
    assert (r.eval_count, r.done_reason, r.response) == (50, "length", "")


def test_think_on_non_thinking_model_is_400(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as err:
        client.generate(model="llama3.2:3b", prompt="hi", think=True)
    assert err.value.status_code == 400 and "does not support thinking" in err.value.error
    assert client.generate(model="llama3.2:3b", prompt="hi", think=False).done


def test_unknown_model_is_404_like_ollama(client: ollama.Client) -> None:
    for call in (lambda: client.generate(model="ghost:7b", prompt="hi"),
                 lambda: list(client.chat(model="ghost:7b", messages=[{"role": "user", "content": "x"}], stream=True))):
        with pytest.raises(ollama.ResponseError) as err:
            call()
        assert err.value.status_code == 404
        assert err.value.error == 'model "ghost:7b" not found, try pulling it first'


def test_bad_requests_are_400(sim_node: SimNode) -> None:
    url = sim_node.url + "/api/generate"
    for body in (b"{not json", b"{}", b'{"model": ""}', b'{"model": "llama3.2:3b", "keep_alive": "soon"}'):
        r = httpx.post(url, content=body, timeout=5)
        assert r.status_code == 400, body
        assert r.json()["error"]


def test_raw_stream_defaults_to_chunked_ndjson(sim_node: SimNode) -> None:
    body = {"model": SMALL, "prompt": "hi", "options": {"num_predict": 3}}
    with httpx.stream("POST", sim_node.url + "/api/generate", json=body, timeout=5) as r:
        assert r.headers["content-type"] == "application/x-ndjson"
        assert r.headers["transfer-encoding"] == "chunked"
        lines = [json.loads(line) for line in r.iter_lines()]
    assert [x["done"] for x in lines] == [False, False, False, True]
    assert set(lines[-1]) >= {"done_reason", "total_duration", "load_duration", "prompt_eval_count",
                              "prompt_eval_duration", "eval_count", "eval_duration"}


def test_stop_option_is_honoured(client: ollama.Client) -> None:
    full = client.generate(model=SMALL, prompt="stop test", options={"num_predict": 30}).response
    stop_word = full.split()[6]
    cut = client.generate(model=SMALL, prompt="stop test", options={"num_predict": 30, "stop": [stop_word]})
    assert cut.done_reason == "stop" and stop_word not in cut.response
    assert full.startswith(cut.response) and cut.eval_count < 30


def test_async_client_stream_and_not(sim_node: SimNode) -> None:
    async def main() -> tuple[int, str]:
        c = ollama.AsyncClient(host=sim_node.url, timeout=10)
        n = 0
        async for _ in await c.generate(model=SMALL, prompt="async", stream=True, options={"num_predict": 5}):
            n += 1
        r = await c.chat(model=SMALL, messages=[{"role": "user", "content": "async"}])
        return n, r.message.content

    n, content = asyncio.run(main())
    assert n == 6 and content.startswith("[simulated")


# -- hosts, presets, cluster, command line -----------------------------------------


def test_two_hosts_share_one_port() -> None:
    light, powerful = preset("seed")
    a = SimNode(light, host="127.0.0.2", time_scale=FAST).start()
    try:
        b = SimNode(powerful, host="127.0.0.3", port=a.port, time_scale=FAST).start()
    except OSError:  # the port happens to be taken on 127.0.0.3: pick one free on both
        a.stop()
        port = free_port("127.0.0.3")
        a = SimNode(light, host="127.0.0.2", port=port, time_scale=FAST).start()
        b = SimNode(powerful, host="127.0.0.3", port=port, time_scale=FAST).start()
    try:
        assert a.port == b.port and a.url != b.url
        tags = {n.url: {m.model for m in ollama.Client(host=n.url, timeout=5).list().models} for n in (a, b)}
        assert "llama3.1:70b" in tags[b.url] and "llama3.1:70b" not in tags[a.url]
        r = ollama.Client(host=a.url, timeout=5).generate(model=SMALL, prompt="x", options={"num_predict": 4})
        assert "on light]" in r.response
    finally:
        a.stop()
        b.stop()


def test_seed_preset_matches_seed_md() -> None:
    light, powerful = PRESETS["seed"]
    assert (light.name, light.gpu, light.max_model_b, light.slots) == ("light", False, 30, 2)
    assert (powerful.name, powerful.gpu, powerful.max_model_b, powerful.slots) == ("powerful", True, 70, 2)
    assert light.ram_mb >= 32_000 and powerful.vram_mb >= 48_000
    seed_models = {"qwen2.5-coder:7b", "qwen2.5-coder:3b", "qwen2.5-coder:1.5b", "deepseek-coder-v2:latest",
                   "codellama:13b", "deepseek-coder:6.7b", "qwen3:14b", "qwen3:8b", "qwen3:1.7b",
                   "mistral:latest", "llama3.2:3b"}
    embedders = {"nomic-embed-text:latest", "mxbai-embed-large:latest"}  # beside SEED.md's tiers (issue 12)
    assert {m.name for m in light.models} == seed_models | embedders
    assert {m.name for m in powerful.models} == seed_models | embedders | {"llama3.1:70b"}
    assert powerful.model("deepseek-coder-v2:latest").parameter_size == "15.7B"
    assert powerful.model("llama3.1:70b").memory_mb < powerful.vram_mb
    assert [m.name for m in light.models if m.thinking] == ["qwen3:14b", "qwen3:1.7b", "qwen3:8b"]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_nodes_only_hold_models_they_can_serve(name: str) -> None:
    for node in PRESETS[name]:
        for m in node.models:
            # Nominal sizes fit: llama3.1:70b reports "70.6B" (as real Ollama does)
            # on a max_model_b=70 node, so allow that rounding and no more.
            assert m.size_b <= node.max_model_b * 1.01, (node.name, m.name)
            assert m.memory_mb <= node.memory_mb, (node.name, m.name)


def test_cluster8_offers_real_choices() -> None:
    nodes = PRESETS["cluster8"]
    assert len(nodes) == 8
    assert sorted(n.vram_mb for n in nodes if n.gpu) == [8_192, 12_288, 24_576, 49_152]
    cpus = [n for n in nodes if not n.gpu]
    assert len({n.ram_mb for n in cpus}) == len(cpus) == 4
    assert len({frozenset(m.name for m in n.models) for n in nodes}) >= 6
    holders = [n.name for n in nodes if n.model("qwen2.5-coder:7b")]
    assert len(holders) >= 4


def test_start_cluster_specs_and_sollol_nodes() -> None:
    with start_cluster("seed", time_scale=FAST) as cluster:
        assert [n.host for n in cluster.nodes] == ["127.0.0.2", "127.0.0.3"]
        specs = cluster.node_specs()
        assert specs[0] == {"name": "light", "url": cluster.node("light").url, "max_model_b": 30,
                            "gpu": False, "vram_mb": None, "slots": 2}
        assert specs[1]["vram_mb"] == 48_000 and specs[1]["gpu"] is True
        light, powerful = cluster.sollol_nodes().split(",")
        assert light == f"light={cluster.urls[0]};max_model_b=30;gpu=false;slots=2"
        assert powerful == f"powerful={cluster.urls[1]};max_model_b=70;gpu=true;vram_mb=48000;slots=2"
        for url in cluster.urls:
            assert ollama.Client(host=url, timeout=5).list().models
    for url in cluster.urls:
        with pytest.raises(ConnectionError):
            ollama.Client(host=url, timeout=5).list()


def test_sollol_nodes_parses_with_hydra_config() -> None:
    config = pytest.importorskip("hydra.sollol.config")
    with start_cluster("cluster8", time_scale=FAST) as cluster:
        specs = config.parse_nodes(cluster.sollol_nodes())
        assert [s.name for s in specs] == [n.profile.name for n in cluster.nodes]
        assert [s.url for s in specs] == cluster.urls
        assert [s.max_model_b for s in specs] == [n.profile.max_model_b for n in cluster.nodes]


def test_non_loopback_hosts_are_refused() -> None:
    # Refusal is checked before any socket exists; still, no private or public address appears here.
    for host in ("0.0.0.0", "::", "example.invalid", "localhost.example.invalid"):
        with pytest.raises(ValueError, match="127.0.0.0/8"):
            SimNode(preset("seed")[0], host=host)
    with pytest.raises(ValueError):
        start_cluster("seed", hosts=["127.0.0.2", "0.0.0.0"])


def test_cli_help_and_refusal() -> None:
    run = lambda *args: subprocess.run(
        [sys.executable, "-m", "hydra.sim", *args], cwd=ROOT, capture_output=True, text=True, timeout=30, check=False)
    help_ = run("--help")
    assert help_.returncode == 0 and "--preset" in help_.stdout and "--time-scale" in help_.stdout
    bad = run("--hosts", "0.0.0.0,127.0.0.3")
    assert bad.returncode == 2 and "127.0.0.0/8" in bad.stderr


def test_cli_serves_and_prints_sollol_nodes() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "hydra.sim", "--preset", "seed", "--port", "0", "--hosts", "127.0.0.4,127.0.0.5",
         "--time-scale", "0.01"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline() for _ in range(3)]
        assert lines[0].startswith("light http://127.0.0.4:") and "cpu" in lines[0]
        assert lines[1].startswith("powerful http://127.0.0.5:") and "max 70B" in lines[1]
        assert lines[2].startswith("SOLLOL_NODES=light=http://127.0.0.4:")
        url = lines[1].split()[1]
        assert any(m.model == "llama3.1:70b" for m in ollama.Client(host=url, timeout=5).list().models)
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
