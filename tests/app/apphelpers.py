"""Helpers for the AppTest tests: bounded waits and element text."""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from streamlit.testing.v1 import AppTest

from hydra.ui.shared import get_hydra

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
PAGES = ("pages/1_Nodes.py", "pages/2_Distribution.py", "pages/3_Reasoning.py", "pages/4_Settings.py")
RUN_TIMEOUT = 30


def wait_until(at: AppTest, predicate: Callable[[AppTest], bool], *, timeout: float = 30.0,
               every: float = 0.25) -> AppTest:
    """Rerun the page (as a live fragment would) until ``predicate`` holds; bounded."""
    deadline = time.monotonic() + timeout
    while True:
        at.run()
        assert not at.exception, at.exception
        if predicate(at):
            return at
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s; markdown: "
                                 f"{[m.value[:120] for m in at.markdown]}")
        time.sleep(every)


def wait_healthy(count: int = 2, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while len(get_hydra().snapshot().healthy_nodes) < count:
        assert time.monotonic() < deadline, f"fewer than {count} healthy nodes after {timeout} s"
        time.sleep(0.1)


def texts(at: AppTest, kind: str = "markdown") -> list[str]:
    return [e.value for e in getattr(at, kind)]


def keyed(at: AppTest, prefix: str) -> dict[str, object]:
    """Containers whose key starts with ``prefix`` (e.g. ``answer-``), by the rest of the key."""
    found: dict[str, object] = {}

    def walk(node: object) -> None:
        key = getattr(node, "key", None)
        if getattr(node, "type", None) == "flex_container" and isinstance(key, str) and key.startswith(prefix):
            found[key[len(prefix):]] = node
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return found


def markdown_in(block: object) -> list[str]:
    out: list[str] = []

    def walk(node: object) -> None:
        if getattr(node, "type", None) == "markdown":
            out.append(node.value)
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(block)
    return out


def code_in(block: object) -> list[tuple[str, str]]:
    """(language, text) of every st.code element under ``block``."""
    out: list[tuple[str, str]] = []

    def walk(node: object) -> None:
        if getattr(node, "type", None) == "code":
            out.append((getattr(node, "language", "") or "", node.value))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(block)
    return out


def answer_text(block: object) -> str:
    """A card's answer as Markdown again: its prose, and its code blocks (st.code) between fences."""
    out: list[str] = []

    def walk(node: object) -> None:
        kind = getattr(node, "type", None)
        if kind == "markdown":
            out.append(node.value)
        elif kind == "code":
            out.append(f"```{getattr(node, 'language', '') or ''}\n{node.value}\n```")
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(block)
    return "\n".join(out)


def answers(at: AppTest) -> dict[str, str]:
    """task id -> the answer text its card shows."""
    return {task_id: answer_text(block) for task_id, block in keyed(at, "answer-").items()}
