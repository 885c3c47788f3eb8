"""The tasks page: submit, stream, several at once, cancel, reload, history and resubmit."""
from __future__ import annotations

from apphelpers import APP, RUN_TIMEOUT, answers, keyed, markdown_in, texts, wait_healthy, wait_until
from streamlit.testing.v1 import AppTest

from hydra.history import History
from hydra.sollol.types import Task, TaskEvent, TaskStatus
from hydra.ui.shared import get_hydra

PALINDROME = "Generate a Python function that checks whether a string is a palindrome"
SEED_TASKS = [PALINDROME,
              "Analyze the time complexity of this code: for i in range(n): for j in range(i): pass",
              "Create unit tests for a function add(a, b)"]


def _words(text: str) -> list[str]:
    return [w for w in text.split() if w.strip("`")]


def _submit(at, prompt: str, *, batch: bool = False, max_tokens: int | None = 40) -> None:
    at.text_area(key="prompt").input(prompt)
    if batch:
        at.toggle(key="batch").set_value(True)
    if max_tokens is not None:
        at.number_input(key="max_tokens").set_value(max_tokens)
    at.button(key="run").click().run()
    assert not at.exception, at.exception


def test_submitted_task_streams_its_answer_into_a_card(cluster_env, app):
    app.run()
    wait_healthy()
    _submit(app, PALINDROME)
    assert app.text_area(key="prompt").value == ""          # ready for the next prompt
    handles = get_hydra().tasks()
    assert len(handles) == 1 and handles[0].task.prompt == PALINDROME
    task_id = handles[0].id
    wait_until(app, lambda at: any(":green-badge" in t and "done" in t for t in markdown_in(keyed(at, "task-")[task_id])))
    result = handles[0].result(timeout=10)
    assert result.status is TaskStatus.DONE
    assert result.text.startswith("[simulated")
    # st.markdown dedents and strips its body; the words are the model's, in order (code blocks are
    # st.code, their fences the helper's: an answer cut by max_tokens has no closing fence of its own).
    assert _words(answers(app)[task_id]) == _words(result.text)
    captions = " ".join(texts(app, "caption"))
    assert "TTFT" in captions and "tok/s" in captions         # measured, shown once done
    assert result.node in captions                           # where it ran
    assert "Reasoning\\: score" in captions                  # the assessment of the prompt


def test_batch_runs_one_task_per_line_side_by_side(cluster_env, app):
    app.run()
    wait_healthy()
    _submit(app, "\n".join(SEED_TASKS) + "\n\n", batch=True)
    handles = get_hydra().tasks()
    assert sorted(h.task.prompt for h in handles) == sorted(SEED_TASKS)
    for h in handles:
        assert h.result(timeout=30).status is TaskStatus.DONE
    app.run()
    shown = answers(app)
    assert set(shown) == {h.id for h in handles}
    assert all(text.startswith("[simulated") for text in shown.values())
    assert len(app.columns) >= 3                              # cards side by side


def test_cancel_button_cancels_a_running_task(cluster_env, app):
    app.run()
    wait_healthy()
    _submit(app, "Write a very long essay about distributed systems", max_tokens=5000)
    handle = get_hydra().tasks()[0]
    wait_until(app, lambda at: any(b.key == f"cancel-{handle.id}" for b in at.button))
    next(b for b in app.button if b.key == f"cancel-{handle.id}").click().run()
    assert handle.result(timeout=10).status is TaskStatus.CANCELLED
    wait_until(app, lambda at: any("cancelled" in t for t in texts(at) if "badge" in t))


def test_tasks_survive_a_browser_reload(cluster_env, app):
    app.run()
    wait_healthy()
    _submit(app, PALINDROME)
    task_id = get_hydra().tasks()[0].id
    reopened = AppTest.from_file(APP, default_timeout=RUN_TIMEOUT)  # a new browser session
    wait_until(reopened, lambda at: answers(at).get(task_id, "").startswith("[simulated"))


def test_interrupted_task_is_in_history_and_can_be_resubmitted(cluster_env, app, tmp_path):
    # A task the previous process left running: the next start marks it interrupted.
    old = History(tmp_path / "hydra.db")
    task = Task(prompt="Explain the CAP theorem in two sentences", max_tokens=30)
    old.record_event(TaskEvent("queued", task))
    old.close()

    app.run()
    wait_healthy()
    assert any("interrupted" in t and "CAP theorem" in t for t in texts(app))
    button = next(b for b in app.button if b.key == f"history-resubmit-{task.id}")
    button.click().run()
    assert not app.exception
    handles = get_hydra().tasks()
    assert len(handles) == 1 and handles[0].task.prompt == task.prompt and handles[0].id != task.id
    assert handles[0].result(timeout=30).status is TaskStatus.DONE
    wait_until(app, lambda at: any(r == "done" for r in at.dataframe[0].value["Status"]))


def test_empty_prompt_is_refused_with_a_message(cluster_env, app):
    app.run()
    app.button(key="run").click().run()
    assert any("Type a prompt" in t for t in texts(app, "warning"))
    assert get_hydra().tasks() == []
