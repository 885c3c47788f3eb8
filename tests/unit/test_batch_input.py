"""Batch input and templates: what parses, and the sentence each bad input gets."""
from __future__ import annotations

import pytest

from hydra.batch import BatchInputError, Template, parse
from hydra.batch.input import MAX_INPUT_BYTES
from hydra.batch.manager import check_options, outcome_from_history, render_all
from hydra.batch.store import BatchOptions


@pytest.mark.parametrize("data, name, kind, columns, rows", [
    ("a,b\n1,2\n3,4\n", "x.csv", "csv", ("a", "b"), [{"a": "1", "b": "2"}, {"a": "3", "b": "4"}]),
    ('a,b\n"x, y","line\nbreak"\n', "x.csv", "csv", ("a", "b"), [{"a": "x, y", "b": "line\nbreak"}]),
    ("\ufeffq\nhello\n", None, "csv", ("q",), [{"q": "hello"}]),                      # BOM dropped
    ("a\tb\n1\t2\n", "x.tsv", "csv", ("a", "b"), [{"a": "1", "b": "2"}]),
    ('{"q": "hi", "n": 3}\n{"q": "yo", "extra": [1, 2]}\n', "x.jsonl", "jsonl", ("q", "n", "extra"),
     [{"q": "hi", "n": "3"}, {"q": "yo", "extra": "[1,2]"}]),
    ('{"q": "sniffed"}\n', None, "jsonl", ("q",), [{"q": "sniffed"}]),
    ("first line\nsecond line\n\n", "paste", "lines", ("text",), [{"text": "first line"}, {"text": "second line"}]),
], ids=["csv", "csv-quoted", "bom", "tsv", "jsonl", "jsonl-sniffed", "lines"])
def test_inputs_that_parse(data, name, kind, columns, rows):
    parsed = parse(data, name, "lines" if name == "paste" else None)
    assert (parsed.kind, parsed.columns, parsed.rows) == (kind, columns, rows)


@pytest.mark.parametrize("data, name, message", [
    ("caf\xe9,b\n1,2\n".encode("latin-1"), "x.csv", r"not UTF-8 text \(byte 0xe9 on line 1\).*save it as UTF-8"),
    (b"\x89PNG\r\n\x1a\n\0\0\0", "x.csv", "binary file"),
    ("", "x.csv", "empty"),
    ("   \n\n", "x.csv", "empty"),
    ("a,b\n", "x.csv", "header but no rows"),
    ("a,b\n1,2\n,\n3,4\n\n5,6\n", "x.csv", r"empty rows on lines 3, 5"),
    ("a,b\n1,2,3\n", "x.csv", "line 2 has 3 fields; the header has 2"),
    ("a,a\n1,2\n", "x.csv", "names the column 'a' twice"),
    ("a,,c\n1,2,3\n", "x.csv", "column 2 has no name"),
    ('{"q": 1}\n[1, 2]\n', "x.jsonl", "line 2 is a JSON list, not an object"),
    ('{"q": 1}\n{"q": \n', "x.jsonl", "line 2 is not JSON"),
    ('{"q": "a"}\n{"q": ""}\n', "x.jsonl", "empty row on line 2"),
    ("one\n\ntwo\n", "paste", "empty row on line 2"),
], ids=["latin-1", "binary", "empty", "blank", "no-rows", "empty-rows", "ragged", "dup-header", "unnamed-column",
        "jsonl-not-object", "jsonl-bad-json", "jsonl-empty-row", "lines-empty-row"])
def test_bad_inputs_are_refused_with_a_clear_message(data, name, message):
    with pytest.raises(BatchInputError, match=message):
        parse(data, name, "lines" if name == "paste" else None)


def test_a_100_mb_upload_is_refused_before_it_is_decoded():
    data = b"q\n" + b"x" * (100 * 2**20)
    assert len(data) > MAX_INPUT_BYTES
    with pytest.raises(BatchInputError, match=r"100\.0 MB; at most 20 MB"):
        parse(data, "big.csv")


@pytest.mark.parametrize("text, fields, row, rendered", [
    ("Label: {review}", ("review",), {"review": "great"}, "Label: great"),
    ("{a} and {a} and {b c}", ("a", "b c"), {"a": "1", "b c": "2"}, "1 and 1 and 2"),
    ('JSON {{"x": {v}}}', ("v",), {"v": "3"}, 'JSON {"x": 3}'),
], ids=["one", "repeated-and-spaces", "escaped-braces"])
def test_templates_render(text, fields, row, rendered):
    template = Template.parse(text)
    assert template.fields == fields
    assert template.render(row) == rendered


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("no fields at all", "names no column"),
    ("{a", "braces do not pair up"),
    ("{}", "empty field"),
    ("{a:>5}", r"has a format: write just \{a\}"),
    ("{a!r}", "has a format"),
], ids=["empty", "no-field", "unpaired", "empty-field", "spec", "conversion"])
def test_bad_templates(text, message):
    with pytest.raises(BatchInputError, match=message):
        Template.parse(text)


def test_missing_template_fields_name_the_columns_there_are():
    parsed = parse("review,stars\ngood,5\n", "x.csv")
    with pytest.raises(BatchInputError, match=r"fields \{text\}, \{lang\} are not a column.*columns are: review, stars"):
        render_all(parsed, Template.parse("{text} in {lang} ({review})"))


def test_every_rendered_prompt_is_checked_before_anything_is_stored():
    parsed = parse("q\nfine\n\ud800 lone surrogate\n", "x.csv")
    with pytest.raises(BatchInputError, match="row 2"):
        render_all(parsed, Template.parse("{q}"))


@pytest.mark.parametrize("options, message", [
    (BatchOptions(priority=0), "priority"),
    (BatchOptions(mode="turbo"), "mode"),
    (BatchOptions(max_tokens=-1), "max_tokens"),
    (BatchOptions(task_type="poetry"), "task_type"),
    (BatchOptions(format="yaml"), "format"),
], ids=["priority", "mode", "max-tokens", "task-type", "schema"])
def test_bad_options_are_refused(options, message):
    with pytest.raises(BatchInputError, match=message):
        check_options(options)


@pytest.mark.parametrize("task, status", [
    (None, None),
    ({"status": "running"}, None),
    ({"status": "interrupted"}, None),
    ({"status": "cancelled"}, None),
    ({"status": "done", "text": "42", "node": "a", "model": "m", "eval_count": 3}, "done"),
    ({"status": "failed", "error": "rejected"}, "failed"),
], ids=["no-task", "running", "interrupted", "cancelled", "done", "failed"])
def test_a_dead_processs_row_is_settled_from_its_task(task, status):
    outcome = outcome_from_history(task)
    assert (outcome.status if outcome else None) == status
    if status == "done":
        assert (outcome.answer, outcome.node, outcome.tokens) == ("42", "a", 3)
