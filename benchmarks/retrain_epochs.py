"""The retraining's epochs, chosen on inner holdouts: best epoch as is, or scaled to the split.

Per task and seed, the training split is cut (seeded, 80/20) as ``quality.py --choose-size``
cuts it: an inner training split and an inner holdout that stands in for the test split
(the real test split is never read). The harness searches the inner split once, a fixed
number of trials (``search.Study(inner, "mlp", epochs=E, seed=S, cv=<the task's>)``, every
other option at its default), and the stored study is scored twice, no trial run again:
its retrainings (the top-k and the ensemble's members) for each trial's best epoch count
as it is (``as_is``), and scaled to the whole split (``scaled``:
:func:`search.study.scoring.retrain_epochs`, the default). It prints the inner holdout's
MSE of ``best.keras`` (the ensemble of 5 picks) and of the rank-1 configuration.
``--full`` searches the whole training split instead and scores on the test split: a
report, never a choice.

    KERAS_BACKEND=numpy python benchmarks/retrain_epochs.py --tasks boston --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for folder in (ROOT, Path(__file__).resolve().parent):  # a plain checkout; throughput.py
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
os.environ.setdefault("KERAS_BACKEND", "numpy")  # the CLI's choice, before Keras loads

from fixed_trials import add_study_options  # noqa: E402


def one(task_name: str, seed: int, trials: int, epochs: int, full: bool) -> dict[str, float]:
    import numpy as np
    from throughput import _quiet

    import search
    from search.study import scoring
    from search.tasks import load_task

    task: Any = load_task(task_name)
    options = {"epochs": epochs, "seed": seed, "cv": task.default_cv}
    if not full:
        rows = np.random.default_rng(seed).permutation(len(task.x_train))
        cut = round(0.8 * len(rows))
        train, holdout = rows[:cut], rows[cut:]
        x, y = task.x_train, task.y_train
        task = search.Task.from_arrays(
            x[train], y[train], x[holdout], y[holdout], kind="regression", name=f"{task_name}-inner"
        )
    scaled = scoring.retrain_epochs
    found: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as out, _quiet():
        first = search.Study(task, "mlp", out=out, ensemble_size=0, **options)
        done = first.run(trials, progress=False)
        for name, epochs_of in (("as_is", lambda best, _: best or 1), ("scaled", scaled)):
            scoring.retrain_epochs = epochs_of  # type: ignore[assignment]
            try:
                again = search.Study(task, "mlp", out=out, **options)
                summary = again.run(done.summary["trials"], progress=False).summary
            finally:
                scoring.retrain_epochs = scaled
            found[f"{name}_ensemble"] = summary["ensemble_test_value"]
            found[f"{name}_rank1"] = summary["test_value"]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_study_options(parser)
    parser.add_argument("--full", action="store_true", help="the test split: a report only")
    args = parser.parse_args()
    columns = ("as_is_ensemble", "scaled_ensemble", "as_is_rank1", "scaled_rank1")
    print(f"{'task':10} {'seed':>4} " + " ".join(f"{c:>16}" for c in columns), flush=True)
    for task in args.tasks:
        for seed in args.seeds:
            row = one(task, seed, args.trials, args.epochs, args.full)
            print(f"{task:10} {seed:4} " + " ".join(f"{row[c]:16.4f}" for c in columns), flush=True)


if __name__ == "__main__":
    main()
