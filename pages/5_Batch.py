"""Batch: a file of rows through a prompt template, in the background, with live progress and downloads."""
from __future__ import annotations

import streamlit as st

from hydra.ui import batch_form, batch_live, layout

hydra = layout.page("Batch")
st.title("Batch")
st.caption("Run every row of a CSV or JSON Lines file through a prompt template. Rows run at their priority "
           "(default 2), always behind interactive tasks, and survive a restart: each row is answered once.")

with st.expander("New batch", expanded=not hydra.batches.batches(1)):
    ready = batch_form.draft(hydra)
    batch_form.start_button(hydra, ready)

followed = batch_live.pick(hydra, st.session_state.get(batch_form.CURRENT))
if followed is None:
    st.caption("No batch yet: start one above.")
else:
    batch_live.live(hydra, followed)
