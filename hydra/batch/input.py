"""A batch's input: CSV with a header, JSON Lines of objects, or pasted lines (one prompt value a line).

Everything is checked before anything is stored, so a bad file creates nothing:
UTF-8 only (a BOM is dropped), at most ``MAX_INPUT_BYTES`` and ``MAX_ROWS``, a header of
distinct, non-empty names, the same number of fields on every CSV line, an object on
every JSONL line, and no empty row (the error names the lines). Values are text: JSON
numbers and booleans as JSON writes them, nested values as compact JSON.
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .errors import BatchInputError

MAX_INPUT_BYTES = 20 * 2**20
MAX_ROWS = 50_000
MAX_FIELD_CHARS = 100_000
LINES_COLUMN = "text"         # the one column of pasted lines
SHOWN_LINES = 5               # line numbers an error names

Kind = Literal["csv", "jsonl", "lines"]
KINDS: tuple[Kind, ...] = ("csv", "jsonl", "lines")


@dataclass(frozen=True)
class BatchInput:
    kind: Kind
    columns: tuple[str, ...]
    rows: list[dict[str, str]]


def guess_kind(filename: str | None, text: str) -> Kind:
    """By the file's extension; else JSON Lines when the first character is ``{``, else CSV."""
    name = (filename or "").lower()
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if name.endswith((".csv", ".tsv")):
        return "csv"
    return "jsonl" if text.lstrip().startswith("{") else "csv"


def decode(data: bytes) -> str:
    """UTF-8 text, or BatchInputError saying where it is not and what to do."""
    if len(data) > MAX_INPUT_BYTES:
        raise BatchInputError(f"the input has {len(data) / 2**20:.1f} MB; at most {MAX_INPUT_BYTES // 2**20} MB: "
                              "split it into several batches")
    if b"\0" in data[:65536]:
        raise BatchInputError("the input holds NUL bytes: it is a binary file, not CSV or JSON Lines text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise BatchInputError(f"the input is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); "
                              "save it as UTF-8 (in a spreadsheet: \"CSV UTF-8\")") from None
    return text.removeprefix("\ufeff")


def parse(data: bytes | str, filename: str | None = None, kind: Kind | None = None) -> BatchInput:
    """The rows of an upload (bytes) or of pasted text (str); BatchInputError on the first problem."""
    if isinstance(data, bytes):
        text = decode(data)
    else:
        if len(data.encode("utf-8", "surrogatepass")) > MAX_INPUT_BYTES:
            raise BatchInputError(f"the input is over {MAX_INPUT_BYTES // 2**20} MB: split it into several batches")
        text = data.removeprefix("\ufeff")
    if not text.strip():
        raise BatchInputError("the input is empty: it has no rows")
    kind = kind or guess_kind(filename, text)
    if kind not in KINDS:
        raise BatchInputError(f"unknown input kind {kind!r}: one of {', '.join(KINDS)}")
    columns, rows = {"csv": _csv, "jsonl": _jsonl, "lines": _lines}[kind](text)
    if not rows:
        raise BatchInputError("the input has a header but no rows")
    if len(rows) > MAX_ROWS:
        raise BatchInputError(f"the input has {len(rows):,} rows; at most {MAX_ROWS:,} per batch")
    return BatchInput(kind, tuple(columns), rows)


def _numbered(lines: Sequence[int]) -> str:
    shown = ", ".join(str(n) for n in lines[:SHOWN_LINES])
    return shown + (f" and {len(lines) - SHOWN_LINES} more" if len(lines) > SHOWN_LINES else "")


def _refuse_empty(empty: list[int]) -> None:
    if empty:
        raise BatchInputError(f"empty row{'s' if len(empty) > 1 else ''} on line{'s' if len(empty) > 1 else ''} "
                              f"{_numbered(empty)}: remove {'them' if len(empty) > 1 else 'it'} or fill in a value")


def _body_lines(text: str) -> list[str]:
    """The lines, without the blank ones at the very end (a final newline is not an empty row)."""
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def _check_value(value: str, line: int) -> str:
    if len(value) > MAX_FIELD_CHARS:
        raise BatchInputError(f"line {line} has a value of {len(value):,} characters; at most {MAX_FIELD_CHARS:,}")
    return value


def _csv(text: str) -> tuple[list[str], list[dict[str, str]]]:
    dialect: type[csv.Dialect] = csv.excel_tab if "\t" in text.split("\n", 1)[0] and "," not in text.split("\n", 1)[0] \
        else csv.excel
    try:
        records = list(csv.reader(io.StringIO(text.rstrip("\r\n ")), dialect))
    except csv.Error as exc:
        raise BatchInputError(f"the CSV cannot be read: {exc}") from None
    header = [h.strip() for h in records[0]]
    _check_header(header)
    rows: list[dict[str, str]] = []
    empty: list[int] = []
    for number, record in enumerate(records[1:], start=2):
        if not any(cell.strip() for cell in record):
            empty.append(number)
            continue
        if len(record) != len(header):
            raise BatchInputError(f"line {number} has {len(record)} field{'s' if len(record) != 1 else ''}; the "
                                  f"header has {len(header)} ({', '.join(header)}): quote values that hold commas")
        rows.append({name: _check_value(cell, number) for name, cell in zip(header, record)})
    _refuse_empty(empty)
    return header, rows


def _check_header(header: list[str]) -> None:
    if not header or not any(header):
        raise BatchInputError("the CSV's first line must be a header naming its columns")
    blank = [i + 1 for i, h in enumerate(header) if not h]
    if blank:
        raise BatchInputError(f"the header's column {_numbered(blank)} has no name: name every column")
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise BatchInputError(f"the header names the column {name!r} twice: column names must differ")
        seen.add(name)


def _cell(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _jsonl(text: str) -> tuple[list[str], list[dict[str, str]]]:
    columns: dict[str, None] = {}
    rows: list[dict[str, str]] = []
    empty: list[int] = []
    for number, line in enumerate(_body_lines(text), start=1):
        if not line.strip():
            empty.append(number)
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BatchInputError(f"line {number} is not JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(value, dict):
            raise BatchInputError(f"line {number} is a JSON {type(value).__name__}, not an object: JSON Lines "
                                  'input needs one object a line, such as {"question": "..."}')
        row = {str(k): _check_value(_cell(v), number) for k, v in value.items()}
        if not any(v.strip() for v in row.values()):
            empty.append(number)
            continue
        columns.update(dict.fromkeys(row))
        rows.append(row)
    _refuse_empty(empty)
    return list(columns), rows


def _lines(text: str) -> tuple[list[str], list[dict[str, str]]]:
    rows: list[dict[str, str]] = []
    empty: list[int] = []
    for number, line in enumerate(_body_lines(text), start=1):
        if not line.strip():
            empty.append(number)
        else:
            rows.append({LINES_COLUMN: _check_value(line, number)})
    _refuse_empty(empty)
    return [LINES_COLUMN], rows
