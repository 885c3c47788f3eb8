"""The settings page's node form: test a node before adding it, add anyway, remove.

"Add node" first asks the node what it is (``Hydra.test_node``: its version and models) and adds
it only when it answers, saying what it found. A node that does not answer is not added; the form
then offers "Add anyway" (a node that is still booting, say): it is polled and used once it
answers. Errors name the form's own fields ("URL", "Slots"), not the SOLLOL_NODES syntax.
"""
from __future__ import annotations

from typing import Any

import streamlit as st

from hydra.service import Hydra
from hydra.sollol import NodeSpec
from hydra.sollol.errors import ConfigError, HydraError
from hydra.sollol.redact import redact_url
from hydra.ui import formatting as fmt
from hydra.ui.safe_markdown import safe_markdown

GPU_CHOICES = {"detect": None, "GPU": True, "CPU only": False}
_NODE_DEFAULTS = {"node:url": "", "node:name": "", "node:max_model_b": None, "node:gpu": "detect",
                  "node:vram_mb": None, "node:slots": 2}
_PENDING = "node:pending"  # the (url, args) that did not answer: what "Add anyway" adds


def node_form(hydra: Hydra) -> None:
    for key, value in _NODE_DEFAULTS.items():
        st.session_state.setdefault(key, value)
    with st.form("add_node", border=True):
        st.text_input("URL", key="node:url", placeholder="http://127.0.0.1:11434",
                      help="An Ollama server: http://host:port (port 11434 when omitted).")
        _node_error(url=True)
        c1, c2, c3, c4, c5 = st.columns(5)
        c1.text_input("Name", key="node:name", placeholder="host:port", help="Optional; unique.")
        c2.number_input("Max model (B)", key="node:max_model_b", step=1.0, format="%g",
                        placeholder="undeclared", help="Capability: the largest model it can serve, in billions "
                                                      "of parameters (e.g. 30 or 70).")
        c3.selectbox("GPU", list(GPU_CHOICES), key="node:gpu", help="detect: from /api/ps once models load.")
        c4.number_input("VRAM (MB)", key="node:vram_mb", step=1024, format="%d", placeholder="unknown")
        c5.number_input("Slots", key="node:slots", step=1, format="%d", help="Parallel requests it should get.")
        _node_error(url=False)
        buttons = st.container(horizontal=True, gap="small")
        with buttons:
            st.form_submit_button("Test connection", key="node:test", icon=":material/network_check:",
                                  on_click=_test_node, args=(hydra,))
            st.form_submit_button("Add node", key="node:add", type="primary", icon=":material/add:",
                                  on_click=_add_node, args=(hydra,),
                                  help="Asks the node for its version and models first; adds it when it answers.")
            if st.session_state.get(_PENDING):
                st.form_submit_button("Add anyway", key="node:add_anyway", icon=":material/add_circle:",
                                      on_click=_add_anyway, args=(hydra,),
                                      help="Add it although it did not answer: it is polled, and used once it does.")
        for kind, text in st.session_state.pop("node:flash", []):
            getattr(st, kind)(safe_markdown(text))  # a connection test quotes what the node answered


def _node_error(*, url: bool) -> None:
    # An error about the URL goes under the URL; any other (name, slots, ...) under the row of details.
    exc = st.session_state.get("node:error")
    if exc is None:
        return
    about_url = "url" in str(getattr(exc, "variable", "")).lower()
    if about_url == url:
        st.error(fmt.node_form_error_text(exc) if isinstance(exc, ConfigError) else safe_markdown(str(exc)),
                 icon=":material/block:")


def _url() -> str:
    return (st.session_state["node:url"] or "").strip()


def _node_args() -> dict[str, Any]:
    s = st.session_state
    return {"name": (s["node:name"] or "").strip(),
            "max_model_b": s["node:max_model_b"], "gpu": GPU_CHOICES[s["node:gpu"]],
            "vram_mb": int(s["node:vram_mb"]) if s["node:vram_mb"] is not None else None,
            "slots": int(s["node:slots"]) if s["node:slots"] is not None else 2}


def _test_node(hydra: Hydra) -> None:
    st.session_state.pop("node:error", None)
    url = _url()
    if not url:
        st.session_state["node:flash"] = [("warning", "Type the node's URL first.")]
        return
    ok, message = hydra.test_node(url)
    st.session_state["node:flash"] = [("success" if ok else "error", message)]


def _add_node(hydra: Hydra) -> None:
    s = st.session_state
    s.pop("node:error", None)
    s.pop(_PENDING, None)
    url, args = _url(), _node_args()
    try:
        NodeSpec(url=url, **args)  # the form's own mistakes first, before asking the network anything
    except ConfigError as exc:
        s["node:error"] = exc
        return
    ok, found = hydra.test_node(url)
    if not ok:
        s[_PENDING] = (url, args)
        why = (f"**Not added: the node did not answer.** {found}\n\nCheck the address and that Ollama runs "
               "there, or **Add anyway**: it is then polled, and used once it answers.")
        s["node:flash"] = [("error", why)]
        return
    _add(hydra, url, args, found)


def _add_anyway(hydra: Hydra) -> None:
    pending = st.session_state.pop(_PENDING, None)
    if pending is None:
        return
    url, args = pending
    _add(hydra, url, args, None)


def _add(hydra: Hydra, url: str, args: dict[str, Any], found: str | None) -> None:
    s = st.session_state
    try:
        spec = hydra.add_node(url, **args)
    except HydraError as exc:
        s["node:error"] = exc
        return
    for key, value in _NODE_DEFAULTS.items():
        s[key] = value
    what = (f"It answered: {found}." if found else
            "It did not answer when added: it shows as down until it does.")
    s["node:flash"] = [("success" if found else "warning",
                        f"Added node **{spec.name}** ({redact_url(spec.url)}); saved. {what}")]


def remove_node_button(hydra: Hydra, name: str) -> None:
    with st.popover("Remove", icon=":material/delete:"):
        st.markdown(f"Stop routing to **{fmt.md_escape(name)}** and forget it (saved).")
        st.button("Remove node", key=f"node:remove:{name}", type="primary", on_click=_remove, args=(hydra, name))


def _remove(hydra: Hydra, name: str) -> None:
    try:
        hydra.remove_node(name)
        st.session_state["node:flash"] = [("success", f"Removed node **{name}**; saved.")]
    except HydraError as exc:
        st.session_state["node:flash"] = [("error", f"Could not remove {name}: {exc}")]
