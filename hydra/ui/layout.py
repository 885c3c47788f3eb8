"""Pieces every page shares: the sidebar status, cluster banners, summary metrics, host stats."""
from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

import psutil
import streamlit as st

from hydra.service import Hydra
from hydra.sollol.types import ClusterSnapshot
from hydra.ui import formatting as fmt
from hydra.ui import shared

SIDEBAR_EVERY = 5.0
# The tab's icon, drawn here: Streamlit fetches a ":material/...:" page icon from fonts.gstatic.com
# (icons inside the page use the font it bundles), and the app loads nothing from elsewhere.
# An SVG string becomes a data: URL.
FAVICON = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24">'
           '<path d="M12 12 4.5 4.5M12 12l7.5-7.5M12 12v8.5" stroke="#0f766e" stroke-width="2"/>'
           '<g fill="#0f766e"><circle cx="12" cy="12" r="3.5"/><circle cx="4.5" cy="4.5" r="2.5"/>'
           '<circle cx="19.5" cy="4.5" r="2.5"/><circle cx="12" cy="20.5" r="2.5"/></g></svg>')
# (file, label, icon). Streamlit's own page list is hidden (client.showSidebarNavigation = false)
# because it would label the tasks page "app", after its file.
PAGES = (("app.py", "Tasks", ":material/bolt:"),
         ("pages/1_Nodes.py", "Nodes", ":material/dns:"),
         ("pages/2_Distribution.py", "Distribution", ":material/donut_small:"),
         ("pages/3_Reasoning.py", "Reasoning", ":material/psychology:"),
         ("pages/4_Settings.py", "Settings", ":material/tune:"))


def page(title: str) -> Hydra:
    """Every page starts here: page config, the shared Hydra (or why it cannot start), the sidebar."""
    st.set_page_config(page_title=f"{title} · Hydra", page_icon=FAVICON, layout="wide")
    hydra = shared.hydra_or_stop()
    with st.sidebar:
        st.markdown("### :material/hub: Hydra")
        for path, label, icon in PAGES:
            st.page_link(path, label=label, icon=icon)
        st.divider()
        st.fragment(run_every=SIDEBAR_EVERY)(_sidebar_panel)(hydra)
    history_banner(hydra)
    return hydra


def history_banner(hydra: Hydra) -> None:
    """While history cannot write, every page says so: new tasks are refused until it can again."""
    health = hydra.history_health()
    if health.ok:
        return
    st.error(f"**History cannot write since {fmt.fmt_when(health.since)}:** {fmt.md_escape(health.error or '')}.\n\n"
             "New tasks are refused until it can (Hydra tries again every second by itself); "
             "tasks already running go on.", icon=":material/error:")


def _sidebar_panel(hydra: Hydra) -> None:
    snap = hydra.snapshot()
    healthy = len(snap.healthy_nodes)
    color = "green" if healthy else "red"
    st.markdown(f":{color}-badge[{healthy}/{fmt.plural(len(snap.nodes), 'node')} healthy] "
                f":blue-badge[mode {fmt.value_of(snap.default_mode)}]")
    st.caption(f"{snap.in_flight}/{snap.max_concurrent} in flight · {snap.queue_depth} queued"
               + ("" if snap.parallel else " · parallel off"))


def embedded_status_line(hydra: Hydra) -> None:
    """The embedded node's state: warming (since when), serving, or why it could not start."""
    status = hydra.embedded_status
    if status.phase == "starting":
        st.info(f"**The embedded node is warming up** (SmolLM2-135M on llama.cpp, since "
                f"{fmt.fmt_clock(status.since)}): it joins the cluster by itself once the model is loaded, "
                "usually within 15 s.", icon=":material/hourglass_top:")
    elif status.phase == "ready" and status.url:
        st.info(fmt.embedded_text(status.url), icon=":material/memory:")
    elif status.phase == "failed":
        st.error(f"**The embedded node could not start:** {fmt.md_escape(status.error or 'no reason given')}",
                 icon=":material/error:")


def embedded_banner(hydra: Hydra) -> None:
    """``embedded_status_line`` that refreshes itself while the node warms, then reruns the page once
    (so the model list and the cluster banner see the new node)."""
    warming = hydra.embedded_status.phase == "starting"
    st.session_state["layout:embedded_warming"] = warming
    st.fragment(run_every=1.0 if warming else None)(_embedded_panel)(hydra)


def _embedded_panel(hydra: Hydra) -> None:
    if st.session_state.get("layout:embedded_warming") and hydra.embedded_status.phase != "starting":
        st.rerun()
    embedded_status_line(hydra)


