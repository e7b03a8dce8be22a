"""Validation first, at a fixed number of trials: the harness's MLP search per task and seed.

Where a wall budget would be unfair (a shared, loaded machine), two versions of the harness
are compared on the same number of trials instead: ``search.Study(task, "mlp", epochs=E,
seed=S)`` and ``.run(N)``, every other option at its default (the task's validation, TPE
with the median pruner, the ensemble of 5 picks). Per task and seed it prints the rank-1
trial's validation value (the search's own, biased low by selection), the ensemble's value
on fresh out-of-fold predictions (``ensemble_value``: a partition the search never saw),
and only then the test MSE of the rank-1 retraining and of the ensemble (``best.keras``).
Choose by the first two; the test columns only report. Run it on each commit to compare.

    KERAS_BACKEND=numpy python benchmarks/fixed_trials.py --trials 100 --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for folder in (ROOT, Path(__file__).resolve().parent):  # a plain checkout; throughput.py
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
os.environ.setdefault("KERAS_BACKEND", "numpy")  # the CLI's choice, before Keras loads

COLUMNS = ("val", "ensemble_val", "test_rank1", "test_ensemble")


def one(task: str, seed: int, trials: int, epochs: int) -> dict[str, float]:
    from throughput import _quiet

    import search

    with tempfile.TemporaryDirectory() as out:
        study = search.Study(task, "mlp", epochs=epochs, seed=seed, out=out)
        with _quiet():
            summary = study.run(trials, progress=False).summary
    return {
        "val": summary["best_value"],
        "ensemble_val": summary["ensemble_value"],
        "test_rank1": summary["test_value"],
        "test_ensemble": summary["ensemble_test_value"],
    }


def add_study_options(parser: argparse.ArgumentParser) -> None:
    """The fixed-trial studies' options, shared with ``retrain_epochs.py``."""
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--tasks", nargs="+", default=["boston", "diabetes", "friedman1"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_study_options(parser)
    args = parser.parse_args()
    print(f"{'task':10} {'seed':>4} " + " ".join(f"{c:>13}" for c in COLUMNS), flush=True)
    for task in args.tasks:
        rows = []
        for seed in args.seeds:
            rows.append(one(task, seed, args.trials, args.epochs))
            shown = " ".join(f"{rows[-1][c]:13.4f}" for c in COLUMNS)
            print(f"{task:10} {seed:4} {shown}", flush=True)
        means = " ".join(f"{statistics.fmean(r[c] for r in rows):13.4f}" for c in COLUMNS)
        print(f"{task:10} mean {means}", flush=True)


if __name__ == "__main__":
    main()
