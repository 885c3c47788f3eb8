"""The SOLLOL Dashboard in real Chromium: the gateway's page fills itself in from the live cluster,
reads well on a desktop and a phone, and never asks any host but the gateway's."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from hydra.gateway import Gateway
from hydra.service import Hydra
from hydra.sim import start_cluster

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    from tests.e2e.test_browser import _require_chromium
    _require_chromium()
    tmp = tmp_path_factory.mktemp("dashboard")
    with start_cluster("seed", time_scale=0.2) as cluster:
        env = {"SOLLOL_NODES": cluster.sollol_nodes(), "HYDRA_DB": str(tmp / "h.db"), "HYDRA_EMBEDDED_NODE": "off",
               "SOLLOL_DISCOVER_LOCALHOST": "false", "HYDRA_GATEWAY_PORT": "0"}
        hydra = Hydra.from_env(env, poll_interval_s=0.1).start()
        try:
            for prompt in ("Write a Python function that reverses a list", "Explain the CAP theorem briefly"):
                hydra.submit(prompt, max_tokens=8).result(timeout=60)
            with Gateway(hydra, port=0) as served:
                yield served
        finally:
            hydra.close()


@pytest.mark.parametrize("size", [(1440, 900), (390, 844)], ids=["desktop", "phone"])
def test_the_dashboard_shows_the_cluster_and_asks_no_other_host(gateway: Gateway, size: tuple[int, int]) -> None:
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    asked: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": size[0], "height": size[1]})
            page.on("request", lambda request: asked.append(request.url))
            errors: list[Any] = []
            page.on("pageerror", lambda error: errors.append(error))
            page.goto(gateway.url + "/")
            page.wait_for_function("document.querySelectorAll('#nodes tbody tr').length === 2", timeout=15_000)
            page.wait_for_selector("#decisions details", timeout=15_000)
            nodes = page.inner_text("#nodes tbody")
            assert "light" in nodes and "powerful" in nodes and "healthy" in nodes
            page.wait_for_function("document.querySelector('#summary').textContent.includes('2 nodes (2 healthy)')",
                                   timeout=15_000)
            assert page.locator("#by-node .bar-row").count() >= 1
            page.locator("#decisions summary").first.click()
            assert "candidate" in page.inner_text("#decisions")
            page.screenshot(path=str(SHOTS / f"dashboard-{size[0]}x{size[1]}.png"), full_page=True)
            assert not errors, errors
        finally:
            browser.close()
    assert asked, "the page made no request at all"
    hosts = {urlsplit(url).hostname for url in asked}
    assert hosts == {"127.0.0.1"}, hosts
