"""Regret curves of a tabular suite's FC-Net studies, as Klein & Hutter (2019) define regret.

Their scripts (automl/nas_benchmarks, ``tabular_benchmarks/fcnet_benchmark.py``) track the
incumbent by its configuration's mean validation MSE over the 4 recorded runs, and report
that mean minus the grid's best. The harness selects the trial of best *drawn* value instead;
both are printed, after 10, 25, 50 and 100 trials (mean and median over the seeds), with
how many runs reached the grid's best configuration; then, per task, how many trials each
contender's mean regret (theirs) took to reach random search's at the end.

    python benchmarks/kh_regret.py OUT/bench/suite-fcnet
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from search.tasks.tabular import load_tabular

CHECKPOINTS = (10, 25, 50, 100)


def curves(leaderboard: Path, task_name: str) -> tuple[np.ndarray, np.ndarray]:
    """Per trial: regret of the incumbent by mean (theirs) and by drawn value (ours)."""
    task = load_tabular(task_name)
    assert task.table is not None
    frame = pd.read_csv(leaderboard).sort_values("trial")
    grid = list(task.table.grid)
    means = np.array([task.table.lookup(row, 0).mean for row in frame[grid].to_dict("records")])
    best = task.baselines["grid best"]["mse"]
    theirs = np.minimum.accumulate(means) - best
    drawn = frame["value"].to_numpy()
    chosen = np.array([int(np.argmin(drawn[: k + 1])) for k in range(len(drawn))])
    return theirs, means[chosen] - best


def main(folder: Path) -> None:
    rows = []
    full: dict[tuple[str, str], list[np.ndarray]] = {}
    for leaderboard in sorted(folder.glob("*/studies/*/*-seed*/leaderboard.csv")):
        task_name = leaderboard.parent.parent.name
        engine, algorithm, _ = leaderboard.parent.name.rsplit("-", 2)
        theirs, ours = curves(leaderboard, task_name)
        full.setdefault((task_name, f"{engine}:{algorithm}"), []).append(theirs)
        for k in CHECKPOINTS:
            if k <= len(theirs):
                rows.append(
                    {
                        "task": task_name,
                        "contender": f"{engine}:{algorithm}",
                        "trials": k,
                        "regret_mean_incumbent": theirs[k - 1],
                        "regret_drawn_incumbent": ours[k - 1],
                    }
                )
    table = pd.DataFrame(rows)
    grouped = table.groupby(["task", "contender", "trials"])
    summary = grouped.agg(
        runs=("regret_mean_incumbent", "size"),
        mean_theirs=("regret_mean_incumbent", "mean"),
        median_theirs=("regret_mean_incumbent", "median"),
        optimum_found=("regret_mean_incumbent", lambda s: int((s <= 0).sum())),
        mean_ours=("regret_drawn_incumbent", "mean"),
        median_ours=("regret_drawn_incumbent", "median"),
    )
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        print(summary.to_string(float_format=lambda v: f"{v:.3g}"))
    means = {key: np.mean(np.stack(runs), axis=0) for key, runs in full.items()}
    for (task_name, contender), curve in sorted(means.items()):
        random = means.get((task_name, "optuna:random"))
        if random is None or contender == "optuna:random":
            continue
        reached = np.flatnonzero(curve <= random[-1])
        when = f"{reached[0] + 1} trials" if len(reached) else "never"
        print(
            f"{task_name}: {contender} reaches random search's {len(random)}-trial mean "
            f"regret {random[-1]:.3g} after {when}"
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
