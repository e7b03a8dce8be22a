"""Does memory stay flat over a long study? Peak RSS after N trials against after 10x N.

Each study runs in its own process: ``python -m search boston --space mlp --trials N`` with
the defaults otherwise (the numpy trainer, TensorBoard on, top-5 ensembles) and ``--cv 1``
so that 200 trials take minutes. The peak RSS of the process (``ru_maxrss`` of the child)
covers imports, the search, the retrainings and the writing of every result file. If a trial
left anything behind (models, optimizer state, summary writers, journal caches), the long
study's peak would grow with its trial count.

    python benchmarks/memory.py --trials 20 200
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def peak_rss_mb(trials: int, epochs: int, seed: int) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of one study of ``trials`` trials, in a child process."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory() as out:
        argv = ["boston", "--space", "mlp", "--cv", "1", "--trials", str(trials)]
        argv += ["--epochs", str(epochs), "--seed", str(seed), "--out", out]
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, *argv],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - start
        marked = [line for line in proc.stderr.splitlines() if line.startswith(_MARK)]
        if proc.returncode != 0 or not marked:
            raise SystemExit(f"python -m search {' '.join(argv)} failed:\n{proc.stderr[-3000:]}")
    return float(marked[-1][len(_MARK) :]) / 1024, seconds


_MARK = "peak-rss-kb="
# `python -m search ARGS`, then the process's own peak RSS on stderr.
_CHILD = f"""
import resource, runpy, sys
sys.argv = ["search", *sys.argv[1:]]
try:
    runpy.run_module("search", run_name="__main__")
finally:
    print("{_MARK}" + str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss), file=sys.stderr)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[20, 200])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"Boston, mlp space, --cv 1, at most {args.epochs} epochs, seed {args.seed}")
    print(f"{'trials':>6} {'peak RSS MB':>12} {'growth MB':>10} {'wall s':>8}")
    first = None
    for trials in sorted(args.trials):
        peak, seconds = peak_rss_mb(trials, args.epochs, args.seed)
        first = peak if first is None else first
        print(f"{trials:>6} {peak:>12.0f} {peak - first:>10.0f} {seconds:>8.0f}", flush=True)


if __name__ == "__main__":
    main()
