"""The Distribution page's "KV-cache affinity" section: how much of the prompts the nodes already held
where they ran, and the prefill time that saved (prefix-aware placement, hydra/sollol/prefix_cache.py).

Read from the live snapshot (``ClusterSnapshot.prefix_cache``): since this process started.
"""
from __future__ import annotations

from typing import Any

import streamlit as st

from hydra.sollol.prefix_cache import PrefixCacheSnapshot
from hydra.sollol.types import ClusterSnapshot
from hydra.ui import formatting as fmt


def cache_rows(cache: PrefixCacheSnapshot) -> list[dict[str, Any]]:
    """One row per node: requests, hit rate, tokens cached, prefill saved, measured prefill speed."""
    return [{"node": n.node, "requests": n.requests,
             "hit rate": fmt.fmt_pct(n.hits / n.requests if n.requests else None),
             "prompt tokens cached": f"{n.cached_tokens:,} of {n.prompt_tokens:,}",
             "prefill saved": fmt.fmt_seconds(n.prefill_saved_s),
             "prefill speed": f"{n.prefill_tps:,.0f} tokens/s" if n.prefill_tps else "—"} for n in cache.nodes]


def cache_section(snapshot: ClusterSnapshot) -> None:
    cache = snapshot.prefix_cache
    st.subheader("KV-cache affinity")
    if cache is None:
        return
    if not cache.enabled:
        st.caption("Prefix-aware placement is off (SOLLOL_PREFIX_AFFINITY=false): follow-ups go where the mode "
                   "sends them, whatever the nodes hold in cache. Hits below happened by chance.")
    else:
        st.caption("A conversation's next turn goes to the node that still holds its history in cache when that "
                   "finishes sooner: it pays prefill for the new message only. Since Hydra started.")
    hits, tokens, saved = st.columns(3)
    hits.metric("Cache-hit rate", fmt.fmt_pct(cache.hit_rate), help="Requests that found part of their prompt "
                "cached on the node they ran on.")
    tokens.metric("Prompt tokens cached", fmt.fmt_pct(cache.token_hit_rate),
                  help=f"{cache.cached_tokens:,} of {cache.prompt_tokens:,} prompt tokens (estimated).")
    saved.metric("Prefill time saved", fmt.fmt_seconds(cache.prefill_saved_s),
                 help="The cached tokens at each node's measured prefill speed.")
    if cache.nodes:
        st.dataframe(cache_rows(cache), hide_index=True, key="dist:cache")
