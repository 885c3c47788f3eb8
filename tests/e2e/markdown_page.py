"""A page for tests/e2e/test_no_remote_requests.py: every hostile case of ``hostile_markdown``
through ``st.markdown``, made safe (``?mode=safe``) or as is (``?mode=raw``, the control).

Last comes a Mermaid diagram whose image is on this machine (``PROBE_CONTROL_URL``): Mermaid
draws after everything above it, so once that request is seen, every fetch the cases could
cause has been asked for.
"""
from __future__ import annotations

import os

import streamlit as st

from hydra.ui.safe_markdown import safe_markdown
from tests.e2e.hostile_markdown import HOSTILE

raw = st.query_params.get("mode") == "raw"
for name, text in HOSTILE.items():
    with st.container(key=f"case-{name}"):
        st.markdown(text if raw else safe_markdown(text))
control = os.environ["PROBE_CONTROL_URL"]
st.markdown(f'```mermaid\nflowchart LR\n  C@{{ img: "{control}", label: "control", pos: "t", h: 40 }}\n```')
st.markdown("END-OF-CASES")
