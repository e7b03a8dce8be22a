"""Trial records -> pandas tables -> CSV files, rebuilt from the engines' storage.

``results/<task>/<study>/leaderboard.csv`` has one row per trial; ``results/leaderboard.csv``
has one row per study and is rebuilt from every study's ``study.json``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from search.engines import TrialRecord
from search.errors import SearchError
from search.files import read_json, write_json, write_text

TRIAL_COLUMNS_HEAD = ("rank", "trial", "state", "value")
TRIAL_COLUMNS_TAIL = ("epochs", "best_epoch", "params", "seconds", "seed", "error")
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
    "test_metric",
    "test_value",
    "baseline",
    "baseline_value",
    "wall_seconds",
    "trials_per_minute",
    "date",
    "versions",
)


def rank_complete(records: Iterable[TrialRecord], direction: str) -> list[TrialRecord]:
    """Completed trials, best first (ties broken by the earlier trial)."""
    complete = [r for r in records if r.state == "complete" and r.value is not None]
    sign = 1 if direction == "min" else -1
    return sorted(complete, key=lambda r: (sign * float(r.value or 0.0), r.number))


def trial_table(
    records: list[TrialRecord],
    scores: dict[int, dict[str, float]],
    direction: str,
    metrics: Iterable[str],
) -> pd.DataFrame:
    """One row per trial: rank (completed trials only), metrics, hyperparameters, timing."""
    ranks = {r.number: i + 1 for i, r in enumerate(rank_complete(records, direction))}
    metrics = list(metrics)
    params: list[str] = []
    for record in records:
        params += [name for name in record.params if name not in params]
    fixed = {
        *TRIAL_COLUMNS_HEAD,
        *TRIAL_COLUMNS_TAIL,
        *(f"{split}_{m}" for split in ("val", "test") for m in metrics),
    }
    # A hyperparameter named like one of the harness's columns (a space may tune "epochs")
    # gets an "hp_" prefix rather than overwriting it.
    column_of = {name: f"hp_{name}" if name in fixed else name for name in params}
    rows = []
    for record in records:
        row: dict[str, Any] = {
            "rank": ranks.get(record.number),
            "trial": record.number,
            "state": record.state,
            "value": record.value,
        }
        for metric in metrics:
            row[f"val_{metric}"] = record.metrics.get(f"val_{metric}")
        for metric in metrics:
            row[f"test_{metric}"] = scores.get(record.number, {}).get(metric)
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
        rows.append(row)
    columns = [
        *TRIAL_COLUMNS_HEAD,
        *(f"val_{m}" for m in metrics),
        *(f"test_{m}" for m in metrics),
        *column_of.values(),
        *TRIAL_COLUMNS_TAIL,
    ]
    table = pd.DataFrame(rows, columns=columns)
    table["rank"] = table["rank"].astype("Int64")
    for column in ("epochs", "best_epoch", "params", "seed"):
        table[column] = table[column].astype("Int64")
    return table.sort_values(["rank", "trial"], na_position="last")


def write_csv(table: pd.DataFrame, path: Path) -> None:
    write_text(path, table.to_csv(index=False))


def study_table(out: Path) -> pd.DataFrame:
    """One row per study under ``out``, from the summaries in their ``study.json``."""
    rows = []
    for path in sorted(out.glob("*/*/study.json")):
        summary = read_json(path).get("summary")
        if summary:
            rows.append({column: summary.get(column) for column in STUDY_COLUMNS})
    return pd.DataFrame(rows, columns=list(STUDY_COLUMNS))


def write_study_table(out: Path) -> Path:
    path = out / "leaderboard.csv"
    write_csv(study_table(out), path)
    return path


def rebuild(folder: Path, storage: str | None = None) -> pd.DataFrame:
    """Rebuild a study's ``leaderboard.csv`` (and its summary counts) from its engine storage.

    The storage is the study folder's journal or keras-tuner project, or the Optuna storage
    URL recorded in ``study.json``. That URL is recorded with its password masked, so a
    password-protected storage needs ``storage`` again (the URL with the password); a
    ``storage`` whose masked form is not the recorded one is not used.
    Every worker's and every host's trials are in the storage, so the table has them all.
    The test scores are kept from ``study.json`` (the run that scored them).
    """
    from search.engines import EngineConfig, open_engine
    from search.errors import SearchError
    from search.storage import mask

    data = read_json(folder / "study.json")
    config = data.get("config", {})
    recorded = config.get("storage")
    url = storage if storage and mask(storage) == recorded else recorded
    if url and "***" in url and url == recorded:
        raise SearchError(
            f"study {config.get('study')!r} lives in storage {recorded!r}; pass --storage URL "
            "(or set SEARCH_STORAGE) with its password to rebuild its leaderboard"
        )
    engine = open_engine(
        EngineConfig(
            engine=config["engine"],
            algorithm=config["algorithm"],
            pruner=config["pruner"],
            objective=config["objective"],
            direction=config["direction"],
            seed=config["seed"],
            epochs=config["epochs"],
            storage=url,
            study_name=f"{config['task']}/{config['study']}",
        ),
        None,  # keras-tuner reloads its oracle from the project folder without the space
        folder,
    )
    records = engine.records()
    scores = {int(k): v for k, v in data.get("scores", {}).items()}
    # The metrics a task of this kind reports (search.tasks), without loading its data.
    metrics = ("mse", "mae") if config.get("kind") == "regression" else ("logloss", "accuracy")
    table = trial_table(records, scores, config["direction"], metrics)
    write_csv(table, folder / "leaderboard.csv")
    summary = data.get("summary")
    if summary:
        summary.update(_counts(records, scores, config["direction"], summary.get("test_metric")))
        write_json(folder / "study.json", data)
    return table


def _counts(
    records: list[TrialRecord],
    scores: dict[int, dict[str, float]],
    direction: str,
    test_metric: str | None,
) -> dict[str, Any]:
    """The summary's counts and best trial, from the records."""
    ranked = rank_complete(records, direction)
    best = ranked[0] if ranked else None
    return {
        "trials": sum(r.state != "running" for r in records),
        "complete": sum(r.state == "complete" for r in records),
        "pruned": sum(r.state == "pruned" for r in records),
        "failed": sum(r.state == "failed" for r in records),
        "best_value": best.value if best else None,
        "best_trial": best.number if best else None,
        "test_value": scores.get(best.number, {}).get(test_metric or "") if best else None,
    }


def find_study(out: Path, task: str, study: str | None) -> Path:
    """The folder of ``study`` of ``task``, or of the task's study with the best value."""
    from search.study import study_folder  # study.py imports this module
    from search.tasks import maximised

    if study:
        folder = study_folder(out, task, study)
        if not (folder / "study.json").exists():
            raise SearchError(f"no study {study!r} of task {task!r} under {str(out)!r}")
        return folder
    table = study_table(out)
    table = table[(table["task"] == task) & table["best_value"].notna()]
    if table.empty:
        raise SearchError(
            f"no finished study of task {task!r} under {str(out)!r}; "
            f"run 'python -m search {task}' first"
        )
    # The best study by its own direction: a maximised objective counts negated.
    higher = table["objective"].astype(str).map(maximised).astype(bool)
    signed = table["best_value"].astype(float).where(~higher, -table["best_value"])
    best = table.assign(signed=signed).sort_values("signed", kind="stable")["study"].iloc[0]
    return study_folder(out, task, str(best))
