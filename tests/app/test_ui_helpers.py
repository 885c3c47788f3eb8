"""Pure helpers behind the pages: formatting, tables and charts (no Streamlit run needed)."""
from __future__ import annotations

import time

import pytest

from hydra.reasoning import Assessment, Reason
from hydra.sollol.errors import ConfigError
from hydra.sollol.types import RoutingMode, TaskStatus
from hydra.ui import charts, tables
from hydra.ui import formatting as fmt


@pytest.mark.parametrize("seconds, text", [(None, "—"), (0.0421, "42 ms"), (1.26, "1.3 s"), (59.9, "59.9 s"),
                                           (75, "1 min 15 s")], ids=["none", "ms", "s", "edge", "min"])
def test_fmt_seconds(seconds, text):
    assert fmt.fmt_seconds(seconds) == text


@pytest.mark.parametrize("mb, text", [(None, "—"), (512, "512 MB"), (48_000, "46.9 GB")], ids=["none", "mb", "gb"])
def test_fmt_mb(mb, text):
    assert fmt.fmt_mb(mb) == text


@pytest.mark.parametrize("fraction, text", [(None, "—"), (1.0, "100%"), (0.0, "0%"), (0.985, "98%"),
                                            (0.05, "5.0%")], ids=["none", "all", "zero", "high", "low"])
def test_fmt_pct(fraction, text):
    assert fmt.fmt_pct(fraction) == text


@pytest.mark.parametrize("text, batch, prompts", [
    ("", True, []),
    ("  one prompt\nsecond line  ", False, ["one prompt\nsecond line"]),
    ("a\n\n  b \n", True, ["a", "b"]),
    (None, False, []),
], ids=["empty", "single-keeps-lines", "batch-skips-blank", "none"])
def test_split_batch(text, batch, prompts):
    assert fmt.split_batch(text, batch) == prompts


@pytest.mark.parametrize("text", ["[click](http://x)", "**bold** _it_", ":material/home: :red[x]", "<b>x</b>",
                                  "$x^2$", "# heading"], ids=["link", "emphasis", "directives", "html", "latex", "h"])
def test_md_escape_leaves_no_markup(text):
    escaped = fmt.md_escape(text)
    # Every markup character is escaped, so Markdown renders the text literally.
    for i, ch in enumerate(escaped):
        if ch in "[]()*_:<>$#`":
            assert escaped[i - 1] == "\\", (text, escaped)


