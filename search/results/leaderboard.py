"""Trial records -> pandas tables -> CSV files, rebuilt from the engines' storage.

``results/<task>/<study>/leaderboard.csv`` has one row per trial; ``results/leaderboard.csv``
has one row per study and is rebuilt from every study's ``study.json``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from search.engines.records import COMPLETE, TrialRecord, counted
from search.files import read_json, write_text
from search.layout import (
    ENSEMBLE_WEIGHT_COLUMN,
    PARETO_COLUMN,
    STUDY_TABLE,
    TRIAL_COLUMNS_HEAD,
    TRIAL_COLUMNS_TAIL,
    WALL_SECONDS_COLUMN,
    study_files,
)

STUDY_COLUMNS = (
    "task",
    "study",
    "space",
    "engine",
    "algorithm",
    "pruner",
    "objective",
    "trials",
    "complete",
    "pruned",
    "failed",
    "best_value",
    "best_trial",
    "pareto_front_size",
    "test_metric",
    "test_value",
    "ensemble",
    "ensemble_value",
    "ensemble_test_value",
    "baseline",
    "baseline_value",
    "wall_seconds",
    "trials_per_minute",
    "date",
    "versions",
)


Directions = str | Sequence[str]
"""A study's direction ("min" or "max"), or one per objective of a multi-objective study."""


def rank_complete(records: Iterable[TrialRecord], directions: Directions) -> list[TrialRecord]:
    """Completed trials, best first (ties broken by the earlier trial). With several
    objectives: by Pareto front, then by the first objective within a front."""
    directions = (directions,) if isinstance(directions, str) else tuple(directions)
    complete = [r for r in records if r.state == COMPLETE and r.value is not None]
    sign = 1 if directions[0] == "min" else -1
    fronts = pareto_fronts(complete, directions) if len(directions) > 1 else {}
    return sorted(
        complete,
        key=lambda r: (fronts.get(r.number, 1), sign * float(r.value or 0.0), r.number),
    )


def best_value(records: Iterable[TrialRecord], directions: Directions) -> float | None:
    """The first value :func:`rank_complete` would rank, without sorting: the best of the
    first objective (always on the first Pareto front), as a ledger counted it."""
    return counted(records).best(directions if isinstance(directions, str) else directions[0])


def pareto_fronts(records: Iterable[TrialRecord], directions: Sequence[str]) -> dict[int, int]:
    """Each complete trial's Pareto front: 1 for the non-dominated trials, 2 for those only
    the first front dominates, and so on (non-dominated sorting over ``values``)."""
    signs = [1.0 if d == "min" else -1.0 for d in directions]
    points = {
        r.number: [s * v for s, v in zip(signs, r.values, strict=True)]
        for r in records
        if r.state == COMPLETE and r.values is not None
    }

    def dominates(a: list[float], b: list[float]) -> bool:
        return all(x <= y for x, y in zip(a, b, strict=True)) and a != b

    fronts: dict[int, int] = {}
    left = dict(points)
    front = 1
    while left:
        layer = [n for n, p in left.items() if not any(dominates(q, p) for q in left.values())]
        for number in layer:
            fronts[number] = front
            del left[number]
        front += 1
    return fronts


def front_size(records: Iterable[TrialRecord], directions: Directions) -> int | None:
    """How many trials are on the Pareto front; None for a single objective."""
    if isinstance(directions, str) or len(directions) < 2:
        return None
    return sum(front == 1 for front in pareto_fronts(records, directions).values())


