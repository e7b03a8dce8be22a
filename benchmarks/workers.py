"""Trials per minute with 1 and with 2 worker processes, side by side in one invocation.

The same study (Boston, MLP space, random sampling, no pruning or early stopping, fixed
epochs, one holdout split) runs through the real CLI with ``--workers 1`` and
``--workers 2``, alternating, each in a fresh results folder. Two rates per run:

- *command*: trials over the whole command's wall time, Python and TensorFlow start-up
  (about 10 s per process here) and the final scoring included;
- *search*: the study's own ``trials_per_minute`` (``study.json``), trials over the search
  phase, from the study's start to its last trial (the workers' start-up overlaps the
  parent's, see ``search.study.workers.prestart``); what a long search converges to.

The ratio is 2 workers over 1 (target: 1.6 or more on a 2-core machine).

    python benchmarks/workers.py --engine optuna --trials 200 --epochs 60 --repeats 1
    python benchmarks/workers.py --engine keras-tuner --trials 200 --epochs 60 --repeats 1
    python benchmarks/workers.py --engine optuna --trainer keras --trials 48 --epochs 60

The machine's load average is printed with each run: other processes on the cores skew
both numbers, and the ratio less than either.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ALGORITHM = {"optuna": "random", "keras-tuner": "random"}


def run(args: argparse.Namespace, workers: int, seed: int) -> tuple[float, float]:
    """Trials per minute of one search: around the whole command, and of its search."""
    with tempfile.TemporaryDirectory() as out:
        command = [
            sys.executable,
            "-m",
            "search",
            "boston",
            "--space",
            "mlp",
            "--engine",
            args.engine,
            "--algorithm",
            ALGORITHM[args.engine],
            "--pruner",
            "none",
            "--patience",
            "0",
            "--cv",
            "1",
            "--trials",
            str(args.trials),
            "--epochs",
            str(args.epochs),
            "--trainer",
            args.trainer,
            "--workers",
            str(workers),
            "--top-k",
            "0",
            "--no-tensorboard",
            "--seed",
            str(seed),
            "--out",
            out,
        ]
        start = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{proc.stderr[-2000:]}")
        summary = json.loads(next(Path(out).glob("boston/*/study.json")).read_text())["summary"]
        if summary["trials"] != args.trials:
            raise SystemExit(f"expected {args.trials} trials, the study holds {summary['trials']}")
        return 60 * args.trials / seconds, float(summary["trials_per_minute"])


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--engine", choices=sorted(ALGORITHM), default="optuna")
    parser.add_argument("--trainer", default="numpy", help="the CLI's --trainer (default numpy)")
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    rates: dict[str, dict[int, list[float]]] = {"command": {1: [], 2: []}, "search": {1: [], 2: []}}
    print(f"{args.engine}, trainer {args.trainer}, {args.trials} trials of {args.epochs} epochs")
    for repeat in range(args.repeats):
        for workers in (1, 2):
            command, search = run(args, workers, seed=repeat)
            rates["command"][workers].append(command)
            rates["search"][workers].append(search)
            load = os.getloadavg()[0]
            print(
                f"repeat {repeat}: {workers} worker(s): command {command:.1f} trials/min, "
                f"search {search:.1f} trials/min (load average {load:.1f})",
                flush=True,
            )
    for kind, by_workers in rates.items():
        one, two = statistics.median(by_workers[1]), statistics.median(by_workers[2])
        print(
            f"{kind}: median trials/min: 1 worker {one:.1f}, 2 workers {two:.1f}, "
            f"ratio {two / one:.2f}"
        )


if __name__ == "__main__":
    main()
