"""SOLLOL 0.9.66's side of bench.overhead, run by the python of its own venv (bench/envs.py): stdlib and
``sollol`` only, never hydra.

    .bench-envs/sollol/bin/python bench/sollol_arm.py NODE_URL MODEL

One ``sollol.OllamaPool`` over the one node (no discovery, dashboard, Redis, Dask, Ray or cache: only
the node is contacted). For each line ``TOKENS`` on stdin it streams one chat of that many tokens and
prints the seconds from the call to the first content chunk; an empty line or EOF ends it.
"""
from __future__ import annotations

import logging
import sys
import time


def main() -> None:
    from sollol.pool import OllamaPool  # in the sollol venv only

    logging.disable(logging.WARNING)  # the pool logs every routing decision at INFO and above
    url, model = sys.argv[1], sys.argv[2]
    pool = OllamaPool(nodes=[url], register_with_dashboard=False, enable_ray=False, enable_dask=False,
                      enable_gpu_redis=False, enable_cache=False, exclude_localhost=False)
    print("ready", flush=True)
    for line in sys.stdin:
        if not line.strip():
            break
        tokens = int(line)
        start = time.perf_counter()
        first = None
        for chunk in pool.chat(model, [{"role": "user", "content": "Stream a long answer about routing."}],
                               stream=True, options={"num_predict": tokens}):
            if first is None and (chunk.get("message") or {}).get("content"):
                first = time.perf_counter()
        print(f"{(first or float('nan')) - start:.9f}", flush=True)


if __name__ == "__main__":
    main()
