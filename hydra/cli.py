"""``python -m hydra``: serve the gateway, list the nodes, submit a prompt from the terminal.

    python -m hydra serve [--host H] [--port P]   router + gateway, no UI; Ctrl+C stops
    python -m hydra nodes                         discovered nodes, health, models
    python -m hydra submit "prompt" [--mode --priority --model --task-type --max-tokens --think/--no-think]
    python -m hydra batch input.jsonl --template "..." -o out.jsonl   (hydra/batch/cli.py)

Settings come from the environment (SOLLOL_NODES, HYDRA_DB, ...) and the saved
overrides, as for the app. ``submit`` streams the answer to stdout and writes
what routed it (node, model, TTFT, tokens/s) to stderr, so stdout pipes cleanly.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

from hydra.sollol import HydraError, NodeSnapshot, TaskHandle, TaskResult, TaskStatus
from hydra.sollol.addresses import parse_bind_host
from hydra.sollol.redact import redact_url

if TYPE_CHECKING:  # the service is imported when a command needs it: --help starts nothing
    from hydra.service import Hydra

NODES_WAIT_S = 3.0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except HydraError as exc:
        print(f"hydra: {exc}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hydra", description="Hydra: LLM tasks over a cluster of "
                                     "Ollama nodes, routed by SOLLOL. Settings come from the environment.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log the router's decisions")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the router and the Ollama/OpenAI gateway (no UI)")
    serve.add_argument("--host", help="address to listen on (default: HYDRA_GATEWAY_HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: HYDRA_GATEWAY_PORT, 8080; 0: a free port)")
    serve.set_defaults(run=cmd_serve)

    nodes = sub.add_parser("nodes", help="list discovered nodes, their health and models")
    nodes.add_argument("--wait", type=float, default=NODES_WAIT_S, help="seconds to wait for the first polls")
    nodes.set_defaults(run=cmd_nodes)

    submit = sub.add_parser("submit", help="submit one prompt and stream the answer")
    submit.add_argument("prompt")
    submit.add_argument("--mode", choices=["fast", "reliable", "async"], help="routing mode (default: the setting)")
    submit.add_argument("--priority", type=int, default=5, help="1..10, 10 most urgent (default 5)")
    submit.add_argument("--model", help="a model name (default: tier selection)")
    submit.add_argument("--task-type", choices=["code", "reasoning", "math", "general"],
                        help="task type (default: classified from the prompt)")
    submit.add_argument("--max-tokens", type=int, help="longest answer in tokens (default: HYDRA_MAX_TOKENS, 1024)")
    submit.add_argument("--think", action=argparse.BooleanOptionalAction, default=None,
                        help="thinking on or off (default: the reasoning engine decides)")
    submit.add_argument("--timeout", type=float, default=600.0, help="give up after this many seconds")
    submit.set_defaults(run=cmd_submit)

    from hydra.batch import cli as batch_cli
    batch_cli.add_parser(sub)
    return parser


def _quiet(verbose: bool) -> None:
    from hydra.service import setup_logging
    setup_logging()
    logging.getLogger("hydra").setLevel(logging.DEBUG if verbose else logging.WARNING)


# --- serve ---

def cmd_serve(args: argparse.Namespace) -> int:
    from hydra.config import load_settings
    from hydra.gateway import Gateway
    from hydra.gc_tuning import tune_for_serving
    from hydra.service import Hydra, setup_logging

    setup_logging()
    tune_for_serving()
    if args.verbose:
        logging.getLogger("hydra").setLevel(logging.DEBUG)
    configured = load_settings()
    host = parse_bind_host("--host", args.host) if args.host else configured.gateway_host
    port = configured.gateway_port if args.port is None else args.port  # 0 here: any free port
    hydra = Hydra.from_env(dict(os.environ, HYDRA_GATEWAY_PORT="0"))  # the gateway is started below, on our terms
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    hydra.start()
    try:
        gateway = Gateway(hydra, host=host, port=port, api_key=hydra.settings.api_key or None,
                          allowed_hosts=hydra.settings.allowed_hosts,
                          allowed_origins=hydra.settings.allowed_origins).start()
    except OSError as exc:
        print(f"hydra: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        hydra.close()
        return 1
    hydra.gateway = gateway  # so hydra.close() stops it
    print(f"Hydra gateway at {gateway.url} (Ollama API, OpenAI API at {gateway.url}/v1, metrics at "
          f"{gateway.url}/metrics). Ctrl+C stops.", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    print("stopping ...", file=sys.stderr, flush=True)
    hydra.close()
    return 0


# --- nodes ---

def cmd_nodes(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Nodes as the router sees them, from a router of its own (history is only read, never written)."""
    from hydra import tiers
    from hydra.config import load_settings
    from hydra.history import History
    from hydra.sollol import Router

    out = out or sys.stdout
    _quiet(args.verbose)
    first = load_settings()
    saved: dict[str, str] = {}
    if first.db_path.exists():
        history = History(first.db_path)
        try:
            saved = history.load_settings()
        finally:
            history.close()
    settings = load_settings(None, saved)
    # The seed's tiers and classifier, as the service's router has them; this one only polls the nodes.
    router = Router(config=settings.sollol_config(), tiers=tiers.SEED_TIERS, classify=tiers.classify)
    router.start(wait_for_nodes_s=args.wait)
    try:
        nodes = router.snapshot().nodes
    finally:
        router.close()
    if not nodes:
        print("no nodes: set SOLLOL_NODES (name=http://host:port,...) or OLLAMA_HOST, or start Ollama on "
              "localhost:11434", file=out)
        return 1
    print(format_nodes(nodes), file=out)
    return 0 if any(n.healthy for n in nodes) else 1