def test_tool_call_text():
    call = {"function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}}
    assert fmt.tool_call_text(call) == "get_weather(city='Paris', days=2)"
    assert fmt.tool_call_text({"function": {"name": "now"}}) == "now()"
    assert fmt.tool_call_text({}) == "?()"
    assert fmt.tool_call_text({"function": {"name": "f", "arguments": {"x": "y" * 500}}}).endswith("…")


def test_one_line_flattens_and_truncates():
    assert fmt.one_line("a\n  b\tc", 80) == "a b c"
    assert fmt.one_line("x" * 100, 10) == "x" * 9 + "…"


@pytest.mark.parametrize("status, color", [(TaskStatus.DONE, "green"), ("failed", "red"), ("running", "blue"),
                                           ("interrupted", "orange"), ("weird", "gray")])
def test_status_badge(status, color):
    badge = fmt.status_badge(status)
    assert badge.startswith(f":{color}-badge[") and fmt.value_of(status) in badge


def test_mode_label_uses_the_seed_descriptions():
    assert fmt.mode_label(RoutingMode.FAST) == "fast — Interactive responses, real-time chat — speed above all."
    assert fmt.mode_label("async").startswith("async — Background tasks, parallel processing")


def test_assessment_line():
    a = Assessment(score=6.54, reasons=(Reason("steps", 2.0, "step by step"),), level="standard", think=True,
                   budget=2500, model_override="qwen3:14b", explanation="...")
    assert fmt.assessment_line(a) == ("Reasoning: score 6.5/10 · standard thinking · budget 2,500 tokens · "
                                      "suggests qwen3:14b")
    # The card names the model that ran: the suggestion never reads as if it had (issue 14).
    assert fmt.assessment_line(a, "qwen3:1.7b") == ("Reasoning: score 6.5/10 · standard thinking · budget "
                                                    "2,500 tokens · suggested qwen3:14b")
    assert fmt.assessment_line(a, "Qwen3:14b") == "Reasoning: score 6.5/10 · standard thinking · budget 2,500 tokens"
    none = Assessment(score=1.0, reasons=(), level="none", think=False, budget=0, model_override=None,
                      explanation="")
    assert fmt.assessment_line(none) == "Reasoning: score 1.0/10 · no thinking"
    assert fmt.assessment_line(None) == ""


def test_candidates_text():
    text = fmt.candidates_text([
        {"node": "light", "model": "m", "score": 0.25, "eligible": True, "reason": "chosen"},
        {"node": "powerful", "model": "m", "score": None, "eligible": False, "reason": "circuit open"},
    ])
    assert text == "light/m 0.25; powerful/m ✗ circuit open"


def test_config_error_texts_name_variable_value_and_allowed():
    exc = ConfigError("SOLLOL_MAX_CONCURRENT_REQUESTS", "0", "an integer from 1 to 1024")
    for text in (fmt.config_error_text(exc), fmt.startup_error_text(exc)):
        assert "SOLLOL_MAX_CONCURRENT_REQUESTS" in text and "`0`" in text and "an integer from 1 to 1024" in text


def _dist(now: float) -> list[dict]:
    return [
        {"bucket": now - 120, "node": "light", "model": "qwen2.5-coder:7b", "mode": "async", "task_type": "code",
         "status": "done", "count": 2},
        {"bucket": now - 60, "node": "powerful", "model": "qwen3:14b", "mode": "fast", "task_type": "reasoning",
         "status": "failed", "count": 1},
        {"bucket": now - 60, "node": None, "model": None, "mode": "async", "task_type": "general",
         "status": "failed", "count": 1},
    ]


PERF = [{"node": "light", "model": "qwen2.5-coder:7b", "count": 2, "done": 2, "failed": 0, "success_rate": 1.0,
         "ttft_p50_s": 0.4, "ttft_p95_s": 0.9, "tokens_per_s": 9.0, "failovers": 0},
        {"node": "powerful", "model": "qwen3:14b", "count": 1, "done": 0, "failed": 1, "success_rate": 0.0,
         "ttft_p50_s": None, "ttft_p95_s": None, "tokens_per_s": None, "failovers": 1}]


def test_charts_draw_history_rows():
    now = time.time()
    dist = _dist(now)
    colors = charts.color_map(r["node"] or "(not routed)" for r in dist)
    assert colors == charts.color_map(["powerful", "light", "(not routed)"])  # order-independent
    over_time = charts.requests_over_time(dist, colors, 60, (now - 900, now))
    assert {t.name for t in over_time.data} == {"light", "powerful", "(not routed)"}
    pie = charts.share(dist, "node", "By node", colors)
    assert dict(zip(pie.data[0].labels, pie.data[0].values, strict=True)) == {"light": 2, "powerful": 1,
                                                                               "(not routed)": 1}
    assert {t.name for t in charts.ttft(PERF).data} == {"qwen2.5-coder:7b"}   # no TTFT measured: no bar
    outcomes = charts.outcomes(dist, PERF)
    assert {t.name for t in outcomes.data} == {"done", "failed", "failovers"}


@pytest.mark.parametrize("figure", [
    lambda: charts.requests_over_time([], {}, 60),
    lambda: charts.share([], "node", "By node"),
    lambda: charts.ttft([]),
    lambda: charts.speed([]),
    lambda: charts.outcomes([], []),
    lambda: charts.ttft([{**PERF[1]}]),
], ids=["time", "share", "ttft", "speed", "outcomes", "ttft-unmeasured"])
def test_charts_are_none_without_data(figure):
    assert figure() is None


def test_decision_table_and_filters():
    rows = [{"task_id": "abc123", "time": 1.0, "mode": "async", "task_type": "code", "node": "light",
             "model": "m", "reason": "CPU first", "attempt": 1, "candidates": []},
            {"task_id": "def456", "time": 2.0, "mode": "fast", "task_type": "code", "node": None,
             "model": None, "reason": "no node", "attempt": 2, "candidates": None}]
    frame = tables.decisions_frame(rows)
    assert list(frame["Node"]) == ["light", "(none)"]
    assert [r["task_id"] for r in tables.filter_decisions(rows, task_text="F45")] == ["def456"]
    assert [r["task_id"] for r in tables.filter_decisions(rows, node="light")] == ["abc123"]
    assert [r["task_id"] for r in tables.filter_decisions(rows, mode="fast")] == ["def456"]
    assert tables.decisions_frame([]).empty and list(tables.decisions_frame([]).columns) == list(frame.columns)


def test_history_frame_keeps_one_row_per_task():
    frame = tables.history_frame([{"id": "a", "prompt": "x\ny", "status": "done", "submitted_at": 1.0,
                                   "failovers": None}])
    assert frame.loc[0, "Prompt"] == "x y" and frame.loc[0, "Failovers"] == 0 and frame.loc[0, "Task"] == "a"
