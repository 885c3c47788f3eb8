"""Live node status: health, circuit, load, VRAM, models and speed, refreshed every few seconds."""
from __future__ import annotations

import time

import streamlit as st

from hydra.ui import cards, layout, model_admin, model_identity, tables
from hydra.ui import formatting as fmt

REFRESH_S = 3.0
PER_ROW = 2

hydra = layout.page("Nodes")
st.title("Nodes")
st.caption(f"What the router sees of each Ollama node; refreshes itself every {REFRESH_S:g} s.")


@st.fragment(run_every=REFRESH_S)
def live() -> None:
    snap = hydra.snapshot()
    st.caption(f":material/update: Last refreshed {fmt.fmt_clock(time.time())}")
    layout.cluster_metrics(snap)
    layout.cluster_banner(hydra, snap)
    model_identity.conflicts_panel(snap)
    layout.host_panel(snap)
    for start in range(0, len(snap.nodes), PER_ROW):
        for column, node in zip(st.columns(PER_ROW), snap.nodes[start:start + PER_ROW], strict=False):
            with column:
                cards.node_card(node, monitoring=snap.vram_monitoring)
    if snap.models:
        st.subheader("Per node and model")
        st.dataframe(tables.model_stats_frame(snap.models), hide_index=True)


live()
model_admin.model_admin(hydra)
