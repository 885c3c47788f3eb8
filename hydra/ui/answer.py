"""A model's answer on a card: in full, its code blocks as ``st.code`` (wrapped, with a copy button).

Inside ``st.markdown`` a code block keeps its long lines and scrolls sideways in a narrow card,
and offers no copy button. So top-level fenced blocks are cut out and drawn with ``st.code``
(``wrap_lines``; Streamlit's built-in copy button, no third-party request), the prose between
them with ``st.markdown(safe_markdown(...))``. ``st.code`` shows its text verbatim, so a block
drawn there can make the browser fetch nothing, whatever it holds (a mermaid diagram included).

Only fences at the top level (at the line's start: outside lists and quotes) are cut; any other
stays in the prose, where ``safe_markdown`` handles it as before.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import streamlit as st

from hydra.ui.safe_markdown import safe_markdown

_OPEN = re.compile(r"(`{3,}|~{3,})[ \t]*([^\s`]*)[^\n`]*$")  # at column 0: an indented one may be a list item's
_CLOSE = re.compile(r" {0,3}(`{3,}|~{3,})[ \t]*$")
_LANGUAGE = re.compile(r"[A-Za-z0-9_+#.-]{1,30}")


@dataclass(frozen=True)
class Piece:
    """Prose (Markdown) or a code block (its text and language, "" when the fence names none)."""

    code: bool
    text: str
    language: str = ""


def split_answer(text: str) -> list[Piece]:
    """The answer as prose and top-level fenced code blocks, in order; an unclosed fence (an answer
    still streaming) runs to the end."""
    pieces: list[Piece] = []
    prose: list[str] = []
    code: list[str] | None = None
    fence, language = "", ""
    for line in text.split("\n"):
        if code is None:
            opener = _OPEN.match(line)
            if opener is None:
                prose.append(line)
                continue
            if prose:
                pieces.append(Piece(False, "\n".join(prose)))
                prose = []
            fence, code = opener.group(1), []
            found = _LANGUAGE.fullmatch(opener.group(2))
            language = found.group(0).lower() if found else ""
            if language == "mermaid":  # its source as text: st.code draws no diagram, and says so
                language = "text"
            continue
        closer = _CLOSE.match(line)
        if closer and closer.group(1)[0] == fence[0] and len(closer.group(1)) >= len(fence):
            pieces.append(Piece(True, "\n".join(code), language))
            code = None
            continue
        code.append(line)
    if code is not None:
        pieces.append(Piece(True, "\n".join(code), language))
    if prose and "\n".join(prose).strip():
        pieces.append(Piece(False, "\n".join(prose)))
    return [p for p in pieces if p.code or p.text.strip()]


def render_answer(text: str, *, placeholder: str = "") -> None:
    """The whole answer, no inner scroll box: prose as safe Markdown, code blocks as ``st.code``."""
    pieces = split_answer(text or "")
    if not pieces:
        if placeholder:
            st.markdown(placeholder)
        return
    for piece in pieces:
        if piece.code:
            # Streamlit highlights the languages it knows and shows the rest as plain text.
            st.code(piece.text, language=piece.language or None, wrap_lines=True)
        else:
            st.markdown(safe_markdown(piece.text))


def copy_answer(text: str, key: str) -> None:
    """The raw answer in a popover, as ``st.code`` (its copy button copies it exactly)."""
    with st.popover("Copy", icon=":material/content_copy:", key=key):
        st.caption("The answer as the model wrote it; the button at the top right of the box copies it.")
        st.code(text, language=None, wrap_lines=True)
