"""Hydra: run LLM tasks on a cluster of Ollama nodes, several at once, and watch them stream.

`streamlit run app.py` starts here, on the tasks page. The first page view
starts the one Router of the process, shared by every browser session; tasks
keep running when a browser closes and show again when it comes back.
"""
from __future__ import annotations

import streamlit as st

from hydra.ui import layout, tasks

hydra = layout.page("Tasks")
st.title("Tasks")
st.caption("Submit prompts; SOLLOL picks a node and a model for each, and the answers stream in side by side. "
           "Tasks keep running when you close the page.")
layout.cluster_banner(hydra, hydra.snapshot())
tasks.submit_form(hydra)
tasks.show_flash()
st.subheader("Running and recent")
tasks.live_tasks(hydra)
st.subheader("History")
tasks.history(hydra)
