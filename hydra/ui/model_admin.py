"""The Nodes page's model section: pull a model onto the nodes with a progress bar per node, and
delete one from a node after a confirmation.

The same calls as the gateway's /api/pull and /api/delete (``hydra.gateway.model_ops``): the nodes
chosen alike (every healthy node able to hold the model, or the one picked), their credentials sent
and never shown, each node's outcome said. Runs in a fragment of its own, so a pull's progress is
not interrupted by the page's live refresh, and the page's other parts stay as they are.
"""
from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from hydra.gateway import model_ops
from hydra.gateway.model_ops import Outcome, Target, TargetError
from hydra.service import Hydra
from hydra.ui import formatting as fmt

EVERY_ABLE = "every node able to hold it"
SETTLE_S = 3.0           # how long to wait for the node's new model list before rerunning the page
SETTLE_POLL_S = 0.05
MAX_NAME_CHARS = 200
# Ollama's model names: [host/][namespace/]model[:tag]
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-/]*(:[A-Za-z0-9._\-]+)?\Z")
_FLASH = "model_admin:flash"
_CONFIRM = "model_admin:confirm"   # (node, model) the user was asked to confirm deleting


@dataclass
class NodeProgress:
    """One node's pull as its progress lines tell it: bytes of each layer, the last status."""

    layers: dict[str, tuple[int, int]] = field(default_factory=dict)   # digest -> (completed, total)
    status: str = "starting"
    failed: str | None = None

    def add(self, line: dict[str, Any]) -> None:
        if line.get("status") == "failed":
            self.failed = str(line.get("reason") or "failed")
            self.status = "failed"
            return
        self.status = str(line.get("status") or self.status)
        digest, total = line.get("digest"), line.get("total")
        if isinstance(digest, str) and isinstance(total, int) and total > 0:
            completed = line.get("completed")
            self.layers[digest] = (completed if isinstance(completed, int) else 0, total)

    @property
    def fraction(self) -> float:
        if self.status == "success":
            return 1.0
        total = sum(t for _, t in self.layers.values())
        return min(1.0, sum(c for c, _ in self.layers.values()) / total) if total else 0.0

    def text(self, node: str) -> str:
        if self.failed is not None:
            return f"{node}: failed: {self.failed}"
        return f"{node}: {self.status} ({self.fraction:.0%})"


def check_name(name: str) -> str | None:
    """Why ``name`` is not a model name Ollama could pull, or None."""
    if not name:
        return "Type a model name, such as qwen3:1.7b."
    if len(name) > MAX_NAME_CHARS or not _MODEL_NAME.match(name):
        return "A model name is letters, digits and . _ - / with an optional :tag, such as qwen3:1.7b."
    return None


def _targets(hydra: Hydra, name: str, onto: str) -> list[Target]:
    specs = hydra.node_specs()
    if onto != EVERY_ABLE:
        named = model_ops.named_target(specs, onto)
        if named is not None:
            return [named]
    return model_ops.pull_targets(specs, hydra.snapshot(), name)


def _run_pull(targets: list[Target], name: str, on_line: Callable[[dict[str, Any]], None]) -> list[Outcome]:
    """The pull on every target at once, each line handed to ``on_line`` as it comes."""
    async def pulling() -> list[Outcome]:
        outcomes: list[Outcome] = []
        async with model_ops.new_client() as client:
            async for line in model_ops.stream_all(client, targets, "/api/pull", {"model": name}, outcomes):
                on_line(line)
        return outcomes
    return asyncio.run(pulling())  # the script's thread has no event loop of its own


def _settle(hydra: Hydra, outcomes: list[Outcome], name: str, *, present: bool) -> None:
    """Have the nodes' model lists fetched now, and wait (bounded) until the snapshot shows the change."""
    for outcome in outcomes:
        hydra.refresh_models(outcome.node)
    changed = {o.node for o in outcomes if o.ok}
    deadline = time.monotonic() + SETTLE_S
    while changed and time.monotonic() < deadline:
        if model_ops.settled(hydra.snapshot(), changed, name, present=present):
            return
        time.sleep(SETTLE_POLL_S)


def _flash(outcomes: list[Outcome], what: str) -> None:
    status, answer = model_ops.summary(what, outcomes)
    if status == 200:
        st.session_state[_FLASH] = ("success", f"Done: {what} on {', '.join(answer['nodes'])}.")
    else:
        st.session_state[_FLASH] = ("error", answer["error"])


