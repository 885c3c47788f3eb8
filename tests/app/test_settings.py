"""Settings and reasoning pages: changes reach the running router at once, bad input is refused in place."""
from __future__ import annotations

import pytest
from apphelpers import texts, wait_healthy

from hydra.sim import preset, start_cluster
from hydra.sollol.types import RoutingMode
from hydra.ui.shared import get_hydra

SETTINGS = "pages/4_Settings.py"
REASONING = "pages/3_Reasoning.py"


@pytest.fixture
def settings_page(cluster_env, app):
    app.run()
    wait_healthy()
    return app.switch_page(SETTINGS).run()


def _apply(at, form: str = "settings"):
    at.button(key=f"{form}:apply").click().run()
    assert not at.exception, at.exception
    return at


@pytest.mark.parametrize("mode", [RoutingMode.FAST, RoutingMode.RELIABLE], ids=str)
def test_switching_mode_changes_the_running_router(settings_page, mode):
    at = settings_page
    at.radio(key="settings:SOLLOL_DEFAULT_ROUTING_MODE").set_value(mode.value)
    _apply(at)
    assert get_hydra().snapshot().default_mode is mode
    assert get_hydra().settings.default_mode is mode
    assert any("Applied to the running router and saved" in t for t in texts(at, "success"))
    # Shown as differing from the environment, with a reset that puts the router back.
    assert any("SOLLOL_DEFAULT_ROUTING_MODE" in t for t in texts(at))
    at.button(key="overrides:reset:SOLLOL_DEFAULT_ROUTING_MODE").click().run()
    assert get_hydra().snapshot().default_mode is RoutingMode.ASYNC
    assert at.radio(key="settings:SOLLOL_DEFAULT_ROUTING_MODE").value == "async"


def test_mode_descriptions_are_the_seeds(settings_page):
    captions = settings_page.radio(key="settings:SOLLOL_DEFAULT_ROUTING_MODE").proto.captions
    assert "Interactive responses, real-time chat" in captions[0]
    assert "Critical tasks, production code" in captions[1]
    assert "Background tasks, parallel processing" in captions[2]


def test_concurrency_and_vram_apply_together(settings_page):
    at = settings_page
    at.number_input(key="settings:SOLLOL_MAX_CONCURRENT_REQUESTS").set_value(2)
    at.toggle(key="settings:SOLLOL_VRAM_MONITORING").set_value(False)
    _apply(at)
    snap = get_hydra().snapshot()
    assert snap.max_concurrent == 2 and snap.vram_monitoring is False
    assert {d.name for d in get_hydra().settings.overridden()} == {"SOLLOL_MAX_CONCURRENT_REQUESTS",
                                                                   "SOLLOL_VRAM_MONITORING"}


@pytest.mark.parametrize("value", [0, -3], ids=["zero", "negative"])
def test_invalid_max_concurrent_is_refused_in_place(settings_page, value):
    at = settings_page
    at.radio(key="settings:SOLLOL_DEFAULT_ROUTING_MODE").set_value("fast")  # valid, but must not apply either
    at.number_input(key="settings:SOLLOL_MAX_CONCURRENT_REQUESTS").set_value(value)
    _apply(at)
    error = " ".join(texts(at, "error"))
    assert "SOLLOL_MAX_CONCURRENT_REQUESTS" in error and "Nothing was changed" in error
    snap = get_hydra().snapshot()
    assert snap.max_concurrent == 4 and snap.default_mode is RoutingMode.ASYNC
    assert get_hydra().settings.overridden() == []
    assert at.number_input(key="settings:SOLLOL_MAX_CONCURRENT_REQUESTS").value == value  # what was typed stays


@pytest.mark.parametrize("url", ["http://127.0.0.1:notaport", "ftp://127.0.0.1:11434"], ids=["port", "scheme"])
def test_malformed_node_url_is_refused_in_place(settings_page, url):
    at = settings_page
    at.text_input(key="node:url").input(url)
    at.button(key="node:add").click().run()
    assert not at.exception
    # In the form's words: its field's label, not the SOLLOL_NODES entry's "node url".
    errors = texts(at, "error")
    assert any(t.startswith("**URL**") and url in t and "Nothing was changed" in t for t in errors), errors
    assert not any("node url" in t.lower() or "';'" in t for t in errors), errors
    assert [n.name for n in get_hydra().snapshot().nodes] == ["light", "powerful"]
    assert at.text_input(key="node:url").value == url


