"""The compatibility suite's moving parts: the gateway as a user runs it, and a client run in its own env.

The gateway is ``python -m hydra serve`` in a subprocess, over a simulated ``seed`` cluster (real HTTP
on 127.0.0.x) and the embedded node with the real SmolLM2 model (``python -m hydra.node``). Each
client runs as a subprocess of its own environment (``.compat/<client>``, ``compat/js``) a scenario
script that prints one JSON object, ``{scenario: {"ok": true, "value": ...} | {"ok": false, ...}}``;
the tests assert on those values. Nothing here imports a client: the app's venv never has them.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hydra.sim import SimCluster, free_port, start_cluster

ROOT = Path(__file__).resolve().parents[2]
ENVS = ROOT / ".compat"
SCENARIOS = ROOT / "compat" / "scenarios"
JS = ROOT / "compat" / "js"
REAL_MODEL = "smollm2:135m"  # the embedded node's model (hydra/node/model_files.py)
CHAT_MODEL = "llama3.2:3b"   # a simulated text-only model on both seed nodes
OTHER_MODEL = "qwen3:8b"     # a second simulated model, to tell answers apart
EMBED_MODEL = "nomic-embed-text"  # the embedding model for the simulator
SIM_TIME_SCALE = 0.05
START_TIMEOUT_S = 180.0      # the embedded node loads a real model; the machine is shared
SETUP_HINT = "run `make compat-setup` (python3 compat/install.py) to install the clients"
# Clients run with every proxy variable naming a closed loopback port (loopback itself is in NO_PROXY): a
# client that tries to reach another host through an env-aware HTTP stack fails at once, here.
DEAD_PROXY = "http://127.0.0.1:9"
LOOPBACK_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only, never a proxy


@dataclass(frozen=True)
class Gateway:
    url: str
    cluster: SimCluster
    log: Path
    db: Path  # the gateway's history: what each task asked, read to see what a client sent

    def get(self, path: str) -> Any:
        with LOOPBACK_OPENER.open(self.url + path, timeout=10) as response:
            return json.load(response)

    def post(self, path: str, body: Mapping[str, Any]) -> Any:
        request = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with LOOPBACK_OPENER.open(request, timeout=60) as response:
            return json.load(response)

    def sim_answer_prefix(self, model: str) -> str:
        """How a simulated model starts every answer (hydra/sim/textgen.py): the model names itself."""
        return f"[simulated {model} on "


def local_env(**extra: str) -> dict[str, str]:
    """This environment without Hydra's settings or any proxy; loopback never goes through a proxy."""
    drop = ("HYDRA_", "SOLLOL_", "OLLAMA_", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
            "all_proxy")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost", **extra)
    return env


def _wait_for_line(proc: subprocess.Popen[str], timeout: float) -> str:
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline() if proc.stdout else ""), daemon=True)
    reader.start()
    reader.join(timeout)
    return lines[0] if lines else ""


