"""What the Chromium tests share: Debian's Chromium, a Streamlit process on 127.0.0.1, screenshots,
and which requests left the machine."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from hydra.sim import free_port, start_cluster

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# Only loopback is ever contacted: no proxy, even if the environment names one.
_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def require_chromium() -> None:
    if os.path.exists(CHROMIUM):
        return
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing; in CI the README's test command (make test) installs it")
    pytest.skip(f"{CHROMIUM} is not installed (make test installs Debian's chromium); browser tests skipped")


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without Hydra's settings, with ``extra`` and no proxy for loopback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HYDRA_", "SOLLOL_", "OLLAMA_"))}
    env.update(NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost", **extra)
    return env


@contextmanager
def streamlit(script: str, env: Mapping[str, str], log: Path) -> Iterator[str]:
    """``streamlit run script`` (relative to the repository) on 127.0.0.1; yields its URL once healthy."""
    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", script, "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=dict(env), stdout=out, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"streamlit exited with {proc.returncode}: {log.read_text()[-2000:]}")
                try:
                    with _LOCAL.open(f"{url}/_stcore/health", timeout=2) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail("streamlit did not answer on /_stcore/health within 60 s")
                time.sleep(0.25)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


@contextmanager
def app_over_seed(tmp: Path, time_scale: float) -> Iterator[str]:
    """``app.py`` over a simulated ``seed`` cluster of its own (no embedded node, no gateway, its own
    database in ``tmp``); yields the app's URL."""
    require_chromium()
    with start_cluster("seed", time_scale=time_scale) as cluster:
        env = clean_env(SOLLOL_NODES=cluster.sollol_nodes(), HYDRA_DB=str(tmp / "hydra.db"),
                        HYDRA_EMBEDDED_NODE="off", HYDRA_GATEWAY_PORT="0", SOLLOL_DISCOVER_LOCALHOST="false")
        with streamlit("app.py", env, tmp / "streamlit.log") as url:
            yield url


@contextmanager
def chromium_browser() -> Iterator[Any]:
    """Debian's Chromium under Playwright, closed at the end."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def shot(page: Any, name: str, *, whole: bool = True) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    if not whole:  # this very moment (streaming): no resize, no wait
        page.screenshot(path=str(SHOTS / f"{name}.png"))
        return
    # Streamlit scrolls inside its main block, not the document: grow the viewport to the content instead.
    height = page.evaluate("document.querySelector('[data-testid=stMain]')?.scrollHeight ?? 1000")
    page.set_viewport_size({"width": 1440, "height": max(1000, min(int(height) + 40, 8000))})
    page.wait_for_timeout(500)
    page.screenshot(path=str(SHOTS / f"{name}.png"))
    page.set_viewport_size({"width": 1440, "height": 1000})


def off_machine(urls: list[str]) -> list[str]:
    """The URLs that name a host other than this machine (``data:`` and ``blob:`` of the page stay here)."""
    away = []
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme in ("data", "about"):
            continue
        if parts.scheme == "blob":
            parts = urlsplit(parts.path)
        if parts.hostname not in LOOPBACK:
            away.append(url)
    return away
