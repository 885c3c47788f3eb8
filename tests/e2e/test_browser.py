"""What only a browser shows: tokens streaming into the page, pages refreshing themselves.

Real Chromium (Debian's, through Playwright) against ``streamlit run app.py``
over a simulated ``seed`` cluster on 127.0.0.x. Screenshots of every page go
to ``artifacts/screenshots/``.
"""
from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from hydra.sim import start_cluster
from tests.e2e.browserkit import CHROMIUM, CHROMIUM_ARGS, SHOTS, clean_env, require_chromium, streamlit
from tests.e2e.browserkit import shot as _shot

pytestmark = pytest.mark.browser

PROMPTS = ["Generate a Python function that checks whether a string is a palindrome",
           "Analyze the time complexity of this code: for i in range(n): for j in range(i): pass",
           "Create unit tests for a function add(a, b)"]
_require_chromium = require_chromium  # the name tests/e2e/test_dashboard.py imports


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    # time_scale 0.5: a 60-token answer on the light node streams for about 3 s, long enough to watch.
    with start_cluster("seed", time_scale=0.5) as c:
        yield c


@pytest.fixture(scope="module")
def app_url(cluster, tmp_path_factory) -> Iterator[str]:
    require_chromium()
    tmp = tmp_path_factory.mktemp("app")
    env = clean_env(SOLLOL_NODES=cluster.sollol_nodes(), HYDRA_DB=str(tmp / "hydra.db"), HYDRA_EMBEDDED_NODE="off",
                    HYDRA_GATEWAY_PORT="0", SOLLOL_DISCOVER_LOCALHOST="false")
    with streamlit("app.py", env, tmp / "streamlit.log") as url:
        yield url


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