def test_test_connection_reports_what_it_found(settings_page, sim_cluster):
    at = settings_page
    at.text_input(key="node:url").input(sim_cluster.urls[0])
    at.button(key="node:test").click().run()
    assert any("Ollama" in t and "models" in t for t in texts(at, "success"))
    assert len(get_hydra().snapshot().nodes) == 2          # testing adds nothing


def test_a_node_that_does_not_answer_is_not_added_unless_asked(settings_page):
    at = settings_page
    at.text_input(key="node:url").input("http://127.0.0.9:11434")  # nothing listens there
    at.text_input(key="node:name").input("again")
    at.number_input(key="node:max_model_b").set_value(70.0)
    at.button(key="node:add").click().run()
    assert any("Not added" in t and "127.0.0.9" in t for t in texts(at, "error")), texts(at, "error")
    assert "again" not in [n.name for n in get_hydra().snapshot().nodes]
    assert at.text_input(key="node:url").value == "http://127.0.0.9:11434"  # kept, to fix or add anyway
    at.button(key="node:add_anyway").click().run()
    assert any("Added node **again**" in t and "did not answer" in t for t in texts(at, "warning"))
    assert "again" in [n.name for n in get_hydra().snapshot().nodes]
    assert any("SOLLOL_NODES" in t for t in texts(at))      # saved: differs from the environment
    assert at.text_input(key="node:url").value == ""        # the form is ready for the next one
    at.button(key="node:remove:again").click().run()
    assert "again" not in [n.name for n in get_hydra().snapshot().nodes]


def test_a_node_that_answers_is_added_with_what_it_found(settings_page, sim_cluster, tmp_path):
    with start_cluster([preset("seed")[0]], hosts=["127.0.0.7"], time_scale=0.05) as extra:
        at = settings_page
        at.text_input(key="node:url").input(extra.urls[0])
        at.text_input(key="node:name").input("extra")
        at.button(key="node:add").click().run()
        success = " ".join(texts(at, "success"))
        assert "Added node **extra**" in success and "It answered: Ollama 0.12.0-sim" in success
        assert "models" in success
        assert "extra" in [n.name for n in get_hydra().snapshot().nodes]
        # Saved: the difference from the environment reads as a node list, not SOLLOL_NODES syntax.
        diff = next(t for t in texts(at) if t.startswith("`SOLLOL_NODES`"))
        assert "added here: **extra**" in diff and "max_model_b=" not in diff and "against the environment's 2 nodes" in diff


def test_duplicate_node_is_refused(settings_page, sim_cluster):
    at = settings_page
    at.text_input(key="node:url").input(sim_cluster.urls[1])
    at.button(key="node:add").click().run()
    assert any("already" in t for t in texts(at, "error"))
    assert len(get_hydra().snapshot().nodes) == 2


def test_reasoning_settings_apply_and_refuse(cluster_env, app):
    at = app.run().switch_page(REASONING).run()
    at.number_input(key="reasoning:HYDRA_MAX_THINKING_TOKENS").set_value(3000)
    at.number_input(key="reasoning:HYDRA_DEEP_THINKING_THRESHOLD").set_value(7.0)
    at.radio(key="reasoning:HYDRA_REASONING_MODE").set_value("standard")
    _apply(at, "reasoning")
    settings = get_hydra().settings
    assert (settings.max_thinking_tokens, settings.deep_thinking_threshold, settings.reasoning_mode) == \
        (3000, 7.0, "standard")

    at.number_input(key="reasoning:HYDRA_DEEP_THINKING_THRESHOLD").set_value(11.0)
    _apply(at, "reasoning")
    assert any("HYDRA_DEEP_THINKING_THRESHOLD" in t for t in texts(at, "error"))
    assert get_hydra().settings.deep_thinking_threshold == 7.0


def test_sample_prompt_is_scored_with_its_breakdown(cluster_env, app):
    at = app.run().switch_page(REASONING).run()
    prompt = "Prove that there are infinitely many primes, step by step"
    at.text_area(key="assess:prompt").input(prompt).run()
    expected = get_hydra().assess(prompt)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Score"] == f"{expected.score:.1f} / 10"
    assert metrics["Level"] == expected.level
    reasons = at.dataframe[0].value
    assert list(reasons["Feature"]) == [r.feature for r in expected.reasons]
    assert any(expected.explanation == t for t in texts(at, "info"))
