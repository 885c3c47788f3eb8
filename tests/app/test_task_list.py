"""The tasks page as its users expect it: newest first, Clear finished that sticks, answers in full
with a copy button, Run again for any task, the prompt kept until accepted, the answer cap."""
from __future__ import annotations

from apphelpers import APP, RUN_TIMEOUT, code_in, keyed, texts, wait_healthy, wait_until
from streamlit.testing.v1 import AppTest

from hydra.history.testing import SmallDisk
from hydra.sollol.types import TaskStatus
from hydra.ui.shared import get_hydra

CODE = "Generate a Python function that checks whether a string is a palindrome"


def _run(at: AppTest, prompt: str, **fields) -> None:
    at.text_area(key="prompt").input(prompt)
    for key, value in fields.items():
        widget = at.text_area(key=key) if key == "system" else at.number_input(key=key)
        widget.set_value(value) if key != "system" else widget.input(value)
    at.button(key="run").click().run()
    assert not at.exception, at.exception


def _finish_all(timeout: float = 30) -> None:
    for handle in get_hydra().tasks():
        assert handle.result(timeout=timeout).status is TaskStatus.DONE


def _card_ids(at: AppTest) -> list[str]:
    return list(keyed(at, "task-"))  # in the order the page draws them


def test_the_newest_task_comes_first(cluster_env, app):
    app.run()
    wait_healthy()
    _run(app, "Name a colour.", max_tokens=8)
    _run(app, "Name an animal.", max_tokens=8)
    first, second = reversed([h.id for h in get_hydra().tasks()])   # tasks() is newest first
    _finish_all()
    wait_until(app, lambda at: set(_card_ids(at)) == {first, second})
    assert _card_ids(app) == [second, first]


def test_clear_finished_hides_every_finished_task_and_survives_a_reload(cluster_env, app):
    app.run()
    wait_healthy()
    for i in range(8):  # more than the six finished cards shown: none may come back after clearing
        get_hydra().submit(f"Count to {i + 2}.", max_tokens=6)
    _finish_all()
    wait_until(app, lambda at: len(_card_ids(at)) == 6)
    app.button(key="clear_finished").click().run()
    assert _card_ids(app) == []
    cleared = app.query_params["cleared"]
    assert cleared, "the moment of clearing is kept in the URL"

    get_hydra().submit("Name a planet.", max_tokens=6)
    _finish_all()
    newest = get_hydra().tasks()[0].id
    wait_until(app, lambda at: _card_ids(at) == [newest])           # new tasks show again

    reloaded = AppTest.from_file(APP, default_timeout=RUN_TIMEOUT)  # a reload: a new session, same URL
    reloaded.query_params["cleared"] = cleared
    reloaded.run()
    assert _card_ids(reloaded) == [newest]


def test_a_finished_answer_shows_in_full_with_code_wrapped_and_a_copy_button(cluster_env, app):
    app.run()
    wait_healthy()
    _run(app, CODE, max_tokens=120)
    handle = get_hydra().tasks()[0]
    result = handle.result(timeout=30)
    assert "```python" in result.text
    wait_until(app, lambda at: any(b.key == f"resubmit-{handle.id}" for b in at.button))
    answer = keyed(app, "answer-")[handle.id]
    assert answer.proto.height_config.WhichOneof("height_spec") in (None, "use_content"), \
        "the answer sits in a box of its own height (no inner scroll)"
    blocks = code_in(answer)
    assert blocks and blocks[0][0] == "python" and "def " in blocks[0][1]
    # The Copy popover holds the raw answer as st.code, whose built-in button copies it.
    assert any(code.value == result.text for code in app.code), "the whole answer is in a copyable block"


def test_any_finished_task_runs_again_with_its_settings(cluster_env, app):
    app.run()
    wait_healthy()
    _run(app, "Explain recursion briefly.", system="Answer in one sentence.", temperature=0.3, max_tokens=20)
    first = get_hydra().tasks()[0]
    assert first.result(timeout=30).status is TaskStatus.DONE
    wait_until(app, lambda at: any(b.key == f"resubmit-{first.id}" for b in at.button))
    next(b for b in app.button if b.key == f"resubmit-{first.id}").click().run()
    again = get_hydra().tasks()[0]
    assert again.id != first.id
    assert (again.task.prompt, again.task.system, again.task.options, again.task.max_tokens) == \
        ("Explain recursion briefly.", "Answer in one sentence.", {"temperature": 0.3}, 20)


def test_the_form_sends_system_prompt_temperature_and_the_default_answer_cap(cluster_env, app, monkeypatch):
    monkeypatch.setenv("HYDRA_MAX_TOKENS", "77")
    app.run()
    wait_healthy()
    assert app.number_input(key="max_tokens").value == 77          # the setting, shown in the form
    assert any("HYDRA_MAX_TOKENS" in (n.help or "") for n in app.number_input)
    assert any("Ctrl+Enter" in t for t in texts(app, "caption"))   # the keyboard shortcut, shown
    _run(app, "Say hello.", system="You are terse.", temperature=0.0)
    task = get_hydra().tasks()[0].task
    assert (task.system, task.options, task.max_tokens) == ("You are terse.", {"temperature": 0.0}, 77)


def test_the_prompt_stays_until_the_task_is_accepted(cluster_env, app):
    with SmallDisk(pages=3000) as disk:
        app.run()
        wait_healthy()
        disk.fill(get_hydra().history.path)
        assert not get_hydra().history.probe()
        _run(app, "A prompt worth keeping.")
        assert any("Not submitted" in t for t in texts(app, "error"))
        assert app.text_area(key="prompt").value == "A prompt worth keeping."   # refused: it stays
        assert get_hydra().tasks() == []
        disk.free(get_hydra().history.path)
        wait_until(app, lambda at: get_hydra().history_health().ok, timeout=20)
        app.button(key="run").click().run()
        assert app.text_area(key="prompt").value == ""                            # accepted: cleared
        assert [h.task.prompt for h in get_hydra().tasks()] == ["A prompt worth keeping."]