def format_nodes(nodes: Sequence[NodeSnapshot]) -> str:
    head = ("NODE", "URL", "HEALTH", "CIRCUIT", "KIND", "VRAM USED/TOTAL", "MODELS", "LOADED")
    rows = [head]
    for n in nodes:
        vram = f"{n.vram_used_mb or 0}/{n.vram_total_mb} MB" if n.vram_total_mb else "-"
        rows.append((n.name, redact_url(n.url), "healthy" if n.healthy else f"down: {n.last_error or '?'}"[:40], n.circuit,
                     "GPU" if n.gpu else "CPU", vram, str(len(n.installed)),
                     ", ".join(m.name for m in n.loaded) or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    for n in nodes:
        if n.installed:
            lines.append(f"{n.name} models: " + ", ".join(m.name for m in n.installed))
    return "\n".join(lines)


# --- submit ---

def cmd_submit(args: argparse.Namespace) -> int:
    from hydra.service import Hydra

    _quiet(args.verbose)
    hydra = Hydra.from_env(dict(os.environ, HYDRA_GATEWAY_PORT="0")).start()
    try:
        return submit_and_stream(hydra, args, sys.stdout, sys.stderr)
    finally:
        hydra.close()


def submit_and_stream(hydra: Hydra, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``submit``'s work on a started service: one task (source "cli"), its answer streamed to ``out``."""
    handle = hydra.submit(args.prompt, mode=args.mode, priority=args.priority, model=args.model,
                          task_type=args.task_type, max_tokens=args.max_tokens or hydra.settings.max_tokens,
                          think=args.think, source="cli")
    try:
        stream_to(handle, out, err, args.timeout)
    except KeyboardInterrupt:
        handle.cancel()
    result = handle.result(timeout=10)
    print(file=out, flush=True)
    print(summary(result), file=err, flush=True)
    return 0 if result.status is TaskStatus.DONE else 1


def stream_to(handle: TaskHandle, out: TextIO, err: TextIO, timeout: float) -> None:
    thinking = False
    for chunk in handle.stream(timeout=timeout):
        if chunk.thinking:
            if not thinking:
                err.write("[thinking] ")
                thinking = True
            err.write(chunk.thinking)
            err.flush()
        if chunk.text:
            if thinking:
                err.write("\n")
                thinking = False
            out.write(chunk.text)
            out.flush()


def summary(result: TaskResult) -> str:
    if result.status is not TaskStatus.DONE:
        return f"{result.status.value}: {result.error or ''}".rstrip(": ")
    parts = [f"node={'+'.join(result.nodes) or result.node}", f"model={result.model}"]
    if result.ttft_s is not None:
        parts.append(f"ttft={result.ttft_s * 1000:.0f}ms")
    if result.tokens_per_s:
        parts.append(f"tokens/s={result.tokens_per_s:.1f}")
    if result.eval_count is not None:
        parts.append(f"tokens={result.eval_count}")
    if result.duration_s is not None:
        parts.append(f"duration={result.duration_s:.2f}s")
    return "done: " + " ".join(parts) + (f" ({result.notice})" if result.notice else "")
