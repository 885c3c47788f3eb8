"""The Batch page in AppTest over the simulated seed cluster: paste, template, preview, start, progress,
results, retry controls; bad input explained with Start disabled."""
from __future__ import annotations

from apphelpers import texts, wait_healthy, wait_until

from hydra.ui.shared import get_hydra

PAGE = "pages/5_Batch.py"


def _open(app):
    app.run()
    wait_healthy()
    app.switch_page(PAGE).run()
    assert not app.exception, app.exception
    assert texts(app, "title") == ["Batch"]
    return app


def test_paste_preview_start_and_follow_to_the_end(cluster_env, app):
    _open(app)
    app.radio(key="batch-source").set_value("Paste").run()
    app.text_area(key="batch-paste").input("What is 1+1?\nName a colour.\nSay hi.\n").run()
    app.text_area(key="batch-template").input("Answer in five words: {text}").run()
    app.selectbox(key="batch-model").set_value("llama3.2:3b").run()
    app.number_input(key="batch-cap").set_value(16).run()
    assert not app.error, texts(app, "error")
    preview = app.dataframe[0].value
    assert list(preview["prompt"]) == ["Answer in five words: What is 1+1?", "Answer in five words: Name a colour.",
                                       "Answer in five words: Say hi."]
    assert app.slider(key="batch-priority").value == 2 and app.radio(key="batch-mode").value == "async"
    app.button(key="batch-start").click().run()
    assert not app.exception, app.exception

    def finished(at) -> bool:
        return any("3 of 3 rows ended · done" in (p.proto.text or "") for p in at.get("progress"))

    wait_until(app, finished, timeout=30)
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Done"] == "3" and metrics["Failed"] == "0" and metrics["Remaining"] == "0"
    assert any(t.startswith("Rows done per node:") for t in texts(app))
    results = app.dataframe[-1].value
    assert list(results["status"]) == ["done"] * 3 and all(results["answer"])
    (batch,) = get_hydra().batches.batches()
    assert batch.options.priority == 2 and batch.options.mode == "async" and batch.options.max_tokens == 16


def test_a_missing_template_field_is_explained_and_start_is_disabled(cluster_env, app):
    _open(app)
    app.radio(key="batch-source").set_value("Paste").run()
    app.selectbox(key="batch-paste-kind").set_value("csv").run()
    app.text_area(key="batch-paste").input("review,stars\ngood,5\n").run()
    app.text_area(key="batch-template").input("Label {text}").run()
    assert any("text" in e and "is not a column" in e and "review, stars" in e for e in texts(app, "error")), texts(app, "error")
    assert app.button(key="batch-start").disabled
    assert get_hydra().batches.batches() == []
