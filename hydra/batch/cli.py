"""``python -m hydra batch input.jsonl --template "..." -o out.jsonl``: a batch from the terminal.

The rows run through the same service as the app's (history, routing, priority 2 in
async mode by default); a progress bar on stderr (redrawn in place on a terminal, a line
every few seconds otherwise); the results written to ``-o`` (CSV when it ends in .csv,
else JSON Lines) once every row has ended. Ctrl+C pauses the batch (it is in HYDRA_DB):
``--resume ID`` runs it again from where it stopped.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from .errors import BatchInputError
from .input import MAX_INPUT_BYTES
from .rows import Progress

BAR_WIDTH = 30
PLAIN_EVERY_S = 5.0   # not a terminal (a log file, CI): one progress line this often
REDRAW_S = 0.2


def add_parser(sub: Any) -> None:
    batch = sub.add_parser("batch", help="run a CSV / JSON Lines file through a prompt template, in the background")
    batch.add_argument("input", nargs="?", help="the rows: .csv (with a header), .jsonl, or - for stdin")
    batch.add_argument("--template", help='the prompt, with {column} fields: "Summarise: {text}"')
    batch.add_argument("-o", "--output", required=True, help="where the results go (.csv, else JSON Lines)")
    batch.add_argument("--kind", choices=["csv", "jsonl", "lines"], help="input format (default: from the name)")
    batch.add_argument("--model", help="a model name (default: tier selection)")
    batch.add_argument("--task-type", choices=["code", "reasoning", "math", "general"], help="task type of every row")
    batch.add_argument("--mode", choices=["fast", "reliable", "async"], default="async", help="routing mode (async)")
    batch.add_argument("--priority", type=int, default=2, help="1..10 (default 2; interactive work goes first)")
    batch.add_argument("--max-tokens", type=int, help="answer cap in tokens")
    batch.add_argument("--schema", help="a JSON schema file: every answer is JSON that follows it")
    batch.add_argument("--resume", metavar="BATCH_ID", help="run a paused or interrupted batch again")
    batch.set_defaults(run=cmd_batch)


def _read_input(args: argparse.Namespace) -> tuple[bytes, str | None]:
    if args.input in (None, "-"):
        return sys.stdin.buffer.read(), None
    path = Path(args.input)
    if not path.is_file():
        raise BatchInputError(f"no input file {args.input}")
    if path.stat().st_size > MAX_INPUT_BYTES:  # refused before it is read into memory
        raise BatchInputError(f"{args.input} has {path.stat().st_size / 2**20:.1f} MB; at most "
                              f"{MAX_INPUT_BYTES // 2**20} MB: split it into several batches")
    return path.read_bytes(), path.name


def _schema(path: str | None) -> dict[str, Any] | None:
    if not path:
        return None
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BatchInputError(f"--schema {path}: {exc}") from None
    if not isinstance(value, dict):
        raise BatchInputError(f"--schema {path}: a JSON schema is an object")
    return value


def cmd_batch(args: argparse.Namespace) -> int:
    from hydra.service import Hydra, setup_logging

    from . import input as batch_input
    from .export import export
    from .rows import BatchOptions

    setup_logging()
    logging.getLogger("hydra").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    if not args.resume:  # checked before the service starts: a bad file costs nothing
        if not args.template:
            raise BatchInputError("--template is required (or --resume ID)")
        data, name = _read_input(args)
        parsed = batch_input.parse(data, name, args.kind)
        options = BatchOptions(model=args.model, task_type=args.task_type, mode=args.mode, priority=args.priority,
                               max_tokens=args.max_tokens, format=_schema(args.schema))
    hydra = Hydra.from_env(dict(os.environ, HYDRA_GATEWAY_PORT="0")).start()
    try:
        if args.resume:
            batch_id = args.resume
            if hydra.batches.get(batch_id) is None:
                raise BatchInputError(f"no batch {batch_id} in {hydra.history.path}")
            hydra.batches.resume(batch_id)
            hydra.batches.start(batch_id)
        else:
            batch_id = hydra.batches.create(parsed, args.template, options, name=name or "stdin", source="cli")
        print(f"batch {batch_id}", file=sys.stderr, flush=True)
        try:
            progress = follow(hydra.batches, batch_id, sys.stderr)
        except KeyboardInterrupt:
            hydra.batches.pause(batch_id)
            print(f"\npaused; run again with: python -m hydra batch --resume {batch_id} -o {args.output}",
                  file=sys.stderr)
            return 130
        with open(args.output, "w", encoding="utf-8", newline="") as out:
            out.writelines(export(hydra.batches.store, batch_id, "csv" if args.output.endswith(".csv") else "jsonl"))
        print(f"{progress.done} done, {progress.failed} failed, {progress.cancelled} cancelled -> {args.output}",
              file=sys.stderr)
        return 0 if progress.failed == 0 and progress.cancelled == 0 else 1
    finally:
        hydra.close()


def follow(batches: Any, batch_id: str, err: TextIO) -> Progress:
    """Draw the bar until the batch leaves running (done, paused, cancelled)."""
    tty = err.isatty()
    last_plain = float("-inf")
    while True:
        progress = batches.progress(batch_id)
        ended = progress.batch.status != "running" or not batches.running_here(batch_id)
        now = time.monotonic()
        if tty:
            err.write("\r" + bar(progress))
            err.flush()
        elif ended or now - last_plain >= PLAIN_EVERY_S:
            err.write(bar(progress) + "\n")
            err.flush()
            last_plain = now
        if ended:
            if tty:
                err.write("\n")
            return progress
        batches.wait(batch_id, REDRAW_S)


def bar(p: Progress) -> str:
    total = max(1, p.batch.total)
    filled = round(BAR_WIDTH * p.finished / total)
    parts = [f"[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {p.finished}/{p.batch.total}",
             f"done {p.done}", f"failed {p.failed}", f"left {p.remaining}"]
    if p.eta_s is not None:
        parts.append(f"ETA {duration(p.eta_s)}")
    if p.tokens_per_s:
        parts.append(f"{p.tokens_per_s:.0f} tok/s")
    return "  ".join(parts)


def duration(value: float) -> str:
    seconds = round(value)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