def trial_table(
    records: list[TrialRecord],
    scores: dict[int, dict[str, float]],
    directions: Directions,
    metrics: Iterable[str],
    weights: dict[int, float] | None = None,
) -> pd.DataFrame:
    """One row per trial: rank (completed trials only), metrics, hyperparameters, timing;
    with several objectives, the Pareto front of each complete trial after its rank; with
    an ensemble's ``weights`` (by trial), each trial's weight in it after its test metrics
    (0 for the others)."""
    ranks = {r.number: i + 1 for i, r in enumerate(rank_complete(records, directions))}
    several = not isinstance(directions, str) and len(directions) > 1
    fronts = pareto_fronts(records, directions) if several else {}
    metrics = list(metrics)
    params: list[str] = []
    for record in records:
        params += [name for name in record.params if name not in params]
    fixed = {
        *TRIAL_COLUMNS_HEAD,
        PARETO_COLUMN,
        ENSEMBLE_WEIGHT_COLUMN,
        *TRIAL_COLUMNS_TAIL,
        *(f"{split}_{m}" for split in ("val", "test") for m in metrics),
    }
    # A hyperparameter named like one of the harness's columns (a space may tune "epochs")
    # gets an "hp_" prefix rather than overwriting it.
    column_of = {name: f"hp_{name}" if name in fixed else name for name in params}
    # A simulated clock's trials (a tabular task's) show their real seconds beside the
    # charged ones.
    simulated = any(record.wall_seconds is not None for record in records)
    rows = []
    for record in records:
        row: dict[str, Any] = {"rank": ranks.get(record.number)}
        if several:
            row[PARETO_COLUMN] = fronts.get(record.number)
        row.update(trial=record.number, state=record.state, value=record.value)
        for metric in metrics:
            row[f"val_{metric}"] = record.metrics.get(f"val_{metric}")
        for metric in metrics:
            row[f"test_{metric}"] = scores.get(record.number, {}).get(metric)
        if weights is not None:
            row[ENSEMBLE_WEIGHT_COLUMN] = weights.get(record.number, 0.0)
        for name in params:
            row[column_of[name]] = record.params.get(name)
        row.update(
            epochs=record.epochs,
            best_epoch=record.best_epoch,
            params=record.n_params,
            seconds=record.seconds,
            seed=record.seed,
            error=record.error,
        )
        if simulated:
            row[WALL_SECONDS_COLUMN] = record.wall_seconds
        rows.append(row)
    columns = [
        *TRIAL_COLUMNS_HEAD[:1],
        *([PARETO_COLUMN] if several else []),
        *TRIAL_COLUMNS_HEAD[1:],
        *(f"val_{m}" for m in metrics),
        *(f"test_{m}" for m in metrics),
        *([ENSEMBLE_WEIGHT_COLUMN] if weights is not None else []),
        *column_of.values(),
        *TRIAL_COLUMNS_TAIL,
        *([WALL_SECONDS_COLUMN] if simulated else []),
    ]
    table = pd.DataFrame(rows, columns=columns)
    table["rank"] = table["rank"].astype("Int64")
    if several:
        table[PARETO_COLUMN] = table[PARETO_COLUMN].astype("Int64")
    # Integer columns stay integers where some rows have none (a pruned trial's epochs, a
    # hyperparameter of an inactive layer): pandas would read 128 back as 128.0.
    integers = [name for name in params if _integral(r.params.get(name) for r in records)]
    for column in ("epochs", "best_epoch", "params", "seed", *(column_of[n] for n in integers)):
        table[column] = table[column].astype("Int64")
    return table.sort_values(["rank", "trial"], na_position="last")


def ensemble_weights(ensemble: dict[str, Any] | None) -> dict[int, float] | None:
    """Each member trial's weight in the ensemble ``study.json`` describes (None: none)."""
    if ensemble is None:
        return None
    return {member["trial"]: member["weight"] for member in ensemble["members"]}


def _integral(values: Iterable[Any]) -> bool:
    """Whether every value given is an int (booleans are not), and there is one."""
    given = [v for v in values if v is not None]
    return bool(given) and all(isinstance(v, int) and not isinstance(v, bool) for v in given)


def write_csv(table: pd.DataFrame, path: Path) -> None:
    write_text(path, table.to_csv(index=False))


def study_table(out: Path) -> pd.DataFrame:
    """One row per study under ``out``, from the summaries in their ``study.json``."""
    rows = []
    for path in study_files(out):
        try:
            summary = read_json(path).get("summary")
        except FileNotFoundError:
            continue  # set aside (--fresh) by another process since it was listed
        if summary:
            rows.append({column: summary.get(column) for column in STUDY_COLUMNS})
    return pd.DataFrame(rows, columns=list(STUDY_COLUMNS))


def write_study_table(out: Path) -> Path:
    path = out / STUDY_TABLE
    write_csv(study_table(out), path)
    return path
