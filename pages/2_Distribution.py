"""How requests were distributed across nodes, models, task types and modes, and why (routing decisions)."""
from __future__ import annotations

import time

import streamlit as st

from hydra.sollol.types import RoutingMode
from hydra.ui import cache_stats, charts, layout, tables
from hydra.ui import formatting as fmt

# window label -> (seconds back or None for everything, bucket seconds of the time chart)
WINDOWS = {"15 min": (900, 30), "1 hour": (3600, 60), "24 hours": (86400, 900), "All": (None, 3600)}
ALL = "All"

hydra = layout.page("Distribution")
st.title("Distribution")
st.caption("Where requests went and why. Charts come from the history database, so they survive restarts.")

top_left, top_right = st.columns([3, 1], vertical_alignment="bottom")
window = top_left.segmented_control("Window", list(WINDOWS), default="1 hour", key="dist:window") or "1 hour"
auto = top_right.toggle("Auto-refresh (5 s)", key="dist:auto")
back, bucket_s = WINDOWS[window]


@st.fragment(run_every=5.0 if auto else None)
def charts_panel() -> None:
    since = time.time() - back if back else None
    dist = hydra.history.distribution(since=since, bucket_s=bucket_s)
    perf = hydra.history.performance(since=since)
    snapshot = hydra.snapshot()
    layout.live_counts(snapshot)
    cache_stats.cache_section(snapshot)
    if not dist:
        st.info("No requests in this window yet. Submit tasks on the Tasks page and they show up here.",
                icon=":material/insights:")
        return
    colors = charts.color_map(r["node"] or "(not routed)" for r in dist)
    st.plotly_chart(charts.requests_over_time(dist, colors, bucket_s, (since, time.time()) if since else None),
                    key="chart-time", config=charts.PLOTLY_CONFIG)
    for column, (by, title) in zip(st.columns(4), [("node", "By node"), ("model", "By model"),
                                                   ("task_type", "By task type"), ("mode", "By mode")]):
        if (figure := charts.share(dist, by, title, colors if by == "node" else None)) is not None:
            column.plotly_chart(figure, key=f"chart-{by}", config=charts.PLOTLY_CONFIG)
    left, middle, right = st.columns(3)
    for column, figure, key, empty in [(left, charts.ttft(perf), "ttft", "No first tokens measured yet."),
                                       (middle, charts.speed(perf), "speed", "No speeds measured yet."),
                                       (right, charts.outcomes(dist, perf), "outcomes", "No outcomes yet.")]:
        if figure is None:
            column.caption(empty)
        else:
            column.plotly_chart(figure, key=f"chart-{key}", config=charts.PLOTLY_CONFIG)


charts_panel()

st.subheader("Routing decisions")
st.caption("Every decision: the candidates the router weighed (score: lower wins, ✗ = excluded and why) and the "
           "reason the winner won. Failovers appear as further attempts of the same task.")
nodes = sorted({n.name for n in hydra.snapshot().nodes})
f1, f2, f3 = st.columns([1, 1, 2])
node = f1.selectbox("Node", [ALL, *nodes], key="dist:node")
mode = f2.selectbox("Mode", [ALL, *(m.value for m in RoutingMode)], key="dist:mode")
task_text = f3.text_input("Prompt or task id contains", key="dist:task", placeholder="e.g. palindrome or 3f9c")
rows = hydra.history.decisions(limit=500, node=None if node == ALL else node, mode=None if mode == ALL else mode)
prompts = tables.task_prompts(hydra.history.recent_tasks(limit=1000))
rows = tables.filter_decisions(rows, task_text=task_text, prompts=prompts)
if not rows:
    st.caption("No routing decision matches." if (node, mode, task_text) != (ALL, ALL, "") else
               "No routing decisions recorded yet.")
else:
    st.dataframe(tables.decisions_frame(rows, prompts), hide_index=True, column_config=tables.DECISION_COLUMNS,
                 column_order=tables.DECISION_ORDER, height=min(460, 38 + 35 * len(rows)), key="dist:decisions")
    with st.expander("One decision in full: its reason and every candidate"):
        if st.session_state.get("dist:pick", 0) >= len(rows):
            st.session_state.pop("dist:pick")
        picked = st.selectbox("Decision", range(len(rows)), key="dist:pick",
                              format_func=lambda i: f"{fmt.fmt_when(rows[i]['time'])} · "
                                                    f"{fmt.one_line(prompts.get(rows[i]['task_id'], rows[i]['task_id']), 50)} "
                                                    f"· attempt {rows[i]['attempt']} → {rows[i]['node'] or 'none'}")
        if picked is not None and picked < len(rows):
            st.markdown(f"**Reason:** {fmt.md_escape(rows[picked].get('reason') or '')}")
            st.dataframe(tables.candidates_frame(rows[picked].get("candidates")), hide_index=True)
