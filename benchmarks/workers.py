"""Trials per minute with 1 and with 2 worker processes, side by side in one invocation.

The same study (Boston, MLP space, random sampling, no pruning or early stopping, fixed
epochs, one holdout split) runs through the real CLI with ``--workers 1`` and
``--workers 2``, alternating, each in a fresh results folder. Two rates per run:

- *command*: trials over the whole command's wall time, Python and TensorFlow start-up
  (about 10 s per process here) and the final scoring included;
- *search*: the study's own ``trials_per_minute`` (``study.json``), trials over the search
  phase, from the study's start to its last trial (the workers' start-up overlaps the
  parent's, see ``search.study.workers.prestart``); what a long search converges to.

The ratio is 2 workers over 1 (target: 1.6 or more on a 2-core machine). With
``--cluster ADDRESS`` (``local``: a LocalCluster the command starts, one process per core)
a third run per repeat gives the 2 workers to a Dask cluster (``--workers 2 --cluster``);
its ratio is over the 1 local worker too.

    python benchmarks/workers.py --engine optuna --trials 200 --epochs 60 --repeats 1
    python benchmarks/workers.py --engine keras-tuner --trials 200 --epochs 60 --repeats 1
    python benchmarks/workers.py --engine optuna --trainer keras --trials 48 --epochs 60
    python benchmarks/workers.py --engine optuna --trials 200 --epochs 60 --cluster local

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


def run(
    args: argparse.Namespace, workers: int, seed: int, cluster: str | None = None
) -> tuple[float, float]:
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
            *(["--cluster", cluster] if cluster else []),
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
    parser.add_argument("--cluster", metavar="ADDRESS", help="also 2 workers on this cluster")
    args = parser.parse_args()
    variants = {"1 worker": (1, None), "2 workers": (2, None)}
    if args.cluster:
        variants["2 on the cluster"] = (2, args.cluster)
    rates: dict[str, dict[str, list[float]]] = {"command": {}, "search": {}}
    print(f"{args.engine}, trainer {args.trainer}, {args.trials} trials of {args.epochs} epochs")
    for repeat in range(args.repeats):
        for name, (workers, cluster) in variants.items():
            command, search = run(args, workers, repeat, cluster)
            rates["command"].setdefault(name, []).append(command)
            rates["search"].setdefault(name, []).append(search)
            load = os.getloadavg()[0]
            print(
                f"repeat {repeat}: {name}: command {command:.1f} trials/min, "
                f"search {search:.1f} trials/min (load average {load:.1f})",
                flush=True,
            )
    for kind, by_variant in rates.items():
        one = statistics.median(by_variant["1 worker"])
        print(
            f"{kind}: median trials/min: 1 worker {one:.1f}, "
            + ", ".join(
                f"{name} {statistics.median(values):.1f} (ratio "
                f"{statistics.median(values) / one:.2f})"
                for name, values in by_variant.items()
                if name != "1 worker"
            )
        )


if __name__ == "__main__":
    main()
