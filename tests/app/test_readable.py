"""Helpers behind readable cards and tables: pure functions over plain rows, and the pages that use them."""
from __future__ import annotations

import pytest
from apphelpers import wait_healthy, wait_until

from hydra.sollol.errors import ConfigError
from hydra.sollol.types import NodeSpec, TaskStatus, TaskView
from hydra.ui import formatting as fmt
from hydra.ui import tables
from hydra.ui.answer import Piece, split_answer
from hydra.ui.shared import get_hydra
from hydra.ui.task_list import pick_shown


@pytest.mark.parametrize("count, word, text", [(0, "node", "0 nodes"), (1, "node", "1 node"), (1, "slot", "1 slot"),
                                               (2, "slot", "2 slots")])
def test_plural(count, word, text):
    assert fmt.plural(count, word) == text


@pytest.mark.parametrize("text, pieces", [
    ("plain words", [Piece(False, "plain words")]),
    ("Here:\n```python\ndef f():\n    return 1\n```\nDone.",
     [Piece(False, "Here:"), Piece(True, "def f():\n    return 1", "python"), Piece(False, "Done.")]),
    ("~~~\nraw\n~~~", [Piece(True, "raw", "")]),
    ("````md\n```\ninner\n```\n````", [Piece(True, "```\ninner\n```", "md")]),      # a longer fence holds a shorter
    ("```rust\nlet v = vec![1];", [Piece(True, "let v = vec![1];", "rust")]),       # still streaming: runs to the end
    ("```mermaid\nflowchart LR\n```", [Piece(True, "flowchart LR", "text")]),       # its source, never a diagram
    ("- item\n  ```\n  in a list\n  ```", [Piece(False, "- item\n  ```\n  in a list\n  ```")]),  # not top level
], ids=["prose", "code-between-prose", "tilde", "nested-fence", "unclosed", "mermaid", "in-list"])
def test_split_answer(text, pieces):
    assert split_answer(text) == pieces


def _view(task_id: str, status: TaskStatus, at: float) -> TaskView:
    return TaskView(task_id=task_id, prompt="p", status=status, text="", thinking="", node=None, model=None, mode=None,
                    task_type=None, priority=5, submitted_at=at, ttft_s=None, duration_s=None, tokens_per_s=None,
                    eval_count=None, attempts=1, restarts=0, reason="", error=None)


def test_pick_shown_is_newest_first_and_clearing_hides_older_finished_tasks_but_not_running_ones():
    views = [_view(f"done{i}", TaskStatus.DONE, float(i)) for i in range(9)]
    views.append(_view("running", TaskStatus.RUNNING, 4.5))
    shown = pick_shown(views, dismissed=set(), cleared_at=None, kept=set())
    assert [v.task_id for v in shown] == ["done8", "done7", "done6", "done5", "running", "done4", "done3"]
    # Cleared at t=10 while "late" ran; it has finished since: it stays, everything older goes.
    late = _view("late", TaskStatus.DONE, 4.7)
    new = _view("new", TaskStatus.DONE, 11.0)
    shown = pick_shown([*views[:9], late, new], dismissed={"new"}, cleared_at=10.0, kept={"late"})
    assert [v.task_id for v in shown] == ["late"]


@pytest.mark.parametrize("healthy, circuit, seen, error, text", [
    (True, "closed", 1.0, None, "healthy"),
    (False, "closed", 1.0, "refused", "down]"),          # never "down · circuit closed"
    (False, "open", 1.0, "refused", "down · circuit open"),
    (True, "half_open", 1.0, None, "answering · circuit half-open"),
    (False, "closed", None, None, "checking"),
])
def test_node_state_badge_never_contradicts_itself(healthy, circuit, seen, error, text):
    badge = fmt.node_state_badge(healthy, circuit, seen, error)
    assert text in badge and "circuit closed" not in badge


@pytest.mark.parametrize("kwargs, label", [({"url": "ftp://127.0.0.1"}, "**URL**"),
                                           ({"url": "http://127.0.0.1:1", "name": "a,b"}, "**Name**"),
                                           ({"url": "http://127.0.0.1:1", "slots": 0}, "**Slots**"),
                                           ({"url": "not a url"}, "**URL**")])
def test_node_form_errors_speak_the_forms_words(kwargs, label):
    with pytest.raises(ConfigError) as caught:
        NodeSpec(**kwargs)
    text = fmt.node_form_error_text(caught.value)
    assert text.startswith(label) and "Nothing was changed" in text
    assert "node url" not in text and "';'" not in text and "of node" not in text


def test_nodes_diff_reads_as_node_lists():
    env = (NodeSpec(url="http://127.0.0.2:11434", name="light"), NodeSpec(url="http://127.0.0.3:11434", name="gpu"))
    here = (env[0], NodeSpec(url="http://127.0.0.4:11434", name="new"))
    text = fmt.nodes_diff_text(here, env)
    assert text == "added here: **new** `http://127.0.0.4:11434`; removed here: **gpu** `http://127.0.0.3:11434`"


def test_tables_name_gateway_tasks_by_their_last_user_message_and_never_say_none():
    rows = [{"id": "a", "prompt": "", "status": "done", "submitted_at": 1.0, "node": None, "model": None,
             "messages": [{"role": "user", "content": "first"}, {"role": "assistant", "content": "x"},
                          {"role": "user", "content": "the question"}]},
            {"id": "b", "prompt": "", "status": "running", "submitted_at": 2.0, "messages": None}]
    frame = tables.history_frame(rows, {"b": "done"})
    assert list(frame["Prompt"]) == ["the question", "(no prompt)"]
    assert list(frame["Status"]) == ["done", "done"]                 # the live status wins over the row
    assert "None" not in frame.astype(str).to_string()
    candidates = tables.candidates_frame([{"node": "light", "model": "m", "score": None, "eligible": False,
                                           "reason": "no model"}, {"node": "gpu", "model": "m", "score": 1.5,
                                                                   "eligible": True, "reason": "fits"}])
    assert list(candidates["Score"]) == ["excluded", "1.50"]
    decisions = tables.decisions_frame([{"task_id": "a", "time": 1.0, "node": "light", "model": "m",
                                         "reason": "CPU first", "candidates": [], "mode": None}],
                                       tables.task_prompts(rows))
    assert decisions.loc[0, "Prompt"] == "the question" and decisions.loc[0, "Mode"] == fmt.DASH
    assert tables.DECISION_ORDER.index("Reason") < tables.DECISION_ORDER.index("Candidates (score: lower wins)")


def test_distribution_decisions_show_the_prompt_and_the_reason(cluster_env, app):
    app.run()
    wait_healthy()
    handle = get_hydra().submit("Sort a list of numbers in Python", max_tokens=10)
    assert handle.result(timeout=30).status is TaskStatus.DONE
    at = app.switch_page("pages/2_Distribution.py")
    wait_until(at, lambda a: any(d.key == "dist:decisions" for d in a.dataframe if hasattr(d, "key")) or
               len(a.dataframe) > 0)
    frame = next(d.value for d in at.dataframe if "Reason" in d.value.columns)
    row = frame[frame["Task"] == handle.id].iloc[0]
    assert row["Prompt"] == "Sort a list of numbers in Python" and row["Reason"] not in ("", None, fmt.DASH)
    at.text_input(key="dist:task").input("numbers in python").run()   # the filter reads prompts too
    frame = next(d.value for d in at.dataframe if "Reason" in d.value.columns)
    assert list(frame["Task"]) == [handle.id]
