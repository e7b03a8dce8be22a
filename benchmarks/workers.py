"""Trials per minute with 1 and with 2 worker processes, side by side in one invocation.

The same study (Boston, MLP space, Optuna random sampling, no pruning, fixed epochs) runs
through the real CLI with ``--workers 1`` and ``--workers 2``, alternating, each in a fresh
results folder. Trials per minute count the whole search, worker start-up included.

    python benchmarks/workers.py --trials 40 --epochs 50 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(workers: int, trials: int, epochs: int, seed: int) -> float:
    """Trials per minute of one search, measured around the whole CLI command."""
    with tempfile.TemporaryDirectory() as out:
        command = [
            sys.executable,
            "-m",
            "search",
            "boston",
            "--space",
            "mlp",
            "--algorithm",
            "random",
            "--pruner",
            "none",
            "--patience",
            "0",
            "--trials",
            str(trials),
            "--epochs",
            str(epochs),
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
        subprocess.run(command, check=True, capture_output=True)
        seconds = time.perf_counter() - start
        summary = json.loads(next(Path(out).glob("boston/*/study.json")).read_text())["summary"]
        assert summary["trials"] == trials
        return 60 * trials / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    rates: dict[int, list[float]] = {1: [], 2: []}
    for repeat in range(args.repeats):
        for workers in (1, 2):
            rates[workers].append(run(workers, args.trials, args.epochs, seed=repeat))
            print(f"repeat {repeat}: {workers} worker(s): {rates[workers][-1]:.1f} trials/min")
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    print(f"median trials/min: 1 worker {one:.1f}, 2 workers {two:.1f}, ratio {two / one:.2f}")


if __name__ == "__main__":
    main()
