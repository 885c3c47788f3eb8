"""Open WebUI (``open-webui`` from PyPI, in ``.compat/open-webui``) pointed at the gateway, kept on this machine.

Open WebUI is started offline (its documented switches: OFFLINE_MODE, HF_HUB_OFFLINE, no version
check, no telemetry) with its embeddings done by Ollama, i.e. by Hydra. Every proxy variable names
``ProxyRecorder``, a loopback listener that answers 403 and writes down each host asked for: a
request that Open WebUI's HTTP stacks try to send off this machine is caught there, and the test
asserts the list stays empty. (Loopback is in NO_PROXY, so the gateway is reached directly.)
"""
from __future__ import annotations

import socketserver
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hydra.sim import free_port
from tests.compat.harness import EMBED_MODEL, ENVS, LOOPBACK_OPENER, SETUP_HINT, Gateway, local_env

START_TIMEOUT_S = 300.0  # the first start runs its database migrations and imports torch


@dataclass
class ProxyRecorder:
    """A proxy that forwards nothing: it records the request line of everything sent to it."""

    asked: list[str] = field(default_factory=list)
    port: int = 0

    @contextmanager
    def running(self) -> Iterator[ProxyRecorder]:
        recorder = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                line = self.rfile.readline(4096).decode("latin-1").strip()
                if line:
                    recorder.asked.append(line)
                self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        thread = threading.Thread(target=server.serve_forever, name="compat-proxy-recorder", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass(frozen=True)
class OpenWebUI:
    url: str
    log: Path
    proxy: ProxyRecorder


def _offline_env(gateway: Gateway, data: Path, proxy: ProxyRecorder, port: int) -> dict[str, str]:
    proxies = {name: proxy.url for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                                             "all_proxy")}
    return local_env(
        **proxies, DATA_DIR=str(data), PORT=str(port), HOST="127.0.0.1", WEBUI_SECRET_KEY="compat-suite-secret",
        WEBUI_AUTH="False", OLLAMA_BASE_URL=gateway.url, ENABLE_OLLAMA_API="True", ENABLE_OPENAI_API="False",
        # documented offline switches: no update check, no Hugging Face downloads, no telemetry
        OFFLINE_MODE="True", ENABLE_VERSION_UPDATE_CHECK="False", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
        ANONYMIZED_TELEMETRY="False", DO_NOT_TRACK="True", SCARF_NO_ANALYTICS="True",
        RAG_EMBEDDING_MODEL_AUTO_UPDATE="False", RAG_RERANKING_MODEL_AUTO_UPDATE="False",
        WHISPER_MODEL_AUTO_UPDATE="False", ENABLE_WEB_SEARCH="False", ENABLE_DIRECT_CONNECTIONS="False",
        # documents are embedded by Ollama's API: by Hydra
        RAG_EMBEDDING_ENGINE="ollama", RAG_EMBEDDING_MODEL=EMBED_MODEL, RAG_OLLAMA_BASE_URL=gateway.url,
        USER_AGENT="hydra-compat-suite")


@contextmanager
def open_webui(gateway: Gateway, tmp: Path) -> Iterator[OpenWebUI]:
    binary = ENVS / "open-webui" / "bin" / "open-webui"
    if not binary.exists():
        pytest.fail(f"Open WebUI is not installed in .compat/open-webui: {SETUP_HINT}")
    port = free_port()
    log = tmp / "open-webui.log"
    with ProxyRecorder().running() as proxy, log.open("w") as out:
        env = _offline_env(gateway, tmp / "data", proxy, port)
        proc = subprocess.Popen([str(binary), "serve", "--host", "127.0.0.1", "--port", str(port)], cwd=tmp, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(url, proc, log)
            yield OpenWebUI(url=url, log=log, proxy=proxy)
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"open-webui exited with {proc.returncode}: {log.read_text(errors='replace')[-4000:]}")
        try:
            with LOOPBACK_OPENER.open(url + "/health", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)  # another process starting: nothing to wait on but its port
    pytest.fail(f"open-webui did not answer {url}/health within {START_TIMEOUT_S:.0f} s: "
                f"{log.read_text(errors='replace')[-4000:]}")
