"""Settings: routing mode, concurrency, VRAM monitoring and nodes. Changes apply at once and are saved."""
from __future__ import annotations

import streamlit as st

from hydra.sollol.redact import redact_url
from hydra.sollol.types import MODE_DESCRIPTIONS, RoutingMode
from hydra.ui import formatting as fmt
from hydra.ui import forms, layout, node_form
from hydra.ui.safe_markdown import safe_markdown

FORM = "settings"
NAMES = ("SOLLOL_DEFAULT_ROUTING_MODE", "SOLLOL_PARALLEL_REQUESTS", "SOLLOL_MAX_CONCURRENT_REQUESTS",
         "SOLLOL_VRAM_MONITORING", "SOLLOL_MIN_VRAM_MB")

hydra = layout.page("Settings")
st.title("Settings")
st.caption("Changes apply to the running router at once and are saved in Hydra's database; the environment "
           "stays the default, and each value that differs from it can be reset below.")

with st.form(FORM):
    st.subheader("Routing")
    forms.setting_input(hydra, FORM, "SOLLOL_DEFAULT_ROUTING_MODE", label="Default routing mode",
                        captions=[MODE_DESCRIPTIONS[RoutingMode(m)] for m in RoutingMode])
    c1, c2 = st.columns(2)
    with c1:
        forms.setting_input(hydra, FORM, "SOLLOL_PARALLEL_REQUESTS", label="Parallel requests")
    with c2:
        forms.setting_input(hydra, FORM, "SOLLOL_MAX_CONCURRENT_REQUESTS", label="Max concurrent requests")
    st.subheader("VRAM")
    c3, c4 = st.columns(2)
    with c3:
        forms.setting_input(hydra, FORM, "SOLLOL_VRAM_MONITORING", label="VRAM monitoring")
    with c4:
        forms.setting_input(hydra, FORM, "SOLLOL_MIN_VRAM_MB", label="Minimum free VRAM (MB)", step=100)
    st.caption("CPU-only nodes are normal: they are never warned about.")
    forms.form_error(FORM, NAMES)
    forms.apply_button(hydra, FORM, NAMES)

st.subheader("Differs from the environment")
forms.overrides(hydra)
for kind, text in st.session_state.pop("settings:flash", []):
    getattr(st, kind)(safe_markdown(text))

st.subheader("Nodes")
snap = hydra.snapshot()
if not snap.nodes:
    st.caption("No node yet: add one below.")
for node in snap.nodes:
    with st.container(border=True, key=f"settings-node-{node.name}"):
        info, button = st.columns([6, 1], vertical_alignment="center")
        state = fmt.node_state_badge(node.healthy, node.circuit, node.last_seen, node.last_error)
        simulated = " :orange-badge[:material/science: simulated]" if fmt.is_simulated(node.version) else ""
        kind = "GPU" if node.gpu else "CPU"
        capability = f"up to {fmt.fmt_params(node.max_model_b)}" if node.max_model_b else "capability undeclared"
        info.markdown(f"{state}{simulated} **{fmt.md_escape(node.name)}** `{redact_url(node.url)}` · {kind} · "
                      f"{capability} · {fmt.plural(node.slots, 'slot')}")
        with button:
            node_form.remove_node_button(hydra, node.name)
st.markdown("**Add a node**")
node_form.node_form(hydra)
