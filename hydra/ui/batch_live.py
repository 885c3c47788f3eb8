"""The Batch page's live part: progress of the batch followed, its controls, a page of results, downloads.

One fragment, refreshed every second while the batch runs: it reads aggregates (counts per status
and per node, one GROUP BY each) and one page of rows, never the whole batch, so a 10,000-row batch
costs it what a 10-row one does. The downloads are built only when clicked.
"""
from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import streamlit as st

from hydra.batch import BatchInfo, Progress
from hydra.batch.cli import duration
from hydra.batch.export import MEDIA_TYPES, export_bytes
from hydra.service import Hydra
from hydra.ui import formatting as fmt

LIVE_EVERY_S = 1.0
PAGE_ROWS = 50
STATUS_FILTERS = ("all", "done", "failed", "running", "pending", "cancelled")


def pick(hydra: Hydra, current: str | None) -> str | None:
    """Which batch to follow: the one just started, or one picked from the recent ones."""
    recent = hydra.batches.batches(30)
    if not recent:
        return None
    ids = [b.id for b in recent]
    labels = {b.id: f"{b.name} · {b.total:,} rows · {b.status} · {fmt.fmt_clock(b.created_at)}" for b in recent}
    index = ids.index(current) if current in ids else 0
    return st.selectbox("Batch", ids, index=index, format_func=labels.__getitem__, key="batch-pick")


def live(hydra: Hydra, batch_id: str) -> None:
    progress = hydra.batches.progress(batch_id)
    live_now = progress is not None and progress.batch.status in ("running", "paused")
    st.fragment(run_every=LIVE_EVERY_S if live_now else None)(_panel)(hydra, batch_id)


def _panel(hydra: Hydra, batch_id: str) -> None:
    progress = hydra.batches.progress(batch_id)
    if progress is None:
        st.warning("This batch is gone from history.")
        return
    _bar(progress)
    _controls(hydra, progress)
    _results(hydra, progress.batch)
    _downloads(hydra, progress.batch)
    ended = progress.batch.status in ("done", "cancelled")
    if ended and st.session_state.get("batch-was-live") == batch_id:
        st.session_state.pop("batch-was-live")
        st.rerun()  # the whole page: the fragment stops refreshing once the batch has ended
    if not ended:
        st.session_state["batch-was-live"] = batch_id


def _bar(p: Progress) -> None:
    total = max(1, p.batch.total)
    st.progress(p.finished / total, text=f"{p.finished:,} of {p.batch.total:,} rows ended · {p.batch.status}")
    c1, c2, c3, c4, c5 = st.columns(5)
    c1.metric("Done", f"{p.done:,}")
    c2.metric("Failed", f"{p.failed:,}")
    c3.metric("Remaining", f"{p.remaining:,}")
    c4.metric("ETA", duration(p.eta_s) if p.eta_s is not None else "-")
    c5.metric("Tokens/s", fmt.fmt_rate(p.tokens_per_s) if p.tokens_per_s else "-")
    if p.by_node:
        split = " · ".join(f"**{fmt.md_escape(node)}** {count:,}" for node, count in
                           sorted(p.by_node.items(), key=lambda kv: -kv[1]))
        st.markdown(f"Rows done per node: {split}")
    if p.batch.error:
        st.warning(fmt.md_escape(p.batch.error), icon=":material/pause:")


def _controls(hydra: Hydra, p: Progress) -> None:
    """Each control reruns the whole page: the fragment's refresh follows whether the batch runs."""
    status, batch_id, batches = p.batch.status, p.batch.id, hydra.batches
    actions: list[tuple[str, str, str, Callable[[str], object]]] = []
    if status == "running":
        actions.append(("Pause", "pause", ":material/pause:", batches.pause))
    if status == "paused":
        actions.append(("Resume", "resume", ":material/play_arrow:", batches.resume))
    if status in ("running", "paused"):
        actions.append(("Cancel", "cancel", ":material/stop:", batches.cancel))
    if p.failed and status in ("done", "paused"):
        actions.append((f"Retry {p.failed:,} failed", "retry", ":material/replay:", batches.retry_failed))
    for column, (label, key, icon, action) in zip(st.columns(4), actions):
        if column.button(label, key=f"batch-{key}", icon=icon):
            action(batch_id)
            st.rerun()


def _results(hydra: Hydra, info: BatchInfo) -> None:
    c1, c2 = st.columns([1, 3])
    status = c1.selectbox("Show", STATUS_FILTERS, key="batch-filter")
    pages = max(1, -(-info.total // PAGE_ROWS))
    page = c2.number_input(f"Page (of {pages:,}, {PAGE_ROWS} rows each)", 1, pages, 1, key="batch-page")
    rows = hydra.batches.rows(info.id, (int(page) - 1) * PAGE_ROWS, PAGE_ROWS, None if status == "all" else status)
    frame = pd.DataFrame([{"row": r["idx"] + 1, **{c: r["data"].get(c, "") for c in info.columns[:3]},
                           "status": r["status"], "answer": fmt.one_line(r["answer"], 200), "node": r["node"],
                           "model": r["model"], "tokens": r["tokens"],
                           "seconds": round(r["duration_s"], 2) if r["duration_s"] is not None else None,
                           "error": fmt.one_line(r["error"], 120) if r["error"] else ""} for r in rows])
    st.dataframe(frame, hide_index=True, width="stretch", key="batch-results")


def _downloads(hydra: Hydra, info: BatchInfo) -> None:
    c1, c2, _ = st.columns([1, 1, 4])
    for column, fmt_name in ((c1, "csv"), (c2, "jsonl")):
        column.download_button(f"Download {fmt_name.upper()}", key=f"batch-download-{fmt_name}",
                               data=lambda f=fmt_name: export_bytes(hydra.batches.store, info.id, f),  # type: ignore[misc]
                               file_name=f"{info.id}.{fmt_name}", mime=MEDIA_TYPES[fmt_name],
                               icon=":material/download:", on_click="ignore")
