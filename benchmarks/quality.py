"""Test scores at a fixed wall budget: this harness, stock keras-tuner, stock Optuna, HGB.

On each task (``boston``, ``diabetes``, ``friedman1`` by default) and seed, every contender
gets the same wall budget (``--budget``, 60 s by default) on the MLP space and reports the
test MSE of the model it selects:

- ``harness``: ``python -m search TASK --space mlp --time-budget B --trials 100000 --epochs
  E --seed S`` (in a subprocess on Keras' numpy backend, as the CLI picks it) with every
  other option at its default: the task's validation (5-fold on Boston, a 20% holdout
  elsewhere), Optuna TPE with the median pruner, TensorBoard, the ensemble selection. Its
  score is ``best.keras``'s: the ensemble's test MSE (or the rank-1 trial's when there is
  none); ``rank1`` is the rank-1 trial's (top-k retraining), for comparison.
- ``keras-tuner``: stock ``RandomSearch`` (``benchmarks/throughput.py``), no trial started
  after the budget, its best model's test MSE.
- ``optuna``: stock Optuna ``TPESampler`` with Keras ``fit`` (``benchmarks/throughput.py``),
  Optuna's ``timeout`` at the budget; the best configuration retrained on the whole
  training split for its best epoch count.
- ``hgb``: scikit-learn's ``HistGradientBoostingRegressor`` with its defaults.

The budget counts the search: each contender's trials start before it ends; the harness's
scoring (retraining, ensemble selection) and the stock contenders' final model come after.
``total_seconds`` is each contender's whole run, imports excluded.

Every contender's model predicts the same test rows, so their squared errors are paired:
after the table, each other contender's test MSE is compared with the harness's at each
seed, the difference with its standard error over the test rows; a difference within two
standard errors is called the test split's noise.

``--choose-size`` instead decides the ensemble size on validation only: each task's
training split is cut (seeded, 80/20) into an inner training split and an inner holdout
that stands in for the test split (the real test split is never read); the harness
searches once per seed, and the stored study is then scored again with each size of
``--sizes`` (no trial is run again): the inner holdout's MSE per size.

    python benchmarks/quality.py --seeds 0 1 2 3 4
    python benchmarks/quality.py --budget 15 --tasks boston --seeds 0
    python benchmarks/quality.py --choose-size --budget 60 --tasks boston diabetes --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for folder in (ROOT, Path(__file__).resolve().parent):  # a plain checkout; throughput.py
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from throughput import _quiet, stock_keras_tuner, stock_optuna  # noqa: E402

CONTENDERS: dict[str, str] = {  # each one's Keras backend
    "harness": "numpy",
    "keras-tuner": "tensorflow",
    "optuna": "tensorflow",
    "hgb": "numpy",
}
TASKS = ("boston", "diabetes", "friedman1")
SIZES = (0, 1, 5, 10, 25, 50)
_MARK = "QUALITY-JSON "


# --------------------------------------------------------------------------- children


def harness(task: Any, seed: int, budget: float, epochs: int, out: str) -> dict[str, Any]:
    """The harness's search at its defaults, in this process: ``search.Study`` is the CLI's
    ``run`` (``task`` a name or a Task)."""
    import search
    from search.trainers import predict

    study = search.Study(task, "mlp", epochs=epochs, seed=seed, out=out)
    started = time.perf_counter()
    with _quiet():
        result = study.run(100_000, timeout=budget, progress=False)
    summary = result.summary
    score = summary["ensemble_test_value"]
    test = study.task.x_test
    return {
        "test_mse": summary["test_value"] if score is None else score,
        "test_predictions": predict(result.best_model(), test).reshape(-1).tolist(),
        "rank1": summary["test_value"],
        "val": summary["best_value"],
        "ensemble": summary["ensemble"],
        "ensemble_val": summary["ensemble_value"],
        "trials": summary["trials"],
        "total_seconds": time.perf_counter() - started,
    }


def hgb(task_name: str, seed: int) -> dict[str, Any]:
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingRegressor

    from search.tasks import load_task

    task = load_task(task_name)
    started = time.perf_counter()
    model = HistGradientBoostingRegressor(random_state=seed).fit(task.x_train, task.y_train)
    predictions = model.predict(task.x_test)
    return {
        "test_mse": float(np.mean((predictions - task.y_test) ** 2)),
        "test_predictions": predictions.tolist(),
        "total_seconds": time.perf_counter() - started,
    }


def run_child(contender: str, task: str, seed: int, budget: float, epochs: int) -> None:
    import search  # noqa: F401  (quiets TensorFlow and turns oneDNN off, as the CLI does)

    started = time.perf_counter()
    if contender == "harness":
        with tempfile.TemporaryDirectory() as out:
            result = harness(task, seed, budget, epochs, out)
    elif contender == "hgb":
        result = hgb(task, seed)
    elif contender == "keras-tuner":
        result = stock_keras_tuner(task, 100_000, epochs, seed, "mlp", budget)
    else:
        result = stock_optuna(task, 100_000, epochs, seed, "mlp", budget, sampler="tpe")
    result.setdefault("total_seconds", time.perf_counter() - started)
    result.pop("per_trial", None)
    _check_predictions(result, task)
    print(_MARK + json.dumps(result), flush=True)


def _test_truth(task_name: str) -> Any:
    """The task's test targets, as the contenders' predictions are compared with them."""
    import numpy as np

    from search.tasks import load_task

    return np.asarray(load_task(task_name).y_test, dtype=np.float64).reshape(-1)


def _check_predictions(result: dict[str, Any], task_name: str) -> None:
    """The test predictions kept for the paired comparison give the reported test MSE."""
    import numpy as np

    truth = _test_truth(task_name)
    mse = float(np.mean((np.asarray(result["test_predictions"]) - truth) ** 2))
    if not np.isclose(mse, result["test_mse"], rtol=1e-4):
        raise SystemExit(f"test predictions give MSE {mse}, the contender {result['test_mse']}")


def choose_size(task_name: str, seed: int, budget: float, epochs: int, sizes: list[int]) -> None:
    """One inner search, then its scoring at each size: prints one JSON line per size."""
    import numpy as np

    import search
    from search.tasks import load_task

    task = load_task(task_name)
    rows = np.random.default_rng(seed).permutation(len(task.x_train))
    cut = round(0.8 * len(rows))
    inner = search.Task.from_arrays(
        task.x_train[rows[:cut]],
        task.y_train[rows[:cut]],
        task.x_train[rows[cut:]],  # the inner holdout: scored as if it were the test split
        task.y_train[rows[cut:]],
        kind="regression",
        name=f"{task_name}-inner",
    )
    with tempfile.TemporaryDirectory() as out:
        options = {"epochs": epochs, "seed": seed, "out": out, "cv": task.default_cv}
        study = search.Study(inner, "mlp", ensemble_size=0, **options)
        with _quiet():
            first = study.run(100_000, timeout=budget, progress=False)
        done = first.summary["trials"]
        for size in sizes:
            again = search.Study(inner, "mlp", ensemble_size=size, **options)
            with _quiet():
                summary = again.run(done, progress=False).summary
            score = summary["ensemble_test_value"]
            line = {
                "task": task_name,
                "seed": seed,
                "size": size,
                "trials": done,
                "holdout_mse": summary["test_value"] if score is None else score,
                "ensemble": summary["ensemble"],
                "ensemble_val": summary["ensemble_value"],
            }
            print(_MARK + json.dumps(line), flush=True)


# --------------------------------------------------------------------------- parent


def child(args: list[str], backend: str) -> list[dict[str, Any]]:
    env = dict(os.environ, KERAS_BACKEND=backend)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    command = [sys.executable, str(Path(__file__).resolve()), *args]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(_MARK)]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stderr[-4000:]}")
    return [json.loads(line[len(_MARK) :]) for line in lines]


def compare(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for task in args.tasks:
        for index, seed in enumerate(args.seeds):
            # Rotate the order from seed to seed, so no contender always runs first.
            names = args.contenders[index % len(args.contenders) :]
            names += args.contenders[: index % len(args.contenders)]
            for name in names:
                print(f"{task} seed {seed}: {name} ...", file=sys.stderr, flush=True)
                command = ["--child", name, "--tasks", task, "--seeds", str(seed)]
                command += ["--budget", str(args.budget), "--epochs", str(args.epochs)]
                (row,) = child(command, CONTENDERS[name])
                rows.append({"task": task, "contender": name, "seed": seed, **row})
    return rows


def paired(rows: list[dict[str, Any]]) -> str:
    """Each other contender against the harness, task by task and seed by seed: the
    difference of their test MSEs (the harness's minus the other's) and its standard error
    over the test rows, which both predicted (so the errors are paired). A difference
    within two standard errors is the test split's noise. Adds both to each row."""
    import numpy as np

    lines = []
    for task in dict.fromkeys(row["task"] for row in rows):
        truth = _test_truth(task)
        mine = [row for row in rows if row["task"] == task]
        ours = {row["seed"]: row for row in mine if row["contender"] == "harness"}
        lines.append(f"{task}: harness minus each contender, test MSE (2 standard errors)")
        for row in mine:
            if row["contender"] == "harness" or row["seed"] not in ours:
                continue
            errors = [
                (np.asarray(r["test_predictions"], dtype=np.float64) - truth) ** 2
                for r in (ours[row["seed"]], row)
            ]
            gap = errors[0] - errors[1]
            row["harness_minus"] = float(gap.mean())
            row["harness_minus_se"] = float(gap.std(ddof=1) / np.sqrt(len(gap)))
            verdict = (
                "within noise"
                if abs(row["harness_minus"]) <= 2 * row["harness_minus_se"]
                else "harness better"
                if row["harness_minus"] < 0
                else f"{row['contender']} better"
            )
            lines.append(
                f"  seed {row['seed']} {row['contender']:12} {row['harness_minus']:+9.3f} "
                f"(+-{2 * row['harness_minus_se']:.3f})  {verdict}"
            )
    return "\n".join(lines)


