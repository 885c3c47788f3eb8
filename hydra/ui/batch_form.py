"""The Batch page's form: the input (upload or paste), the template, the options, a preview; Start.

Everything is checked as the user types (the same checks ``BatchManager.create`` makes), so the
Start button is enabled only for a batch that will be created whole; the error says what to fix.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st

from hydra.batch import BatchInput, BatchInputError, BatchOptions, Template, parse
from hydra.batch.input import MAX_INPUT_BYTES, Kind
from hydra.batch.manager import check_options
from hydra.service import Hydra
from hydra.sollol.validation import TASK_TYPES
from hydra.ui import formatting as fmt

PREVIEW_ROWS = 5
CURRENT = "batch-current"  # session key: the batch the page follows
PASTE_KINDS = {"csv": "CSV with a header", "jsonl": "JSON Lines", "lines": "One value a line"}
PASTE_ORDER: tuple[Kind, ...] = ("lines", "csv", "jsonl")


@dataclass(frozen=True)
class Draft:
    parsed: BatchInput
    template: Template
    options: BatchOptions
    name: str


def _read_input() -> tuple[BatchInput | None, str]:
    source = st.radio("Rows", ["Upload a file", "Paste"], horizontal=True, key="batch-source")
    if source == "Upload a file":
        upload = st.file_uploader(f"CSV (with a header) or JSON Lines, up to {MAX_INPUT_BYTES // 2**20} MB",
                                  type=["csv", "tsv", "jsonl", "ndjson", "json", "txt"], key="batch-upload")
        if upload is None:
            return None, ""
        return parse(upload.getvalue(), upload.name), upload.name
    kind: Kind = st.selectbox("Pasted as", PASTE_ORDER, format_func=PASTE_KINDS.__getitem__, key="batch-paste-kind")
    text = st.text_area("Paste the rows", height=160, key="batch-paste",
                        placeholder="one question a line" if kind == "lines" else "")
    if not text.strip():
        return None, ""
    return parse(text, None, kind), "pasted rows"


def _options(hydra: Hydra) -> BatchOptions:
    c1, c2, c3 = st.columns(3)
    with c1:
        model = st.selectbox("Model", ["auto (tier selection)", *hydra.models()], key="batch-model")
        task_type = st.selectbox("Task type", ["classify each row", *TASK_TYPES], key="batch-task-type")
    with c2:
        mode = st.radio("Mode", ["async", "fast", "reliable"], horizontal=True, key="batch-mode",
                        help="async: background work over every node, efficiency above speed")
        priority = st.slider("Priority", 1, 10, 2, key="batch-priority",
                             help="Batch rows always run behind interactive tasks, whatever their priority or age")
    with c3:
        cap = st.number_input("Answer cap (tokens, 0: none)", 0, 32768, 256, step=64, key="batch-cap")
        schema_text = st.text_area("JSON schema (optional)", height=68, key="batch-schema",
                                   help="Every answer is JSON that follows this schema (Ollama's format)")
    schema: Any = None
    if schema_text.strip():
        try:
            schema = json.loads(schema_text)
        except ValueError as exc:
            raise BatchInputError(f"the JSON schema is not JSON: {exc}") from None
        if not isinstance(schema, dict):
            raise BatchInputError("the JSON schema must be an object")
    options = BatchOptions(model=None if model.startswith("auto") else model,
                           task_type=None if task_type.startswith("classify") else task_type, mode=mode,
                           priority=int(priority), max_tokens=int(cap) or None, format=schema)
    check_options(options)
    return options


def draft(hydra: Hydra) -> Draft | None:
    """The form; the batch it describes once every part is valid (else None, with the reason shown)."""
    try:
        parsed, name = _read_input()
    except BatchInputError as exc:
        st.error(fmt.md_escape(str(exc)), icon=":material/error:")
        return None
    default = "{" + parsed.columns[0] + "}" if parsed and parsed.columns else ""
    if parsed is not None and not st.session_state.get("batch-template"):
        st.session_state["batch-template"] = default
    text = st.text_area("Prompt template: {column} is each row's value", key="batch-template", height=90,
                        placeholder="Summarise in one sentence: {text}")
    if parsed is not None:
        st.caption(f"{len(parsed.rows):,} rows · columns: " + ", ".join(f"`{{{fmt.md_escape(c)}}}`"
                                                                         for c in parsed.columns))
    try:
        options = _options(hydra)
        if parsed is None:
            return None
        template = Template.parse(text)
        template.check(parsed.columns)
    except BatchInputError as exc:
        st.error(fmt.md_escape(str(exc)), icon=":material/error:")
        return None
    st.markdown("**Preview**")
    st.dataframe(pd.DataFrame({"row": range(1, min(PREVIEW_ROWS, len(parsed.rows)) + 1),
                               "prompt": [template.render(r) for r in parsed.rows[:PREVIEW_ROWS]]}),
                 hide_index=True, width="stretch", key="batch-preview")
    return Draft(parsed, template, options, name)


def start_button(hydra: Hydra, ready: Draft | None) -> None:
    if st.button("Start batch", type="primary", disabled=ready is None, key="batch-start",
                 icon=":material/play_arrow:") and ready is not None:
        try:
            batch_id = hydra.batches.create(ready.parsed, ready.template, ready.options, name=ready.name)
        except BatchInputError as exc:
            st.error(fmt.md_escape(str(exc)), icon=":material/error:")
            return
        st.session_state[CURRENT] = batch_id
        st.rerun()
