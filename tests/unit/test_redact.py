"""Credentials in node URLs are masked wherever they are shown; the rest of the text is left alone."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest

from hydra.gateway.metrics import GatewayMetrics
from hydra.sollol.prefix_cache import NodeCacheStats, PrefixCacheSnapshot
from hydra.sollol.redact import redact_text, redact_url
from hydra.sollol.types import TaskResult, TaskStatus
from hydra.task_counts import TaskKey

URLS = [
    ("http://ops:s3cret@gpu-box:11434", "http://ops:***@gpu-box:11434"),
    ("https://ops:s3cret@gpu-box", "https://ops:***@gpu-box"),
    ("http://TOKEN123@gpu-box:11434", "http://***@gpu-box:11434"),            # a lone user part is a token
    ("http://ops:@gpu-box:11434", "http://ops:***@gpu-box:11434"),
    ("http://:s3cret@gpu-box:11434", "http://***@gpu-box:11434"),
    ("http://ops:p@ss@gpu-box:11434", "http://ops:***@gpu-box:11434"),        # a raw @ in the password
    ("http://ops:s3cret@[::1]:11434/api/chat", "http://ops:***@[::1]:11434/api/chat"),
    ("http://ops:s3cret@h:1/x?to=a@b#c@d", "http://ops:***@h:1/x?to=a@b#c@d"),  # only the authority
    ("ops:s3cret@gpu-box:11434", "ops:***@gpu-box:11434"),                      # a node address without scheme
    ("http://gpu-box:11434", "http://gpu-box:11434"),
    ("gpu-box:11434", "gpu-box:11434"),
    ("", ""),
]


@pytest.mark.parametrize(("url", "shown"), URLS, ids=[u or "empty" for u, _ in URLS])
def test_a_url_shows_no_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert redact_url(shown) == shown  # masking twice changes nothing


TEXTS = [
    ("cannot connect to http://ops:s3cret@127.0.0.5:11434 during a chat: is Ollama running there?",
     "cannot connect to http://ops:***@127.0.0.5:11434 during a chat: is Ollama running there?"),
    ("Client error '404 Not Found' for url 'https://ops:s3cret@h:443/api/tags'",
     "Client error '404 Not Found' for url 'https://ops:***@h:443/api/tags'"),
    ("two: http://a:x@h1:1, http://b:y@h2:2", "two: http://a:***@h1:1, http://b:***@h2:2"),
    ('{"url": "http://a:x@h1:1"}', '{"url": "http://a:***@h1:1"}'),
    ("mail ops@example.com about http://h:11434", "mail ops@example.com about http://h:11434"),
    ("model llama3.2:3b on light", "model llama3.2:3b on light"),
]


@pytest.mark.parametrize(("text", "shown"), TEXTS, ids=range(len(TEXTS)))
def test_a_text_shows_no_password(text: str, shown: str) -> None:
    assert redact_text(text) == shown


def test_text_without_an_at_sign_is_the_same_object() -> None:
    text = "http://gpu-box:11434 answered in 0.2 s"
    assert redact_text(text) is text and redact_url(text) is text


def test_metric_labels_show_no_credentials() -> None:
    node = SimpleNamespace(name="ops:s3cret@gpu-box:11434", healthy=True, circuit="closed", vram_used_mb=1,
                           in_flight=0)
    cache = PrefixCacheSnapshot(True, 1, 1, 100, 90, 1.5, (NodeCacheStats(node.name, 1, 1, 100, 90, 1.5, 60.0),))
    snapshot = SimpleNamespace(queue_depth=0, in_flight=0, nodes=(node,), prefix_cache=cache)
    health = SimpleNamespace(ok=True)
    counts = {TaskKey("http://ops:s3cret@gpu-box:11434", "m", "fast", "done", "ui"): 2}
    metrics = GatewayMetrics(cast(Any, SimpleNamespace(snapshot=lambda: snapshot, history_health=lambda: health,
                                                       task_counts=lambda: counts)))
    metrics.finished("ollama_chat", "fast", TaskResult("t", TaskStatus.DONE, node="http://ops:s3cret@gpu-box:11434",
                                                       model="m", ttft_s=0.1, eval_count=3), 0.2)
    text = metrics.render().decode()
    assert "s3cret" not in text
    assert 'node="ops:***@gpu-box:11434"' in text and 'node="http://ops:***@gpu-box:11434"' in text
    assert 'hydra_tasks_total{mode="fast",model="m",node="http://ops:***@gpu-box:11434",source="ui",status="done"} 2.0' \
        in text
    assert 'hydra_prefix_cache_hits_total{node="ops:***@gpu-box:11434"} 1.0' in text
