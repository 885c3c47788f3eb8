"""Conversations: any finished card can be followed up as a chat thread that sends its history."""
from __future__ import annotations

from apphelpers import keyed, markdown_in, wait_healthy, wait_until

from hydra.sollol.types import TaskStatus
from hydra.ui.formatting import md_escape
from hydra.ui.shared import get_hydra


def _captions(block) -> list[str]:
    out: list[str] = []

    def walk(node) -> None:
        if getattr(node, "type", None) == "caption":
            out.append(node.value)
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(block)
    return [c for c in out if "badge" in c]  # each turn's status and where it ran


def _send(at, text: str) -> None:
    at.text_area(key="conversation:text").input(text)
    at.button(key="conversation:send").click().run()
    assert not at.exception, at.exception


def test_a_card_followed_up_sends_the_whole_conversation(cluster_env, app):
    app.run()
    wait_healthy()
    app.text_area(key="prompt").input("What is a binary search?")
    app.text_area(key="system").input("Answer briefly.")
    app.number_input(key="temperature").set_value(0.2)
    app.number_input(key="max_tokens").set_value(30)
    app.button(key="run").click().run()
    first = get_hydra().tasks()[0]
    answer1 = first.result(timeout=30)
    assert answer1.status is TaskStatus.DONE
    wait_until(app, lambda at: any(b.key == f"follow-{first.id}" for b in at.button))
    next(b for b in app.button if b.key == f"follow-{first.id}").click().run()
    assert "conversation" in keyed(app, "")

    _send(app, "And its time complexity?")
    second = get_hydra().tasks()[0]
    assert second.id != first.id
    assert second.task.messages == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "What is a binary search?"},
        {"role": "assistant", "content": answer1.text},
        {"role": "user", "content": "And its time complexity?"},
    ]
    # The thread keeps the first turn's settings.
    assert (second.task.options, second.task.max_tokens) == ({"temperature": 0.2}, 30)
    answer2 = second.result(timeout=30)
    assert answer2.status is TaskStatus.DONE
    assert app.text_area(key="conversation:text").value == ""      # accepted: the box is ready for the next

    _send(app, "Thanks. Show it in Python.")
    third = get_hydra().tasks()[0]
    assert third.task.messages[:4] == second.task.messages         # the same prefix, turn after turn
    assert third.task.messages[4:] == [{"role": "assistant", "content": answer2.text},
                                       {"role": "user", "content": "Thanks. Show it in Python."}]
    result3 = third.result(timeout=30)

    # Every turn in the panel, each with the model and node that answered it.
    def all_three_done(at) -> bool:
        return sum("done]" in c for c in _captions(keyed(at, "")["conversation"])) == 3
    wait_until(app, all_three_done)
    panel = keyed(app, "")["conversation"]
    captions = _captions(panel)
    for turn, result in zip(captions, (answer1, answer2, result3), strict=True):
        assert result.node in turn and md_escape(result.model) in turn, (turn, result.node, result.model)
    assert answer2.model == answer1.model   # a follow-up keeps the model that answered
    assert any("Thanks\\. Show it in Python\\." in m or "Thanks. Show it in Python." in m for m in markdown_in(panel))
    # The third turn's card says it belongs to a conversation.
    card = "\n".join(markdown_in(keyed(app, "task-")[third.id]))
    assert "turn 3" in card and "Thanks\\. Show it in Python\\." in card   # titled by its own question


def test_a_follow_up_of_an_earlier_turn_branches_from_there(cluster_env, app):
    app.run()
    wait_healthy()
    hydra = get_hydra()
    first = hydra.submit("Name a prime number.", max_tokens=10)
    text1 = first.result(timeout=30).text
    wait_until(app, lambda at: any(b.key == f"follow-{first.id}" for b in at.button))
    next(b for b in app.button if b.key == f"follow-{first.id}").click().run()
    _send(app, "Another one?")
    second = hydra.tasks()[0]
    second.result(timeout=30)
    wait_until(app, lambda at: any(b.key == f"follow-{first.id}" for b in at.button))
    next(b for b in app.button if b.key == f"follow-{first.id}").click().run()   # back to turn 1
    _send(app, "Is it odd?")
    branch = hydra.tasks()[0]
    assert branch.task.messages == [{"role": "user", "content": "Name a prime number."},
                                    {"role": "assistant", "content": text1},
                                    {"role": "user", "content": "Is it odd?"}]