def _wait_for_models(url: str, wanted: set[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    while time.monotonic() < deadline:
        try:
            with LOOPBACK_OPENER.open(url + "/api/tags", timeout=5) as response:
                seen = {m["name"] for m in json.load(response)["models"]}
        except OSError:
            seen = set()
        if wanted <= seen:
            return
        time.sleep(0.2)  # polling the gateway's own listing; no event to wait on across processes
    pytest.fail(f"the gateway did not list {sorted(wanted - seen)} within {timeout:.0f} s (it lists {sorted(seen)})")


@contextmanager
def _process(cmd: list[str], env: Mapping[str, str], log: Path) -> Iterator[subprocess.Popen[str]]:
    with log.open("w") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=dict(env), stdout=subprocess.PIPE, stderr=err, text=True)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def _wait_for_node(url: str, proc: subprocess.Popen[str], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the embedded node exited with {proc.returncode}: {log.read_text()[-3000:]}")
        try:
            with LOOPBACK_OPENER.open(url + "/api/version", timeout=5):
                return
        except OSError:
            time.sleep(0.2)  # another process starting: nothing to wait on but its port
    pytest.fail(f"the embedded node did not answer at {url} within {timeout:.0f} s: {log.read_text()[-3000:]}")


def _warm(node_url: str) -> None:
    """One token from the embedded node, directly: its first answer pays llama.cpp's warm-up, which on a
    loaded shared machine can pass the router's 10 s first-token limit for a model with nothing measured
    yet. The suite tests the clients, not that cold start."""
    body = json.dumps({"model": REAL_MODEL, "prompt": "hi", "stream": False, "options": {"num_predict": 1}}).encode()
    request = urllib.request.Request(node_url + "/api/generate", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    with LOOPBACK_OPENER.open(request, timeout=START_TIMEOUT_S) as response:
        json.load(response)


@contextmanager
def hydra_serve(tmp: Path) -> Iterator[Gateway]:
    """``python -m hydra serve --port 0`` over a simulated seed cluster and the embedded node.

    The embedded node runs as ``python -m hydra.node`` on a free port, named ``embedded`` in
    SOLLOL_NODES, rather than through HYDRA_EMBEDDED_NODE=on: that one listens on the fixed port
    11435, where another test run on the machine may already have (and then stop) its own.
    """
    cluster = start_cluster("seed", time_scale=SIM_TIME_SCALE)
    node_url = f"http://127.0.0.1:{free_port()}"
    node_log, serve_log = tmp / "embedded-node.log", tmp / "hydra-serve.log"
    node_cmd = [sys.executable, "-m", "hydra.node", "--port", node_url.rsplit(":", 1)[1]]
    nodes = f"{cluster.sollol_nodes()},embedded={node_url};max_model_b=1;gpu=false;slots=1"
    env = local_env(SOLLOL_NODES=nodes, HYDRA_DB=str(tmp / "hydra.db"), HYDRA_EMBEDDED_NODE="off",
                    SOLLOL_DISCOVER_LOCALHOST="false", PYTHONPATH=str(ROOT))
    try:
        with _process(node_cmd, env, node_log) as node:
            _wait_for_node(node_url, node, node_log, START_TIMEOUT_S)
            _warm(node_url)
            with _process([sys.executable, "-m", "hydra", "serve", "--port", "0"], env, serve_log) as serve:
                line = _wait_for_line(serve, START_TIMEOUT_S)
                if "gateway at " not in line:
                    pytest.fail(f"python -m hydra serve did not start: {line!r}; its log: "
                                f"{serve_log.read_text()[-3000:]}")
                url = line.split("gateway at ")[1].split()[0]
                _wait_for_models(url, {REAL_MODEL, CHAT_MODEL, OTHER_MODEL}, START_TIMEOUT_S)
                yield Gateway(url=url, cluster=cluster, log=serve_log, db=tmp / "hydra.db")
    finally:
        cluster.stop()


def client_python(client: str) -> Path:
    python = ENVS / client / "bin" / "python"
    if not python.exists():
        pytest.fail(f"the {client} client is not installed in .compat/{client}: {SETUP_HINT}")
    return python


def node_binary() -> list[str]:
    if not (JS / "node_modules" / "ollama").exists():
        pytest.fail(f"the JavaScript clients are not installed in compat/js/node_modules: {SETUP_HINT}")
    return ["node"]


def run_scenarios(command: list[str], gateway: Gateway, *, timeout: float = 600.0,
                  env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Run one client's scenario script; its JSON results by scenario name."""
    full_env = local_env(HTTP_PROXY=DEAD_PROXY, HTTPS_PROXY=DEAD_PROXY, ALL_PROXY=DEAD_PROXY, http_proxy=DEAD_PROXY,
                         https_proxy=DEAD_PROXY, all_proxy=DEAD_PROXY, COMPAT_URL=gateway.url, COMPAT_CHAT_MODEL=CHAT_MODEL, COMPAT_OTHER_MODEL=OTHER_MODEL,
                         COMPAT_REAL_MODEL=REAL_MODEL, COMPAT_EMBED_MODEL=EMBED_MODEL, **(env or {}))
    done = subprocess.run(command, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout,
                          check=False)
    last = done.stdout.strip().splitlines()[-1:] or [""]
    try:
        results = json.loads(last[0])
    except json.JSONDecodeError:
        pytest.fail(f"{' '.join(command)} printed no results (exit {done.returncode}):\n"
                    f"stdout: {done.stdout[-2000:]}\nstderr: {done.stderr[-4000:]}")
    assert isinstance(results, dict)
    return results


def value(results: Mapping[str, Any], scenario: str) -> Any:
    """The value a scenario returned; the test fails with the client's own error if it raised."""
    outcome = results.get(scenario)
    if outcome is None:
        pytest.fail(f"scenario {scenario!r} did not run; ran: {sorted(results)}")
    if not outcome["ok"]:
        pytest.fail(f"{scenario}: the client raised {outcome['type']} (HTTP status {outcome.get('status')}): "
                    f"{outcome['error']}")
    return outcome["value"]


def failure(results: Mapping[str, Any], scenario: str) -> dict[str, Any]:
    """The error a scenario was expected to raise; the test fails if the client succeeded."""
    outcome = results.get(scenario)
    if outcome is None:
        pytest.fail(f"scenario {scenario!r} did not run; ran: {sorted(results)}")
    if outcome["ok"]:
        pytest.fail(f"{scenario}: expected the client to raise, it returned {json.dumps(outcome['value'])[:500]}")
    return dict(outcome)
