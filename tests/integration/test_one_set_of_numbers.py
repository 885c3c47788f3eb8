"""One set of numbers (issue 14 item 9): after a mixed run (the UI's service.submit, the CLI's submit,
the Python API, the gateway's Ollama and OpenAI routes), the Distribution page's queries, the gateway's
/api/hydra/status and /metrics count the same tasks by node, model, mode and status; /metrics also says
where each came from."""
from __future__ import annotations

import io
from collections import Counter
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hydra.cli import build_parser, submit_and_stream
from hydra.sollol import TaskStatus

BY = ("node", "model", "mode", "status")


def page_counts(hydra: Any) -> dict[str, Counter[str]]:
    """What the Distribution page charts: its query over history, summed per dimension."""
    counts: dict[str, Counter[str]] = {by: Counter() for by in BY}
    for row in hydra.history.distribution(since=None, bucket_s=3600):
        for by in BY:
            counts[by][row[by] or ""] += row["count"]
    return counts


def metrics_counts(text: str) -> tuple[dict[str, Counter[str]], Counter[str]]:
    """hydra_tasks_total summed per dimension, and per source."""
    counts: dict[str, Counter[str]] = {by: Counter() for by in BY}
    sources: Counter[str] = Counter()
    [family] = [f for f in text_string_to_metric_families(text) if f.name == "hydra_tasks"]
    for sample in family.samples:
        if sample.name != "hydra_tasks_total":
            continue
        for by in BY:
            counts[by][sample.labels[by]] += int(sample.value)
        sources[sample.labels["source"]] += int(sample.value)
    return counts, sources


def test_the_pages_the_status_and_metrics_agree_after_a_mixed_run(seed_service: Any, seed_gateway: Any,
                                                                  eventually: Any) -> None:
    hydra = seed_service  # the one service behind seed_gateway
    handles = [hydra.submit("Write a Python function that adds two numbers.", mode="fast", max_tokens=16,
                            source="ui"),
               hydra.submit("Explain why the sky is blue.", mode="async", max_tokens=16, source="ui"),
               hydra.submit("Describe a harbour town.", mode="reliable", max_tokens=16, source="ui"),
               hydra.submit("Solve 3x + 5 = 20.", max_tokens=16)]  # the Python API names no source
    out, err = io.StringIO(), io.StringIO()
    args = build_parser().parse_args(["submit", "Name three rivers.", "--mode", "fast", "--max-tokens", "16"])
    assert submit_and_stream(hydra, args, out, err) == 0, err.getvalue()
    with httpx.Client(base_url=seed_gateway.url, timeout=60) as client:
        chat = client.post("/api/chat", json={"model": "mistral:latest", "stream": False, "options": {"num_predict": 16},
                                              "messages": [{"role": "user", "content": "Say hello."}]})
        assert chat.status_code == 200, chat.text
        openai = client.post("/v1/chat/completions", json={"model": "llama3.2:3b", "max_tokens": 16,
                                                           "messages": [{"role": "user", "content": "Hi there."}]})
        assert openai.status_code == 200, openai.text
        for handle in handles:
            assert handle.result(timeout=60).status is TaskStatus.DONE
        total = len(handles) + 3
        # History writes on a thread of its own: wait until the page would show every task finished.
        eventually(lambda: sum(page_counts(hydra)["status"].values()) == total
                   and page_counts(hydra)["status"]["done"] == total, what="history has every task done")
        status = client.get("/api/hydra/status").json()["distribution"]
        metrics, sources = metrics_counts(client.get("/metrics").text)

    page = page_counts(hydra)
    assert sum(page["node"].values()) == total and page["status"] == Counter(done=total)
    assert sources == Counter(ui=3, api=1, cli=1, gateway=2)
    for by in BY:
        status_counts = Counter({k: v for k, v in status[f"by_{by}"].items() if v})
        assert page[by] == metrics[by] == status_counts, by
    # Every task ran on a node: nothing is counted under an empty node or model.
    assert "" not in page["node"] and "" not in metrics["model"]
    assert set(page["mode"]) == {"fast", "async", "reliable"}


@pytest.mark.parametrize("source", ["browser", "", "UI"])
def test_an_unknown_source_is_refused_before_anything_runs(seed_service: Any, source: str) -> None:
    with pytest.raises(ValueError, match="source must be one of ui, cli, api, gateway"):
        seed_service.submit("Say hello.", source=source)
    assert seed_service.task_counts() == {} and seed_service.tasks() == []
