"""The tasks page's prompt form: prompt, task settings (answer cap, system prompt, temperature), Run.

The cards and history below it are hydra/ui/task_list.py; follow-ups hydra/ui/conversation.py.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import streamlit as st

from hydra.config import MAX_ANSWER_TOKENS
from hydra.service import Hydra
from hydra.sollol.errors import HydraError
from hydra.sollol.types import RoutingMode
from hydra.ui import formatting as fmt
from hydra.ui.safe_markdown import safe_markdown

_FLASH = "tasks_flash"


# --- messages that survive the rerun after a callback ----------------------------------

def flash(kind: str, text: str) -> None:
    st.session_state.setdefault(_FLASH, []).append((kind, text))


def show_flash() -> None:
    for kind, text in st.session_state.pop(_FLASH, []):
        getattr(st, kind)(safe_markdown(text))  # may quote a node's error


def guarded(action: Callable[[], Any], failure: str) -> Callable[[], None]:
    def run() -> None:
        try:
            action()
        except HydraError as exc:
            flash("error", f"{failure}: {exc}")
    return run


# --- the prompt form ------------------------------------------------------------------

SHORTCUT = "Ctrl+Enter (⌘+Enter on a Mac) runs it"


def submit_form(hydra: Hydra) -> None:
    models = ["auto", *hydra.models()]
    state = st.session_state
    if state.get("model") not in models:
        state["model"] = "auto"
    default_mode = hydra.settings.default_mode
    with st.form("submit", border=True):
        st.text_area("Prompt", key="prompt", height=110,
                     placeholder="Ask anything, e.g. Generate a Python function that checks whether a string "
                                 "is a palindrome. With “Batch”, each line is its own task.",
                     help=f"{SHORTCUT}. The text stays here until the task is accepted.")
        c1, c2, c3, c4, c5 = st.columns([1, 1.4, 1.2, 1.3, 1])
        c1.selectbox("Task type", fmt.TASK_TYPE_OPTIONS, key="task_type",
                     help="auto: classify the prompt (code, reasoning, math or general).")
        c2.selectbox("Model", models, key="model",
                     format_func=lambda m: "auto (tier selection)" if m == "auto" else m,
                     help="auto picks the first model of the task type's tier that a node can serve.")
        c3.selectbox("Routing mode", ["default", *(m.value for m in RoutingMode)], key="mode",
                     format_func=lambda m: f"default ({default_mode.value})" if m == "default" else m,
                     help="\n\n".join(fmt.mode_label(m) for m in RoutingMode))
        c4.slider("Priority", 1, 10, 5, key="priority", help="10 is most urgent; waiting tasks age upwards.")
        c5.number_input("Max tokens", min_value=1, max_value=MAX_ANSWER_TOKENS, value=hydra.settings.max_tokens,
                        step=64, key="max_tokens",
                        help=f"Longest answer, in tokens; starts at HYDRA_MAX_TOKENS ({hydra.settings.max_tokens}), "
                             "so a rambling model cannot hold a node for minutes.")
        with st.expander("System prompt and temperature", icon=":material/tune:"):
            st.text_area("System prompt", key="system", height=68, placeholder="e.g. You are a concise assistant.",
                         help="Sent before the prompt; follow-ups of this task keep it.")
            st.number_input("Temperature", min_value=0.0, max_value=2.0, value=None, step=0.1, format="%.1f",
                            key="temperature", placeholder="the model's default",
                            help="0 answers the same way every time; higher is more varied.")
        left, middle, right = st.columns([2, 2, 1], vertical_alignment="center")
        left.toggle("Batch: one task per line", key="batch")
        middle.caption(f":material/keyboard: {SHORTCUT}")
        right.form_submit_button("Run", key="run", type="primary", icon=":material/send:", width="stretch",
                                 on_click=_submit, args=(hydra,))


def form_options(state: Mapping[Any, Any], default_max_tokens: int) -> dict[str, Any]:
    """The form's settings as arguments of ``Hydra.submit`` (everything but the prompt)."""
    temperature = state.get("temperature")
    return {"task_type": None if state.get("task_type", "auto") == "auto" else state["task_type"],
            "model": None if state.get("model", "auto") == "auto" else state["model"],
            "mode": None if state.get("mode", "default") == "default" else state["mode"],
            "priority": int(state.get("priority", 5)),
            "max_tokens": int(state["max_tokens"]) if state.get("max_tokens") else default_max_tokens,
            "system": (state.get("system") or "").strip() or None,
            "options": {"temperature": float(temperature)} if temperature is not None else {}}


def _submit(hydra: Hydra) -> None:
    state = st.session_state
    prompts = fmt.split_batch(state.get("prompt"), state.get("batch", False))
    if not prompts:
        flash("warning", "Type a prompt first.")
        return
    if hydra.embedded_status.phase == "starting" and not hydra.has_healthy_node():
        flash("warning", "The embedded node is still warming up and no other node answers yet: your prompt "
                         "stays in the box. Run it again once the banner above says the node is ready.")
        return
    options = form_options(state, hydra.settings.max_tokens)
    refused, errors = [], []
    for prompt in prompts:
        try:
            hydra.submit(prompt, **options, source="ui")  # /metrics counts tasks by source
        except HydraError as exc:
            refused.append(prompt)
            errors.append(f"“{fmt.one_line(prompt, 50)}”: {exc}")
    if len(refused) < len(prompts):
        # Only what was accepted leaves the box: a refused prompt stays, to fix and run again.
        state["prompt"] = "\n".join(refused)
    if errors:
        flash("error", "Not submitted:\n\n" + "\n\n".join(f"- {e}" for e in errors))
