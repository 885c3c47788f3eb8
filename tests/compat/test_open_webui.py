"""Open WebUI 0.12.4 (compat/python/open-webui.txt) in Chromium, pointed at ``hydra serve``, default settings.

One Open WebUI and one browser for the module, a fresh page per test, in file order, as a user would:
models listed, a streamed chat with a simulated model and with the real embedded one, a document
uploaded and asked about, a model unloaded; and at the end, nothing asked of another host.
"""
from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.compat.harness import CHAT_MODEL, REAL_MODEL, Gateway
from tests.compat.openwebui import OpenWebUI, open_webui
from tests.e2e.browserkit import CHROMIUM, CHROMIUM_ARGS, LOOPBACK, require_chromium, shot

pytestmark = [pytest.mark.compat, pytest.mark.browser]

ANSWER_TIMEOUT_MS = 180_000  # the real model on a shared 2-core machine
FACT = "The Hydra compatibility suite's secret code is PELICAN-7341."
# Every DOM change to the last answer, recorded in the page: more than one length means it streamed.
WATCH_ANSWER = """() => {
  window.__answerLengths = [];
  new MutationObserver(() => {
    const all = document.querySelectorAll('#response-content-container');
    const last = all[all.length - 1];
    if (last) window.__answerLengths.push(last.innerText.length);
  }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


@pytest.fixture(scope="module")
def webui(gateway: Gateway, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenWebUI]:
    require_chromium()
    with open_webui(gateway, tmp_path_factory.mktemp("open-webui")) as running:
        yield running


@dataclass
class Browser:
    chromium: Any
    away: list[str] = field(default_factory=list)  # every request to another host, aborted


@pytest.fixture(scope="module")
def browser(webui: OpenWebUI) -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield Browser(chromium)
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser, webui: OpenWebUI) -> Iterator[Any]:
    """A page of its own per test: Open WebUI keeps drafts and attachments per browser profile, so one
    test's leftovers (a document that failed to process, say) never block the next."""

    def only_loopback(route: Any) -> None:
        parts = urlsplit(route.request.url)
        if parts.scheme in ("http", "https", "ws", "wss") and parts.hostname not in LOOPBACK:
            browser.away.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    context = browser.chromium.new_context(viewport={"width": 1440, "height": 1000})
    context.route("**/*", only_loopback)
    opened = context.new_page()
    opened.set_default_timeout(60_000)
    opened.goto(webui.url, wait_until="load")
    opened.wait_for_selector("#chat-input", timeout=120_000)
    whats_new = opened.get_by_text("Okay, Let's Go!")
    if whats_new.count():
        whats_new.click()
    try:
        yield opened
    finally:
        context.close()


def _new_chat(page: Any, webui: OpenWebUI, model: str) -> None:
    page.goto(webui.url, wait_until="load")
    page.wait_for_selector("#chat-input")
    page.locator('button[aria-label^="Selected model"]').first.click()
    page.get_by_placeholder("Search a model").fill(model)
    page.locator(f'button[aria-label="Select {model} model"]').click()
    assert page.locator(f'button[aria-label="Selected model: {model}"]').count() == 1


def _ask(page: Any, question: str) -> str:
    """Send a question, wait until the answer is finished (its actions appear), return the answer's text."""
    page.evaluate(WATCH_ANSWER)
    page.locator("#chat-input").click()
    page.keyboard.type(question)
    page.keyboard.press("Enter")
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.locator('button[aria-label="Regenerate"]').last.wait_for(state="attached", timeout=ANSWER_TIMEOUT_MS)
    except PlaywrightTimeout:
        shot(page, "compat-open-webui-unanswered", whole=False)
        shown = page.locator("#response-content-container").all_inner_texts()
        pytest.fail(f"no finished answer to {question!r} within {ANSWER_TIMEOUT_MS / 1000:.0f} s; shown: {shown}")
    return str(page.locator("#response-content-container").last.inner_text())


def _streamed(page: Any) -> bool:
    lengths = [n for n in page.evaluate("window.__answerLengths") if n]
    return len(set(lengths)) >= 2


def _prompts_to(gateway: Gateway, model: str) -> list[str]:
    """What each task for ``model`` carried, from the gateway's history (read-only)."""
    with sqlite3.connect(f"file:{gateway.db}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT prompt, messages_json FROM tasks WHERE model = ?", (model,)).fetchall()
    return [prompt + (json.dumps(json.loads(messages)) if messages else "") for prompt, messages in rows]