def table(rows: list[dict[str, Any]], column: str, value: str) -> str:
    """Per task, one line per ``column`` value: ``value`` at each seed and their mean."""
    lines = []
    for task in dict.fromkeys(row["task"] for row in rows):
        mine = [row for row in rows if row["task"] == task]
        seeds = list(dict.fromkeys(row["seed"] for row in mine))
        lines.append(f"{task}: {value} at seeds {' '.join(map(str, seeds))}, mean")
        for key in dict.fromkeys(row[column] for row in mine):
            values = {row["seed"]: row[value] for row in mine if row[column] == key}
            shown = " ".join(f"{values[s]:9.3f}" if s in values else " " * 9 for s in seeds)
            lines.append(f"  {key!s:12} {shown}   {statistics.fmean(values.values()):9.3f}")
    return "\n".join(lines)


def write(rows: list[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)
    print(f"written: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=60.0, help="wall seconds per search")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    parser.add_argument("--contenders", nargs="+", choices=list(CONTENDERS))
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench")
    parser.add_argument("--choose-size", action="store_true", help="sizes on validation only")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--child", choices=[*CONTENDERS, "choose-size"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "choose-size":
        choose_size(args.tasks[0], args.seeds[0], args.budget, args.epochs, args.sizes)
    elif args.child:
        run_child(args.child, args.tasks[0], args.seeds[0], args.budget, args.epochs)
    elif args.choose_size:
        rows = []
        for task in args.tasks:
            for seed in args.seeds:
                print(f"{task} seed {seed}: sizes ...", file=sys.stderr, flush=True)
                command = ["--child", "choose-size", "--tasks", task, "--seeds", str(seed)]
                command += ["--budget", str(args.budget), "--epochs", str(args.epochs)]
                rows += child([*command, "--sizes", *map(str, args.sizes)], "numpy")
        print(table(rows, "size", "holdout_mse"))
        write(rows, args.out / "quality-sizes.csv")
    else:
        args.contenders = args.contenders or list(CONTENDERS)
        rows = compare(args)
        print(table(rows, "contender", "test_mse"))
        if "harness" in args.contenders:
            print(paired(rows))
        for row in rows:
            row.pop("test_predictions")
        write(rows, args.out / "quality.csv")


if __name__ == "__main__":
    main()
