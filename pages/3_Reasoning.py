"""Reasoning engine: its five settings, and a box that scores a sample prompt the way tasks are scored."""
from __future__ import annotations

import streamlit as st

from hydra.ui import formatting as fmt
from hydra.ui import forms, layout, tables

FORM = "reasoning"
NAMES = ("HYDRA_REASONING_MODE", "HYDRA_REASONING_MODEL", "HYDRA_USE_REASONING_MODEL",
         "HYDRA_MAX_THINKING_TOKENS", "HYDRA_DEEP_THINKING_THRESHOLD")
MODE_CAPTIONS = ["Adapts the thinking level to each task's complexity score.", "Never think: answer directly.",
                 "Always think, with half the budget.", "Always think, with the full budget."]
EXAMPLE = ("Prove that the sum of the first n odd numbers is n², then explain step by step how to derive the "
           "closed form of the sum of squares and analyze the time complexity of computing it naively.")

hydra = layout.page("Reasoning")
st.title("Reasoning")
st.caption("Hydra scores each prompt's complexity (0–10). The score decides whether the model thinks before "
           "answering and how many tokens it may think for; reasoning and math tasks can go to a dedicated model.")

left, right = st.columns([1, 1], gap="large")
with left:
    st.subheader("Settings")
    with st.form(FORM):
        forms.setting_input(hydra, FORM, "HYDRA_REASONING_MODE", label="Reasoning mode", captions=MODE_CAPTIONS)
        forms.setting_input(hydra, FORM, "HYDRA_REASONING_MODEL", label="Reasoning model")
        forms.setting_input(hydra, FORM, "HYDRA_USE_REASONING_MODEL", label="Use the reasoning model")
        forms.setting_input(hydra, FORM, "HYDRA_MAX_THINKING_TOKENS", label="Max thinking tokens", step=500)
        forms.setting_input(hydra, FORM, "HYDRA_DEEP_THINKING_THRESHOLD", label="Deep-thinking threshold (score)",
                            step=0.5)
        forms.form_error(FORM, NAMES)
        forms.apply_button(hydra, FORM, NAMES)
    st.markdown("**Differs from the environment**")
    forms.overrides(hydra, NAMES, key=FORM)

with right:
    st.subheader("Try a prompt")
    prompt = st.text_area("Prompt", value=EXAMPLE, height=140, key="assess:prompt")
    task_type = st.selectbox("Task type", fmt.TASK_TYPE_OPTIONS, key="assess:type")
    if prompt.strip():
        a = hydra.assess(prompt, None if task_type == "auto" else task_type)
        threshold = hydra.settings.deep_thinking_threshold
        c1, c2, c3 = st.columns(3)
        c1.metric("Score", f"{a.score:.1f} / 10")
        c2.metric("Level", a.level, help="none / standard / deep")
        c3.metric("Thinking budget", f"{a.budget:,} tokens" if a.think else "no thinking")
        st.progress(min(1.0, a.score / 10), text=f"Complexity {a.score:.1f}; deep thinking from {threshold:g}")
        model = a.model_override or "tier selection (no override)"
        st.markdown(f"**Model:** `{model}`" + (f" · **task type:** {a.task_type}" if a.task_type else ""))
        st.info(a.explanation, icon=":material/lightbulb:")
        st.markdown("**Breakdown**")
        st.dataframe(tables.reasons_frame(a.reasons), hide_index=True,
                     column_config={"Points": st.column_config.NumberColumn(format="%+.2f")})
