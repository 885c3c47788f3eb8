"""Start and stop the embedded node as a subprocess (`python -m hydra.node ...`).

The node runs in its own process so llama.cpp's threads and memory stay out of
the app's process, and a crash in native code cannot take the app down. Its
output goes to a log file; every error here names that file.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from typing import Self

from .model_files import DEFAULT_MODEL_NAME
from .server import DEFAULT_HOST, DEFAULT_PORT, READY_MARKER, NodeServer, is_loopback

__all__ = ["EmbeddedNode", "EmbeddedNodeError", "NodeServer", "node_answers"]


class EmbeddedNodeError(RuntimeError):
    """The embedded node could not start (or stopped); the message names the log."""


def node_answers(url: str, timeout: float = 1.0) -> bool:
    """True if an Ollama-compatible server answers GET {url}/api/version."""
    try:
        with urllib.request.urlopen(f"{url}/api/version", timeout=timeout) as r:
            return r.status == 200
    except (OSError, urllib.error.URLError, ValueError):
        return False


def _tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 8192))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class EmbeddedNode:
    """`python -m hydra.node` as a child process; use as a context manager.

    >>> with EmbeddedNode(port=0, log_path="node.log") as node:
    ...     ollama.Client(host=node.url).chat(model=node.model_name, messages=[...])
    """

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                 log_path: str | os.PathLike[str] | None = None, *, model_path: str | None = None,
                 model_name: str = DEFAULT_MODEL_NAME, threads: int | None = None,
                 ctx: int | None = None, start_timeout: float = 60.0,
                 allow_remote: bool = False, python: str = sys.executable,
                 verbose: bool = False, env: dict[str, str] | None = None) -> None:
        if not allow_remote and not is_loopback(host):
            raise ValueError(f"refusing to start the embedded node on {host!r}: not a "
                             "loopback address; pass allow_remote=True to expose it")
        self.host, self.port = host, port
        self.log_path = os.fspath(log_path) if log_path else os.path.join(
            tempfile.gettempdir(), f"hydra-node-{port or os.getpid()}.log")
        self.model_path, self.model_name = model_path, model_name
        self.threads, self.ctx, self.start_timeout = threads, ctx, start_timeout
        self.allow_remote, self.python, self.verbose = allow_remote, python, verbose
        self.env = env
        self._proc: subprocess.Popen[bytes] | None = None
        self._url: str | None = None

    # --- public ----------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._url is None:
            raise EmbeddedNodeError("the embedded node is not started")
        return self._url

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def command(self) -> list[str]:
        cmd = [self.python, "-m", "hydra.node", "--host", self.host,
               "--port", str(self.port), "--name", self.model_name]
        if self.model_path:
            cmd += ["--model", self.model_path]
        if self.threads:
            cmd += ["--threads", str(self.threads)]
        if self.ctx:
            cmd += ["--ctx", str(self.ctx)]
        if self.allow_remote:
            cmd.append("--allow-remote")
        if self.verbose:
            cmd.append("--verbose")
        return cmd

    def start(self) -> Self:
        """Launch the node and wait (bounded) until `/api/version` answers."""
        if self.running:
            return self
        os.makedirs(os.path.dirname(os.path.abspath(self.log_path)), exist_ok=True)
        with open(self.log_path, "ab") as log:
            start_offset = log.tell()
            log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} "
                      f"{' '.join(self.command())}\n".encode())
            log.flush()
            env = dict(os.environ if self.env is None else self.env)
            env.setdefault("PYTHONUNBUFFERED", "1")
            # The child must import this very package, wherever we run from.
            root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
            env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
            self._proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, env=env,
                                          start_new_session=True)
        try:
            self._url = self._wait_ready(start_offset)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `timeout`; idempotent."""
        proc, self._proc = self._proc, None
        self._url = None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- internals -------------------------------------------------------------

    def _ready_url(self, offset: int) -> str | None:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                text = f.read().decode("utf-8", errors="replace")
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith(READY_MARKER):
                return line[len(READY_MARKER):].split()[0]
        return None

    def _wait_ready(self, offset: int) -> str:
        proc = self._proc
        assert proc is not None
        deadline = time.monotonic() + self.start_timeout
        url = None
        while time.monotonic() < deadline:
            if self._proc is not proc:  # stop() from another thread (a close while it loads): not a crash
                raise EmbeddedNodeError("the embedded node was stopped while it was starting")
            code = proc.poll()
            if code is not None:
                raise EmbeddedNodeError(
                    f"the embedded node exited with code {code} while starting; "
                    f"see {self.log_path}:\n{_tail(self.log_path)}")
            # Wait for our child's own marker: something else answering on a
            # busy port must not pass for it.
            url = url or self._ready_url(offset)
            if url and node_answers(url, timeout=1.0):
                return url
            time.sleep(0.05)
        raise EmbeddedNodeError(
            f"the embedded node did not answer within {self.start_timeout:.0f}s; "
            f"see {self.log_path}:\n{_tail(self.log_path)}")
