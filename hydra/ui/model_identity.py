"""Where the nodes disagree on what a model is: one name, different builds (digests) on different nodes.

A task naming such a model gets a different model depending on the node it lands on, and clients that
tell models apart by digest see one of them only; the Nodes page says so, and what to do about it.
"""
from __future__ import annotations

import streamlit as st

from hydra.sollol import ClusterSnapshot
from hydra.sollol.model_listing import ModelConflict, model_conflicts

DIGEST_SHOWN = 12  # as `ollama list` shortens digests


def conflict_line(conflict: ModelConflict) -> str:
    held = "; ".join(f"`{digest[:DIGEST_SHOWN] or 'no digest'}` on {', '.join(nodes)}"
                     for digest, nodes in conflict.digests.items())
    return (f"**{conflict.model}** is not the same model on every node ({held}). A task naming it gets "
            "whichever build its node has: pull it again on the nodes that differ.")


def conflicts_panel(snapshot: ClusterSnapshot) -> None:
    """One warning per model whose healthy nodes report different digests; nothing when they all agree."""
    for conflict in model_conflicts(snapshot):
        st.warning(conflict_line(conflict), icon=":material/difference:")