def cluster_banner(hydra: Hydra, snap: ClusterSnapshot, *, embedded: bool = True) -> bool:
    """Explain an empty or unhealthy cluster instead of failing; True when some node can serve.
    ``embedded=False``: the page shows the embedded node's state itself (``embedded_banner``)."""
    if embedded:
        embedded_status_line(hydra)
    if snap.healthy_nodes:
        return True
    if hydra.embedded_status.phase == "starting" and not snap.nodes:
        return False  # the warming banner says what happens next
    if snap.nodes and all(n.last_seen is None and not n.last_error for n in snap.nodes):
        st.info("Contacting the nodes… tasks submitted now wait in the queue until one answers.",
                icon=":material/hourglass_empty:")
        return False
    if not snap.nodes:
        st.warning("**No node is configured.** " + fmt.NO_NODE_HELP, icon=":material/cloud_off:")
    else:
        down = "; ".join(f"**{fmt.md_escape(n.name)}**: {fmt.md_escape(n.last_error or 'not answering')}"
                         for n in snap.nodes)
        st.warning(f"**No healthy node.** {down}\n\n" + fmt.NO_NODE_HELP, icon=":material/cloud_off:")
    return False


def cluster_metrics(snap: ClusterSnapshot) -> None:
    c1, c2, c3, c4, c5 = st.columns(5)
    c1.metric("Healthy nodes", f"{len(snap.healthy_nodes)} / {len(snap.nodes)}")
    c2.metric("In flight", f"{snap.in_flight} / {snap.max_concurrent}",
              help="Requests running now / SOLLOL_MAX_CONCURRENT_REQUESTS" + ("" if snap.parallel else
                                                                                 " (parallel requests off)"))
    c3.metric("Queue", snap.queue_depth, help="Tasks waiting for a node slot.")
    c4.metric("Routing mode", fmt.value_of(snap.default_mode))
    c5.metric("VRAM monitoring", "on" if snap.vram_monitoring else "off")


def host_panel(snap: ClusterSnapshot) -> None:
    """This machine's CPU and memory (psutil), shown when some nodes run here."""
    local = [n.name for n in snap.nodes if n.local]
    if not local:
        return
    memory = psutil.virtual_memory()
    cpu = cpu_percent()
    used_mb = (memory.total - memory.available) / 2**20
    with st.container(border=True, key="host"):
        st.markdown(f"**This machine** :blue-badge[{fmt.md_escape(', '.join(local))}]")
        left, right = st.columns(2)
        cores = psutil.cpu_count() or 1
        if cpu is None:
            left.progress(0.0, text=f"CPU: measuring… ({fmt.plural(cores, 'core')})")
        else:
            left.progress(min(1.0, cpu / 100), text=f"CPU {cpu:.0f}% of {fmt.plural(cores, 'core')}")
        right.progress(min(1.0, memory.percent / 100),
                       text=f"Memory {fmt.fmt_mb(used_mb)} / {fmt.fmt_mb(memory.total / 2**20)} used")


def _busy_idle(fields: Mapping[str, float]) -> tuple[float, float]:
    """(busy, idle) seconds from the fields of ``psutil.cpu_times()``."""
    # guest time is already counted in user time on Linux; idle includes waiting for I/O.
    total = sum(fields.values()) - fields.get("guest", 0.0) - fields.get("guest_nice", 0.0)
    idle = fields.get("idle", 0.0) + fields.get("iowait", 0.0)
    return total - idle, idle


@dataclass
class _CpuSample:
    at: float  # time.monotonic() of the sample
    busy: float
    idle: float
    percent: float | None = None  # since the sample before; None until there is one


_cpu_lock = threading.Lock()
_cpu = _CpuSample(time.monotonic(), *_busy_idle(psutil.cpu_times()._asdict()))


def cpu_percent(min_interval_s: float = 1.0) -> float | None:
    """Host CPU use since the previous sample (at least ``min_interval_s`` apart), shared by all sessions.

    Computed from ``psutil.cpu_times()`` deltas here because ``psutil.cpu_percent(None)``
    keeps its last reading per thread, and Streamlit runs each session in threads of its own.
    """
    with _cpu_lock:
        now = time.monotonic()
        if now - _cpu.at >= min_interval_s:
            busy, idle = _busy_idle(psutil.cpu_times()._asdict())
            elapsed = (busy - _cpu.busy) + (idle - _cpu.idle)
            if elapsed > 0:
                _cpu.percent = max(0.0, min(100.0, 100.0 * (busy - _cpu.busy) / elapsed))
            _cpu.at, _cpu.busy, _cpu.idle = now, busy, idle
        return _cpu.percent


def live_counts(snap: ClusterSnapshot) -> None:
    """What this process routed since it started (history covers earlier runs too)."""
    total = sum(snap.by_node.values())
    by_node = " · ".join(f"{fmt.md_escape(k)} {v}" for k, v in sorted(snap.by_node.items())) or "none yet"
    by_mode = " · ".join(f"{k} {v}" for k, v in sorted(snap.by_mode.items())) or fmt.DASH
    st.caption(f":material/bolt: Since this process started: **{total}** routed ({by_node}); "
               f"modes: {by_mode}; failovers: {snap.failovers}; queued now: {snap.queue_depth}.")
