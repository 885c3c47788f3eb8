"""A batch's results as CSV or JSON Lines: the original columns, then what each row got.

Streamed a page of rows at a time (``BatchStore.iter_rows``), so a 10,000-row export never
holds more than one page. A result column whose name the input already uses is written as
``hydra_<name>`` so no original value is overwritten.
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from typing import Any, Literal

from .store import BatchStore

RESULT_FIELDS = ("status", "answer", "node", "model", "ttft_s", "duration_s", "tokens", "tokens_per_s", "error")
Format = Literal["csv", "jsonl"]
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}


def result_names(columns: Sequence[str]) -> dict[str, str]:
    """Each result field -> its column name in the export."""
    taken = set(columns)
    return {f: f"hydra_{f}" if f in taken else f for f in RESULT_FIELDS}


def _record(row: dict[str, Any], columns: Sequence[str], names: dict[str, str]) -> dict[str, Any]:
    data = row["data"]
    out: dict[str, Any] = {c: data.get(c, "") for c in columns}
    for f, name in names.items():
        value = row.get(f)
        out[name] = round(value, 4) if isinstance(value, float) else value
    return out


def export(store: BatchStore, batch_id: str, fmt: Format) -> Iterator[str]:
    """The export's text in pieces; KeyError for an unknown batch."""
    info = store.get(batch_id)
    if info is None:
        raise KeyError(batch_id)
    names = result_names(info.columns)
    if fmt == "jsonl":
        for row in store.iter_rows(batch_id):
            yield json.dumps(_record(row, info.columns, names), ensure_ascii=False) + "\n"
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[*info.columns, *names.values()], extrasaction="ignore")
    writer.writeheader()
    for number, row in enumerate(store.iter_rows(batch_id), start=1):
        writer.writerow({k: "" if v is None else v for k, v in _record(row, info.columns, names).items()})
        if number % 500 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def export_bytes(store: BatchStore, batch_id: str, fmt: Format) -> bytes:
    """The whole export at once (the page's download button needs bytes)."""
    return "".join(export(store, batch_id, fmt)).encode("utf-8")