def _pull(hydra: Hydra, name: str, onto: str) -> None:
    why = check_name(name)
    if why is not None:
        st.session_state[_FLASH] = ("warning", why)
        return
    try:
        targets = _targets(hydra, name, onto)
    except TargetError as exc:
        st.session_state[_FLASH] = ("error", exc.message)
        return
    progress = {t.name: NodeProgress() for t in targets}
    bars = {t.name: st.progress(0.0, text=fmt.md_escape(progress[t.name].text(t.name))) for t in targets}

    def on_line(line: dict[str, Any]) -> None:
        node = str(line.get("node"))
        if node in progress:
            progress[node].add(line)
            bars[node].progress(progress[node].fraction, text=fmt.md_escape(progress[node].text(node)))

    outcomes = _run_pull(targets, name, on_line)
    _settle(hydra, outcomes, name, present=True)
    _flash(outcomes, f"pull {name}")


def _delete(hydra: Hydra, node: str, name: str) -> None:
    try:
        target = model_ops.named_target(hydra.node_specs(), node)
    except TargetError as exc:
        st.session_state[_FLASH] = ("error", exc.message)
        return
    assert target is not None  # a name was given

    async def deleting() -> list[Outcome]:
        async with model_ops.new_client() as client:
            return await model_ops.call_all(client, [target], "DELETE", "/api/delete", {"model": name})
    outcomes = asyncio.run(deleting())
    _settle(hydra, outcomes, name, present=False)
    _flash(outcomes, f"delete {name}")


def _show_flash() -> None:
    # One slot, drawn on every run whether or not there is news: a message that comes and goes would
    # shift every element after it, and a fragment rerun over a shifted layout can leave the old copy
    # of a button on screen beside the new one.
    slot = st.empty()
    flash = st.session_state.pop(_FLASH, None)
    if flash is not None:
        kind, text = flash
        getattr(slot, kind)(fmt.md_escape(text))


def _pull_form(hydra: Hydra, node_names: list[str]) -> None:
    with st.form("model_admin:pull", border=True):
        st.markdown("**Pull a model**")
        name = st.text_input("Model", placeholder="qwen3:1.7b", key="model_admin:name", max_chars=MAX_NAME_CHARS)
        onto = st.selectbox("Onto", [EVERY_ABLE, *node_names], key="model_admin:onto")
        pulled = st.form_submit_button("Pull", icon=":material/download:")
    if pulled:
        _pull(hydra, (name or "").strip(), str(onto))
        st.rerun(scope="fragment")  # the flash and the node's new list


def _delete_panel(hydra: Hydra, node_names: list[str]) -> None:
    st.markdown("**Delete a model**")
    if not node_names:
        st.caption("No nodes yet.")
        return
    node = st.selectbox("From node", node_names, key="model_admin:delete_node")
    snapshot = hydra.snapshot().node(str(node))
    models = sorted(m.name for m in snapshot.installed) if snapshot is not None else []
    if not models:
        st.caption("This node lists no models.")
        return
    name = str(st.selectbox("Model to delete", models, key="model_admin:delete_model"))
    # The question is kept in the session, so the page's own refreshes never drop it; a change of
    # node or model asks again.
    if st.session_state.get(_CONFIRM) != (node, name):
        if st.button("Delete…", key="model_admin:ask", icon=":material/delete:"):
            st.session_state[_CONFIRM] = (node, name)
            st.rerun(scope="fragment")
        return
    st.warning(f"Delete **{fmt.md_escape(name)}** from **{fmt.md_escape(str(node))}**? Its files are removed "
               "from that node; pull it again to have it back.", icon=":material/warning:")
    confirm_column, cancel_column = st.columns(2)
    if confirm_column.button("Delete model", key="model_admin:delete", type="primary"):
        st.session_state.pop(_CONFIRM, None)
        _delete(hydra, str(node), name)
        st.rerun(scope="fragment")
    if cancel_column.button("Cancel", key="model_admin:cancel"):
        st.session_state.pop(_CONFIRM, None)
        st.rerun(scope="fragment")


@st.fragment
def model_admin(hydra: Hydra) -> None:
    """The section: a pull form and a delete panel, side by side, and what the last one did."""
    st.subheader("Models on the nodes")
    _show_flash()
    node_names = sorted(s.name for s in hydra.node_specs())
    pull_column, delete_column = st.columns(2)
    with pull_column:
        _pull_form(hydra, node_names)
    with delete_column:
        _delete_panel(hydra, node_names)
