"""Hydra: run LLM tasks on a cluster of Ollama nodes, several at once, and watch them stream.

`make run` starts the one Hydra of the process before the web server (hydra/launch.py); under a
plain `streamlit run app.py` the first page view starts it. Every browser session shares it;
tasks keep running when a browser closes and show again when it comes back.
"""
from __future__ import annotations

import streamlit as st

from hydra.ui import conversation, layout, task_list, tasks

hydra = layout.page("Tasks")
st.title("Tasks")
st.caption("Submit prompts; SOLLOL picks a node and a model for each, and the answers stream in side by side, "
           "the newest first. Tasks keep running when you close the page.")
layout.embedded_banner(hydra)
layout.cluster_banner(hydra, hydra.snapshot(), embedded=False)
tasks.submit_form(hydra)
tasks.show_flash()
conversation.thread_panel(hydra)
st.subheader("Running and recent")
task_list.live_tasks(hydra)
st.subheader("History")
task_list.history(hydra)