@pytest.mark.feature("Open WebUI", "list models")
def test_the_models_are_listed_once_each(page: Any, gateway: Gateway) -> None:
    page.locator('button[aria-label^="Selected model"]').first.click()
    listed = page.locator('#model-selector-list button[role="option"]')
    listed.first.wait_for()
    names = [str(b.get_attribute("data-value")) for b in listed.all()]
    shot(page, "compat-open-webui-models", whole=False)
    page.keyboard.press("Escape")
    served = {m["name"] for m in gateway.get("/api/tags")["models"]}
    assert len(names) == len(set(names)), names
    assert served <= set(names), f"not offered: {sorted(served - set(names))}"


@pytest.mark.feature("Open WebUI", "streaming")
def test_a_streamed_chat_with_a_simulated_model(page: Any, webui: OpenWebUI,
                                               gateway: Gateway) -> None:
    _new_chat(page, webui, CHAT_MODEL)
    answer = _ask(page, "Say hello")
    shot(page, "compat-open-webui-sim-chat", whole=False)
    assert gateway.sim_answer_prefix(CHAT_MODEL) in answer, answer
    assert _streamed(page), "the answer arrived in one piece"


@pytest.mark.feature("Open WebUI", "real model")
def test_a_streamed_chat_with_the_real_embedded_model(page: Any, webui: OpenWebUI) -> None:
    _new_chat(page, webui, REAL_MODEL)
    answer = _ask(page, "What is the capital of France?")
    shot(page, "compat-open-webui-real-chat", whole=False)
    assert answer.strip() and "no node could run" not in answer, answer
    assert _streamed(page), "the answer arrived in one piece"


@pytest.mark.feature("Open WebUI", "embeddings")
def test_an_uploaded_document_reaches_the_model(page: Any, webui: OpenWebUI,
                                                gateway: Gateway, tmp_path: Path) -> None:
    """Open WebUI embeds the document through Hydra (RAG_EMBEDDING_ENGINE=ollama) and puts the passage
    it retrieves into the prompt; the gateway's history shows that prompt."""
    document = tmp_path / "hydra-fact.txt"
    document.write_text(FACT + "\n")
    _new_chat(page, webui, CHAT_MODEL)
    # Open WebUI processes (extracts, embeds through Hydra) in the background and streams the file's
    # status until it is "completed" or "failed"; the body ends with the last status.
    with page.expect_response(lambda r: "/process/status" in r.url, timeout=ANSWER_TIMEOUT_MS) as processed:
        page.locator('input[type="file"][multiple]').first.set_input_files(str(document))
    status = processed.value.text()
    assert '"completed"' in status, f"Open WebUI could not process the document: {status[-500:]}"
    answer = _ask(page, "What is the secret code of the Hydra compatibility suite?")
    shot(page, "compat-open-webui-document", whole=False)
    assert answer.strip()
    assert any("PELICAN-7341" in p for p in _prompts_to(gateway, CHAT_MODEL)), \
        "no prompt to the model carried the document's passage"


@pytest.mark.feature("Open WebUI", "load / unload")
def test_unload_a_model(page: Any, webui: OpenWebUI, gateway: Gateway) -> None:
    _new_chat(page, webui, CHAT_MODEL)
    _ask(page, "Say hello")
    assert CHAT_MODEL in {m["name"] for m in gateway.get("/api/ps")["models"]}
    page.goto(webui.url, wait_until="load")  # the selector reads /api/ps when it opens a fresh page
    page.locator('button[aria-label^="Selected model"]').first.click()
    page.get_by_placeholder("Search a model").fill(CHAT_MODEL)
    item = page.locator(f'button[aria-label="Select {CHAT_MODEL} model"]')
    item.hover()
    page.locator('button[aria-label="Eject model"]').first.click(force=True)
    told = page.get_by_text("Model unloaded successfully").or_(page.get_by_text("Error unloading model"))
    told.first.wait_for()
    shot(page, "compat-open-webui-unload", whole=False)
    assert told.first.inner_text() == "Model unloaded successfully", told.first.inner_text()
    assert CHAT_MODEL not in {m["name"] for m in gateway.get("/api/ps")["models"]}


@pytest.mark.feature("Open WebUI", "stays on this machine")
def test_nothing_left_the_machine(browser: Browser, webui: OpenWebUI) -> None:
    assert browser.away == [], f"the browser asked other hosts: {browser.away[:10]}"
    assert webui.proxy.asked == [], f"Open WebUI asked other hosts: {webui.proxy.asked[:10]}"
