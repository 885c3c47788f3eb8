"""Start the Hydra app (what `make run` and `make demo` call).

    python -m hydra.launch            the app on http://localhost:8501; with no Ollama configured or
                                      answering, Hydra starts its embedded node (SmolLM2-135M, llama.cpp)
    python -m hydra.launch --demo     the same plus two simulated nodes (the seed's light CPU node and
                                      powerful GPU node) on 127.0.0.2 and 127.0.0.3; their answers are
                                      marked [simulated]
Any further arguments go to `streamlit run` (e.g. --server.port 8502).

The engine starts with the process, before the web server: the start-up lines ("SOLLOL discovered
2 nodes ...", "Default routing mode: ASYNC", "VRAM monitoring: enabled") print before any browser
connects, and the first page finds Hydra running. The embedded node warms in the background.
"""
from __future__ import annotations

import argparse
import os
import sys
from contextlib import ExitStack
from pathlib import Path

from platformdirs import user_data_dir

ROOT = Path(__file__).resolve().parent.parent


def streamlit_args(extra: list[str]) -> list[str]:
    """The arguments of ``streamlit run`` for the app."""
    return ["run", str(ROOT / "app.py"), *extra]


def app_url(extra: list[str]) -> str:
    """Where the app will answer: port 8501 unless ``--server.port`` says otherwise."""
    port = "8501"
    for i, arg in enumerate(extra):
        if arg.startswith("--server.port="):
            port = arg.split("=", 1)[1]
        elif arg == "--server.port" and i + 1 < len(extra):
            port = extra[i + 1]
    return f"http://localhost:{port}"


def _start_demo_cluster(stack: ExitStack, time_scale: float) -> None:
    from hydra.sim import start_cluster
    cluster = stack.enter_context(start_cluster("seed", time_scale=time_scale))
    os.environ["SOLLOL_NODES"] = ",".join(filter(None, [os.environ.get("SOLLOL_NODES", ""), cluster.sollol_nodes()]))
    os.environ.setdefault("HYDRA_EMBEDDED_NODE", "on")
    os.environ.setdefault("HYDRA_DB", str(Path(user_data_dir("hydra")) / "hydra-demo.db"))
    print("Demo cluster (simulated, answers marked [simulated]):")
    for node in cluster.nodes:
        print(f"  {node.profile.name:<10} {node.url}  ({'GPU' if node.profile.gpu else 'CPU'}, "
              f"up to {node.profile.max_model_b:g}B)")
    print("  embedded   http://127.0.0.1:11435  (real SmolLM2-135M on llama.cpp; warms in the background)",
          flush=True)


def _import_pages() -> None:
    """Import what the pages import (pandas, plotly, the UI helpers) now, not in the first page view:
    that first view would otherwise wait for these imports, seconds on a busy machine."""
    import hydra.ui.charts
    import hydra.ui.conversation
    import hydra.ui.node_form
    import hydra.ui.task_list  # noqa: F401 - imported for its side effect: loaded once, ready for the pages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Start the Hydra app.", epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", action="store_true",
                        help="also start the simulated 'seed' cluster (two nodes on 127.0.0.2/.3)")
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="demo only: speed of the simulated nodes (0.5 = twice as fast)")
    args, extra = parser.parse_known_args(argv)
    os.chdir(ROOT)  # Streamlit reads .streamlit/config.toml from here, as `streamlit run` in the repository does
    from hydra.gc_tuning import tune_for_serving
    from hydra.service import Hydra
    from hydra.sollol.errors import ConfigError, HydraError
    tune_for_serving()
    with ExitStack() as stack:
        if args.demo:
            _start_demo_cluster(stack, args.time_scale)
        try:
            hydra = Hydra.from_env().start(embedded_in_background=True)
        except ConfigError as exc:
            print(f"Hydra cannot start: {exc.variable} = {exc.value!r} is not valid; allowed: {exc.allowed}. "
                  f"Set it to an allowed value or unset it.", file=sys.stderr)
            return 2
        except HydraError as exc:
            print(f"Hydra could not start: {exc}", file=sys.stderr)
            return 1
        stack.callback(hydra.close)  # before the demo cluster stops (the stack unwinds last in, first out)
        from hydra.ui import shared
        shared.adopt(hydra)
        _import_pages()
        print(f"Hydra: open {app_url(extra)}  (Ctrl+C stops it)", flush=True)
        from streamlit.web import cli as streamlit_cli
        try:
            streamlit_cli.main(streamlit_args(extra), prog_name="streamlit", standalone_mode=False)
        except SystemExit as exc:  # click's usage errors; Streamlit's own exit
            return exc.code if isinstance(exc.code, int) else 1
        except KeyboardInterrupt:
            return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
