"""Model output and node text reach st.markdown only through safe_markdown: no image, no diagram.

(What Chromium then asks for is in tests/e2e/test_no_remote_requests.py.)
"""
from __future__ import annotations

import re

from apphelpers import code_in, keyed, markdown_in, texts, wait_healthy, wait_until
from streamlit.testing.v1 import AppTest

from hydra.sollol.types import TaskStatus
from hydra.ui.formatting import md_escape
from hydra.ui.shared import get_hydra
from tests.e2e.hostile_markdown import MARKER, scripted_output, url

PROMPT = f"Prove step by step that the sum of the first n odd numbers is n squared. {MARKER}"
EVIL = "![v](http://example.invalid/version.png)"
RUST = "```rust\nlet v = vec![1, 2];\n```"


def _outside_code(markdown: str) -> str:
    return markdown.replace(RUST, "")


def test_a_hostile_answer_and_its_thinking_show_images_as_text(cluster_env, app):
    app.run()
    wait_healthy()
    with scripted_output():
        handle = get_hydra().submit(PROMPT, max_tokens=400)
        result = handle.result(timeout=60)
    assert result.status is TaskStatus.DONE and "![answer-inline]" in result.text and "![thinking-inline]" in result.thinking
    wait_until(app, lambda at: handle.id in keyed(at, "task-"))
    card = "\n".join(markdown_in(keyed(app, "task-")[handle.id]))
    assert f"`{url('answer-inline')}`" in card and f"`{url('answer-reference')}`" in card
    assert f"`{url('thinking-inline')}`" in card                   # the thinking, too
    # Code blocks are st.code (wrapped, with a copy button): the text as the model wrote it.
    blocks = code_in(keyed(app, "answer-")[handle.id])
    assert ("rust", "let v = vec![1, 2];") in blocks
    mermaid = [text for language, text in blocks if text.startswith("flowchart LR")]
    assert mermaid and all(lang == "text" for lang, text in blocks if text in mermaid)  # its source, as text
    assert "![" not in _outside_code(card)
    assert not re.search(r"```\s*mermaid", card, re.IGNORECASE)
    history = [m for m in texts(app) if url("answer-inline") in m]  # "Read a past answer" renders it too
    assert len(history) >= 2 and all("![" not in _outside_code(m) for m in history)


def test_tool_call_arguments_cannot_leave_their_code_span(cluster_env, app):
    hostile = f"x` ![t]({url('tool')}) `"
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {
        "type": "object", "properties": {"q": {"type": "string", "enum": [hostile]}}}}}]
    app.run()
    wait_healthy()
    handle = get_hydra().submit("What is the weather?", model="llama3.2:3b", tools=tools, max_tokens=20)
    assert handle.result(timeout=30).status is TaskStatus.DONE
    wait_until(app, lambda at: any("lookup(" in m for m in markdown_in(keyed(at, "answer-").get(handle.id, {}))))
    call = next(m for m in markdown_in(keyed(app, "answer-")[handle.id]) if "lookup(" in m)
    assert call == f"- :material/build: ``lookup(q='x` !\u2060[t]({url('tool')}) `')``"


def test_a_node_card_shows_what_a_node_says_as_text():
    def page() -> None:
        from hydra.sollol.types import NodeSnapshot
        from hydra.ui.cards import node_card

        evil = "![v](http://example.invalid/version.png)"  # EVIL: the page's source is run on its own
        node_card(NodeSnapshot(
            name="n", url="http://127.0.0.1:1", healthy=False, circuit="open", last_error=f"node said {evil}",
            gpu=False, local=False, max_model_b=None, slots=1, in_flight=0, vram_total_mb=None, vram_used_mb=None,
            vram_free_mb=None, installed=(), loaded=(), version=evil, last_seen=None, requests=0, successes=0,
            failures=0, success_rate=None, ttft_p50_s=None, ttft_p95_s=None, tokens_per_s=None))

    at = AppTest.from_function(page).run()
    assert not at.exception, at.exception
    shown = texts(at, "caption") + texts(at, "error")
    assert any(f"Ollama {md_escape(EVIL)}" in t for t in texts(at, "caption"))
    assert any("node said" in t and "version.png" in t for t in texts(at, "error"))
    assert all("![" not in t for t in shown), shown


def test_chart_labels_are_text_to_plotly():
    # Plotly reads tags in labels, and a style with url(...) makes the browser fetch (seen in Chromium).
    from hydra.ui import charts

    model = '<span style="background-image:url(http://example.invalid/bg.png)">m</span>'
    dist = [{"bucket": 0.0, "node": "light", "model": model, "mode": "async", "task_type": "code", "status": "done",
             "count": 1}]
    figure = charts.share(dist, "model", "By model")
    assert figure is not None
    labels = [str(v) for trace in figure.data for v in trace.labels]
    assert labels == ['&lt;span style="background-image:url(http://example.invalid/bg.png)">m&lt;/span>']
    assert charts.color_map(["<b>n</b>"]) == {"&lt;b>n&lt;/b>": charts.PALETTE[0]}
