"""Start the Hydra app (what `make run` and `make demo` call).

    python -m hydra.launch            the app on http://localhost:8501; with no Ollama configured or
                                      answering, Hydra starts its embedded node (SmolLM2-135M, llama.cpp)
    python -m hydra.launch --demo     the same plus two simulated nodes (the seed's light CPU node and
                                      powerful GPU node) on 127.0.0.2 and 127.0.0.3; their answers are
                                      marked [simulated]
Any further arguments go to `streamlit run` (e.g. --server.port 8502).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

from platformdirs import user_data_dir

ROOT = Path(__file__).resolve().parent.parent


def streamlit_command(extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), *extra]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Start the Hydra app.", epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", action="store_true",
                        help="also start the simulated 'seed' cluster (two nodes on 127.0.0.2/.3)")
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="demo only: speed of the simulated nodes (0.5 = twice as fast)")
    args, extra = parser.parse_known_args(argv)
    env = dict(os.environ)
    with ExitStack() as stack:
        if args.demo:
            from hydra.sim import start_cluster
            cluster = stack.enter_context(start_cluster("seed", time_scale=args.time_scale))
            nodes = cluster.sollol_nodes()
            env["SOLLOL_NODES"] = ",".join(filter(None, [env.get("SOLLOL_NODES", ""), nodes]))
            env.setdefault("HYDRA_EMBEDDED_NODE", "on")
            env.setdefault("HYDRA_DB", str(Path(user_data_dir("hydra")) / "hydra-demo.db"))
            print("Demo cluster (simulated, answers marked [simulated]):")
            for node in cluster.nodes:
                print(f"  {node.profile.name:<10} {node.url}  ({'GPU' if node.profile.gpu else 'CPU'}, "
                      f"up to {node.profile.max_model_b:g}B)")
            print("  embedded   http://127.0.0.1:11435  (real SmolLM2-135M on llama.cpp)")
        print("Hydra: open http://localhost:8501  (Ctrl+C stops it)", flush=True)
        process = subprocess.Popen(streamlit_command(extra), cwd=ROOT, env=env)
        try:
            return process.wait()
        except KeyboardInterrupt:
            process.terminate()
            try:
                return process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                return 130


if __name__ == "__main__":
    sys.exit(main())
