"""The app loads nothing from elsewhere: hostile model output, rendered in real Chromium, makes the
browser ask no host but this machine, and neither does any page.

Requests are counted when attempted (``example.invalid`` never resolves), through Playwright's
``request`` event of the whole browser context. Screenshots go to ``artifacts/screenshots/``.
"""
from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from hydra.sim import free_port, start_cluster
from tests.e2e.browserkit import (
    ROOT,
    chromium_browser,
    clean_env,
    off_machine,
    require_chromium,
    shot,
    streamlit,
)
from tests.e2e.hostile_markdown import FETCHING_RAW, HOSTILE, MARKER, MERMAID_RAW, scripted_output, url

pytestmark = pytest.mark.browser

PAGES = [("Nodes", "Last refreshed"), ("Distribution", "Routing decisions"), ("Reasoning", "Try a prompt"),
         ("Settings", "Add a node"), ("Batch", "New batch")]
PROMPT = f"Prove step by step that the sum of the first n odd numbers is n squared, then analyze why. {MARKER}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium_browser() as chromium:
        yield chromium


class Requests:
    """Every request a browser context attempts (and every WebSocket it opens)."""

    def __init__(self, context: Any) -> None:
        self.urls: list[str] = []
        context.on("request", lambda request: self.urls.append(request.url))
        context.on("page", lambda page: page.on("websocket", lambda ws: self.urls.append(ws.url)))

    def away(self) -> list[str]:
        return off_machine(self.urls)

    def cases(self) -> set[str]:
        """The hostile cases whose URL was asked for."""
        return {m.group(1) for u in self.urls if (m := re.match(r"https?://example\.invalid/([\w-]+)", u, re.IGNORECASE))}


def _context(browser: Any) -> tuple[Any, Any, Requests]:
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    requests = Requests(context)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    return context, page, requests


def _wait_for(page: Any, predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout:g} s: {what}")
        page.wait_for_timeout(100)  # Playwright delivers the page's events while it waits


# --- Streamlit's Markdown, case by case ----------------------------------------------------------

@pytest.fixture(scope="module")
def probe(tmp_path_factory) -> Iterator[tuple[str, str]]:
    require_chromium()
    control = f"http://127.0.0.1:{free_port()}/mermaid-control.png"  # nothing listens: only the attempt counts
    env = clean_env(PROBE_CONTROL_URL=control, PYTHONPATH=str(ROOT))  # the page imports hydra and tests
    with streamlit("tests/e2e/markdown_page.py", env, tmp_path_factory.mktemp("probe") / "streamlit.log") as base:
        yield base, control


def _render(browser: Any, base: str, control: str, mode: str) -> tuple[Requests, dict[str, str]]:
    """What the probe page asked for, and the text each case shows."""
    context, page, requests = _context(browser)
    try:
        page.goto(f"{base}/?mode={mode}")
        page.get_by_text("END-OF-CASES").wait_for(timeout=60_000)
        if mode == "raw":  # the control: the cases known to fetch do
            _wait_for(page, lambda: FETCHING_RAW <= requests.cases() and MERMAID_RAW & requests.cases(), 30,
                      f"raw cases fetched: {sorted(requests.cases())}, expected {sorted(FETCHING_RAW)} and a diagram")
        else:  # the last diagram drawn: any fetch a case could cause has been asked for by now
            _wait_for(page, lambda: control in requests.urls, 30, "the control diagram's image was asked for")
        return requests, {name: page.locator(f".st-key-case-{name}").inner_text() for name in HOSTILE}
    finally:
        shot(page, f"markdown-{mode}")
        context.close()


def test_unprotected_markdown_fetches_so_the_probe_can_see_it(browser, probe):
    requests, _ = _render(browser, *probe, "raw")
    assert FETCHING_RAW <= requests.cases() and MERMAID_RAW & requests.cases()


def test_safe_markdown_makes_chromium_fetch_nothing(browser, probe):
    requests, shown = _render(browser, *probe, "safe")
    assert requests.away() == []
    assert requests.cases() == set()
    assert f"[image: chart — {url('inline')}]" in shown["inline"]
    assert f"[image: logo — {url('reference')}]" in shown["reference"]
    assert 'img: "http://example.invalid/mermaid.png' in shown["mermaid"]  # the source, as code
    assert f'<img src="{url("raw-img")}">' in shown["raw-img"]


# --- the app, with a node that answers with hostile text ---------------------------------------------

@pytest.fixture(scope="module")
def app_url(tmp_path_factory) -> Iterator[str]:
    require_chromium()
    tmp = tmp_path_factory.mktemp("app")
    with scripted_output(), start_cluster("seed", time_scale=0.05) as cluster:
        env = clean_env(SOLLOL_NODES=cluster.sollol_nodes(), HYDRA_DB=str(tmp / "hydra.db"), HYDRA_EMBEDDED_NODE="off",
                        HYDRA_GATEWAY_PORT="0", SOLLOL_DISCOVER_LOCALHOST="false")
        with streamlit("app.py", env, tmp / "streamlit.log") as base:
            yield base


def _answer_done(page: Any) -> bool:
    card = page.locator("[class*='st-key-task-']").first
    return card.count() > 0 and bool(re.search(r"\bdone\b", card.inner_text()))


def test_hostile_model_output_and_every_page_ask_only_this_machine(browser, app_url):
    context, page, requests = _context(browser)
    try:
        page.goto(app_url)
        page.get_by_text("2/2 nodes healthy").wait_for(timeout=30_000)
        page.get_by_label("Prompt", exact=True).fill(PROMPT)
        page.get_by_label("Max tokens", exact=True).fill("400")
        page.get_by_role("button", name=re.compile("Run")).click()
        _wait_for(page, lambda: _answer_done(page), 60, "the hostile task is done")

        answer = page.locator("[class*='st-key-answer-']").first
        answer.get_by_text("That is all.").wait_for(timeout=10_000)
        card = page.locator("[class*='st-key-task-']").first
        card.get_by_text("Thinking", exact=True).click()
        card.get_by_text("then answer.").wait_for(timeout=10_000)
        assert requests.away() == [], sorted(set(requests.away()))  # drawing the answer and thinking asked none
        text = answer.inner_text()
        assert f"[image: answer-inline — {url('answer-inline')}]" in text
        assert f"[image: answer-reference — {url('answer-reference')}]" in text
        assert f'<img src="{url("answer-raw-img")}">' in text          # raw HTML: shown, not loaded
        assert "vec![1, 2];" in text                                    # code as the model wrote it
        assert 'img: "http://example.invalid/answer-mermaid' in text     # a diagram's source, not a diagram
        assert f"[image: thinking-inline — {url('thinking-inline')}]" in card.inner_text()
        page.get_by_text("Read a past answer", exact=True).click()
        page.get_by_text("image: answer-inline").nth(1).wait_for(timeout=10_000)  # history shows it inert too
        shot(page, "hostile-output")

        for path, heading in PAGES:
            page.goto(f"{app_url}/{path}")
            page.get_by_text(heading).first.wait_for(timeout=30_000)
            assert page.locator("[data-testid='stException']").count() == 0
            shot(page, f"hostile-{path.lower()}")
        page.goto(app_url)  # and back: the cards again, from a fresh page
        page.get_by_text("image: answer-inline").first.wait_for(timeout=30_000)
    finally:
        context.close()
    assert any("127.0.0.1" in u for u in requests.urls)  # the recorder saw the app itself
    assert requests.away() == [], sorted(set(requests.away()))
