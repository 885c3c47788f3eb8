"""Other programs the benchmarks compare against, each installed by pip into a venv of its own under
``.bench-envs/`` (git-ignored), never into the app's: the LiteLLM proxy, SOLLOL 0.9.66.

    python = bench_env("litellm", ["litellm[proxy]"])     # creates and installs once; the venv's python
    with litellm_proxy(node_urls, model) as (url, pid):   # the proxy in front of those nodes
        ...

The first run installs (a minute or more; pip's own progress shows); later runs reuse the venv.
"""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx

from bench.processes import REPO, START_TIMEOUT_S, _end

ENVS = REPO / ".bench-envs"
LITELLM = ("litellm[proxy]",)
SOLLOL = ("sollol==0.9.66",)
LITELLM_START_TIMEOUT_S = 180.0   # the proxy imports a great deal before it listens


def bench_env(name: str, requirements: Sequence[str]) -> Path:
    """The python of venv ``.bench-envs/<name>`` with ``requirements`` installed (once: a marker file
    names what was installed, so a changed list installs again)."""
    venv = ENVS / name
    python = venv / "bin" / "python"
    marker = venv / "bench-installed.txt"
    wanted = "\n".join(requirements)
    if marker.exists() and marker.read_text() == wanted:
        return python
    print(f"installing {' '.join(requirements)} into {venv} (once) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *requirements],
                   check=True)
    marker.write_text(wanted)
    return python


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def litellm_config(node_urls: Sequence[str], model: str) -> str:
    """One deployment per node under one model name; LiteLLM's router spreads requests over them."""
    lines = ["model_list:"]
    for url in node_urls:
        lines += [f"  - model_name: {model}", "    litellm_params:", f"      model: ollama_chat/{model}",
                  f"      api_base: {url}"]
    # No callbacks, no database, no spend logs: the proxy at its leanest, as Hydra's gateway runs.
    lines += ["litellm_settings:", "  telemetry: false", "  drop_params: true", "  set_verbose: false",
              "general_settings:", "  disable_spend_logs: true", "  disable_reset_budget: true"]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def litellm_proxy(node_urls: Sequence[str], model: str, api_key: str, *,
                  workers: int = 1) -> Iterator[tuple[str, int]]:
    """The LiteLLM proxy (its own venv) in front of ``node_urls``, ``api_key`` its master key; yields
    (URL, pid) once it answers."""
    python = bench_env("litellm", LITELLM)
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "litellm.yaml"
        config.write_text(litellm_config(node_urls, model))
        # The cost map from the package, not fetched from the internet; only loopback is contacted.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HYDRA_", "SOLLOL_", "PYTHON"))}
        env.update(LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_LOG="ERROR", NO_PROXY="127.0.0.1,localhost",
                   DISABLE_ADMIN_UI="True", LITELLM_TELEMETRY="False", LITELLM_MASTER_KEY=api_key)
        process = subprocess.Popen([str(python), "-m", "litellm.proxy.proxy_cli", "--config", str(config),
                                    "--host", "127.0.0.1", "--port", str(port), "--num_workers", str(workers)],
                                   cwd=tmp, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, env=env)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_http(url + "/health/liveliness", process, LITELLM_START_TIMEOUT_S)
            yield url, process.pid
        finally:
            _end(process, terminate=True)


def _wait_http(url: str, process: subprocess.Popen, timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            if process.poll() is not None or time.monotonic() > deadline:
                err = process.stderr.read().decode(errors="replace")[-2000:] if process.stderr else ""
                raise RuntimeError(f"{url} did not answer (exit {process.poll()}): {err}") from None
            time.sleep(0.2)


class SollolArm:
    """SOLLOL 0.9.66 (its own venv) streaming from ``node_url``, in a process of its own
    (bench/sollol_arm.py): ``ttft(tokens)`` runs one chat there and returns its time to first token."""

    def __init__(self, node_url: str, model: str) -> None:
        python = bench_env("sollol", SOLLOL)
        self._process = subprocess.Popen([str(python), str(REPO / "bench" / "sollol_arm.py"), node_url, model],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
                                         env={k: v for k, v in os.environ.items() if not k.startswith("PYTHON")})
        if self._read() != "ready":
            raise RuntimeError("bench/sollol_arm.py did not start; run it by hand to see its error")

    def _read(self) -> str:
        assert self._process.stdout is not None
        return self._process.stdout.readline().strip()

    def ttft(self, tokens: int) -> float:
        assert self._process.stdin is not None
        self._process.stdin.write(f"{tokens}\n")
        self._process.stdin.flush()
        return float(self._read())

    def close(self) -> None:
        _end(self._process, terminate=False)   # closing its stdin ends it
