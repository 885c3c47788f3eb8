"""The Distribution page's cache section, from a snapshot's figures."""
from __future__ import annotations

from hydra.sollol.prefix_cache import NodeCacheStats, PrefixCacheSnapshot
from hydra.ui.cache_stats import cache_rows


def test_cache_rows_say_hits_tokens_and_time_saved_per_node():
    cache = PrefixCacheSnapshot(True, 10, 6, 20_000, 15_000, 42.5, (
        NodeCacheStats("light", 8, 6, 16_000, 15_000, 42.5, 60.0), NodeCacheStats("powerful", 2, 0, 4_000, 0, 0.0, None)))
    rows = cache_rows(cache)
    assert rows[0] == {"node": "light", "requests": 8, "hit rate": "75%", "prompt tokens cached": "15,000 of 16,000",
                       "prefill saved": "42.5 s", "prefill speed": "60 tokens/s"}
    assert rows[1]["hit rate"] == "0%" and rows[1]["prefill speed"] == "—"
    assert (cache.hit_rate, cache.token_hit_rate) == (0.6, 0.75)
