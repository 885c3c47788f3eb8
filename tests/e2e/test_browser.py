"""What only a browser shows: tokens streaming into the page, pages refreshing themselves.

Real Chromium (Debian's, through Playwright) against ``streamlit run app.py``
over a simulated ``seed`` cluster on 127.0.0.x. Screenshots of every page go
to ``artifacts/screenshots/``.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from hydra.sim import free_port, start_cluster

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
PROMPTS = ["Generate a Python function that checks whether a string is a palindrome",
           "Analyze the time complexity of this code: for i in range(n): for j in range(i): pass",
           "Create unit tests for a function add(a, b)"]
# Only loopback is ever contacted: no proxy, even if the environment names one.
_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _require_chromium() -> None:
    if os.path.exists(CHROMIUM):
        return
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing; in CI the README's test command (make test) installs it")
    pytest.skip(f"{CHROMIUM} is not installed (make test installs Debian's chromium); browser tests skipped")


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    # time_scale 0.5: a 60-token answer on the light node streams for about 3 s, long enough to watch.
    with start_cluster("seed", time_scale=0.5) as c:
        yield c


@pytest.fixture(scope="module")
def app_url(cluster, tmp_path_factory) -> Iterator[str]:
    _require_chromium()
    tmp = tmp_path_factory.mktemp("app")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HYDRA_", "SOLLOL_", "OLLAMA_"))}
    env.update(SOLLOL_NODES=cluster.sollol_nodes(), HYDRA_DB=str(tmp / "hydra.db"), HYDRA_EMBEDDED_NODE="off", HYDRA_GATEWAY_PORT="0",
               SOLLOL_DISCOVER_LOCALHOST="false", NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    port = free_port()
    with open(tmp / "streamlit.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"streamlit exited with {proc.returncode}: {(tmp / 'streamlit.log').read_text()[-2000:]}")
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


@pytest.fixture(scope="module")
def page(app_url):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1440, "height": 1000})
            page = context.new_page()
            # Leaving a page with an unsent form raises "beforeunload"; Playwright would dismiss it
            # (cancelling the navigation) and one failed test would take the next ones down with it.
            page.on("dialog", lambda dialog: dialog.accept())
            yield page
        finally:
            browser.close()


def _shot(page, name: str, *, whole: bool = True) -> None:
    if not whole:  # this very moment (streaming): no resize, no wait
        page.screenshot(path=str(SHOTS / f"{name}.png"))
        return
    # Streamlit scrolls inside its main block, not the document: grow the viewport to the content instead.
    height = page.evaluate("document.querySelector('[data-testid=stMain]')?.scrollHeight ?? 1000")
    page.set_viewport_size({"width": 1440, "height": max(1000, min(int(height) + 40, 8000))})
    page.wait_for_timeout(500)
    page.screenshot(path=str(SHOTS / f"{name}.png"))
    page.set_viewport_size({"width": 1440, "height": 1000})


def _cards(page) -> dict[str, tuple[str, str]]:
    """task id -> (card text, answer text) of every task card on the page."""
    out = {}
    for card in page.locator("[class*='st-key-task-']").all():
        match = re.search(r"st-key-task-(\w+)", card.get_attribute("class") or "")
        if match:
            answer = page.locator(f".st-key-answer-{match.group(1)}")
            out[match.group(1)] = (card.inner_text(), answer.inner_text() if answer.count() else "")
    return out


def _status(card_text: str) -> str:
    match = re.search(r"\b(queued|running|done|failed|cancelled|interrupted)\b", card_text)
    return match.group(1) if match else "?"


def test_three_tasks_stream_side_by_side(page, app_url):
    page.goto(app_url)
    page.get_by_text("2/2 nodes healthy").wait_for(timeout=30_000)

    page.get_by_label("Prompt", exact=True).fill("\n".join(PROMPTS))
    page.get_by_label("Max tokens", exact=True).fill("60")
    page.get_by_text("Batch: one task per line").click()
    page.get_by_role("button", name=re.compile("Run")).click()

    # Tokens appear while the task still runs: the same card's answer grows between two looks.
    seen: dict[str, int] = {}
    grew = None
    deadline = time.monotonic() + 45
    while grew is None and time.monotonic() < deadline:
        for task_id, (card, answer) in _cards(page).items():
            if _status(card) == "running" and "[simulated" in answer:
                if not seen:  # the first tokens on screen: keep a picture of the cards mid-stream
                    page.locator(f".st-key-task-{task_id}").scroll_into_view_if_needed()
                    _shot(page, "tasks-streaming", whole=False)
                if task_id in seen and len(answer) > seen[task_id]:
                    grew = (task_id, seen[task_id], len(answer))
                seen.setdefault(task_id, len(answer))
        page.wait_for_timeout(150)
    assert grew, f"no running card's answer grew within 45 s; cards: {_cards(page)}"

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        cards = _cards(page)
        if len(cards) >= 3 and all(_status(c) == "done" for c, _ in cards.values()):
            break
        page.wait_for_timeout(500)
    cards = _cards(page)
    assert len(cards) == 3 and all(_status(c) == "done" for c, _ in cards.values()), cards
    assert all("[simulated" in answer for _, answer in cards.values())
    page.wait_for_timeout(1500)  # the page reruns once when the last task ends (history table)
    _shot(page, "tasks")


def test_distribution_shows_both_nodes(page, app_url):
    page.goto(f"{app_url}/Distribution")
    page.get_by_text("Routing decisions").wait_for(timeout=30_000)
    counts = page.get_by_text("Since this process started")
    counts.wait_for(timeout=15_000)
    text = counts.inner_text()
    assert re.search(r"light \d+", text) and re.search(r"powerful \d+", text), text
    legend = page.locator(".st-key-chart-node .legendtext")
    legend.first.wait_for(timeout=15_000)
    names = legend.all_text_contents()
    assert "light" in names and "powerful" in names, names
    page.wait_for_timeout(1000)
    _shot(page, "distribution")


def test_nodes_page_refreshes_itself(page, app_url):
    page.goto(f"{app_url}/Nodes")
    stamp = page.get_by_text(re.compile(r"Last refreshed \d\d:\d\d:\d\d"))
    stamp.wait_for(timeout=30_000)
    first = stamp.inner_text()
    page.get_by_text("powerful").first.wait_for(timeout=15_000)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and stamp.inner_text() == first:
        page.wait_for_timeout(500)
    assert stamp.inner_text() != first, f"'{first}' did not change within 15 s"
    _shot(page, "nodes")


@pytest.mark.parametrize("path, heading", [("Reasoning", "Try a prompt"), ("Settings", "Add a node")])
def test_other_pages_render(page, app_url, path, heading):
    page.goto(f"{app_url}/{path}")
    page.get_by_text(heading).first.wait_for(timeout=30_000)
    assert page.locator("[data-testid='stException']").count() == 0
    page.wait_for_timeout(800)
    _shot(page, path.lower())
