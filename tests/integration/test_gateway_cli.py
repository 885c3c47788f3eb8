"""``python -m hydra`` in a subprocess against a simulated cluster: help, nodes, submit, serve."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx

from hydra.sim import SimCluster

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 60


def cli_env(cluster: SimCluster, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HYDRA_", "SOLLOL_")) and k != "OLLAMA_HOST"}
    env.update(PYTHONPATH=str(ROOT), SOLLOL_NODES=cluster.sollol_nodes(), HYDRA_DB=str(tmp_path / "cli.db"),
               HYDRA_EMBEDDED_NODE="off", SOLLOL_DISCOVER_LOCALHOST="false", **extra)
    return env


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hydra", *args], check=False, env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=TIMEOUT)


def test_help_lists_the_commands(seed: SimCluster, tmp_path: Path) -> None:
    done = run(["--help"], cli_env(seed, tmp_path))
    assert done.returncode == 0
    assert all(word in done.stdout for word in ("serve", "nodes", "submit"))
    sub = run(["submit", "--help"], cli_env(seed, tmp_path))
    assert "--mode" in sub.stdout and "--priority" in sub.stdout and "--model" in sub.stdout


def test_nodes_prints_health_and_models(seed: SimCluster, tmp_path: Path) -> None:
    done = run(["nodes"], cli_env(seed, tmp_path))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:3] == ["NODE", "URL", "HEALTH"]
    rows = {line.split()[0]: line for line in lines[1:3]}
    assert set(rows) == {"light", "powerful"} and all("healthy" in r for r in rows.values())
    assert "GPU" in rows["powerful"] and "CPU" in rows["light"]
    assert any(line.startswith("powerful models:") and "llama3.1:70b" in line for line in lines)


def test_nodes_with_every_node_down_says_so(tmp_path: Path, clusters) -> None:  # type: ignore[no-untyped-def]
    cluster = clusters("seed")
    env = cli_env(cluster, tmp_path)
    cluster.stop()
    done = run(["nodes", "--wait", "0.5"], env)
    assert done.returncode == 1 and "down" in done.stdout


def test_submit_streams_and_reports_where_it_ran(seed: SimCluster, tmp_path: Path) -> None:
    done = run(["submit", "hello there", "--model", "llama3.2:3b", "--max-tokens", "7", "--mode", "fast",
                "--priority", "8"], cli_env(seed, tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("[simulated llama3.2:3b on ")
    summary = done.stderr.strip().splitlines()[-1]
    assert summary.startswith("done: node=") and "model=llama3.2:3b" in summary
    assert "ttft=" in summary and "tokens/s=" in summary and "tokens=7" in summary


def test_submit_of_an_unknown_model_fails_with_a_reason(seed: SimCluster, tmp_path: Path) -> None:
    done = run(["submit", "hi", "--model", "nope:1b"], cli_env(seed, tmp_path))
    assert done.returncode == 1 and "no node could run" in done.stderr


def test_serve_prints_the_url_serves_and_stops_on_ctrl_c(seed: SimCluster, tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "hydra", "serve", "--port", "0"], env=cli_env(seed, tmp_path),
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline()))  # type: ignore[union-attr]
        reader.start()
        reader.join(TIMEOUT)
        assert lines and "gateway at http://127.0.0.1:" in lines[0], proc.stderr
        url = lines[0].split("gateway at ")[1].split()[0]
        models = httpx.get(url + "/api/tags", timeout=10).json()["models"]
        assert "llama3.1:70b" in {m["name"] for m in models}
        reply = httpx.post(url + "/api/generate", json={"model": "llama3.2:3b", "prompt": "x", "stream": False,
                                                        "options": {"num_predict": 3}}, timeout=20)
        assert reply.json()["eval_count"] == 3
        proc.send_signal(signal.SIGINT)
        assert proc.wait(TIMEOUT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_a_process_that_never_closes_hydra_still_exits(seed: SimCluster, tmp_path: Path) -> None:
    """The gateway's threads must not hold the interpreter open: Hydra.close() runs from atexit, after them."""
    from hydra.sim.server import free_port

    script = ("from hydra.service import Hydra\n"
              "h = Hydra.from_env().start()\n"
              "print(h.gateway.url, flush=True)\n")
    env = cli_env(seed, tmp_path, HYDRA_GATEWAY_PORT=str(free_port()))
    done = subprocess.run([sys.executable, "-c", script], check=False, env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert done.returncode == 0 and done.stdout.startswith("http://127.0.0.1:"), done.stderr
