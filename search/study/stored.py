"""Stored studies: reopen a study's engine from its folder, rebuild its tables, find it.

The engine's storage (the journal, the RDB or Redis storage, the keras-tuner project folder)
is the source of truth; ``leaderboard.csv`` and the counts in ``study.json`` are views that
:func:`rebuild` makes again from it, with every worker's and every host's trials.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from search.engines import Engine, EngineConfig, TrialRecord, open_engine
from search.engines.optuna.storage import mask
from search.engines.records import state_counts
from search.errors import SearchError
from search.files import read_json, write_json
from search.layout import BEST_MODEL, STUDY_JSON, TRIAL_TABLE, study_files, study_folder
from search.results import report
from search.results.leaderboard import (
    ensemble_weights,
    front_size,
    rank_complete,
    study_table,
    trial_table,
    write_csv,
)
from search.tasks.scoring import METRICS, maximised


def open_stored(folder: Path, storage: str | None = None) -> tuple[Engine, dict[str, Any]]:
    """The engine of the study in ``folder`` over its storage, and its ``study.json``.

    The storage is the folder's journal or keras-tuner project, or the Optuna storage URL
    recorded in ``study.json``. That URL is recorded with its password masked, so a
    password-protected storage needs ``storage`` again (the URL with the password); a
    ``storage`` whose masked form is not the recorded one is not used.
    """
    data = read_json(folder / STUDY_JSON)
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
            directions=tuple(config.get("directions") or ()) if _several(config) else (),
            objectives=tuple(config.get("objectives") or ()) if _several(config) else (),
            seed=config["seed"],
            epochs=config["epochs"],
            storage=url,
            study_name=f"{config['task']}/{config['study']}",
        ),
        None,  # keras-tuner reloads its oracle from the project folder without the space
        folder,
    )
    return engine, data


def _several(config: dict[str, Any]) -> bool:
    """Whether a stored study searched several objectives (a Pareto search)."""
    return len(config.get("objectives") or ()) > 1


def rebuild(folder: Path, storage: str | None = None) -> pd.DataFrame:
    """Rebuild a study's ``leaderboard.csv`` (and its summary counts) from its storage.

    The test scores are kept from ``study.json`` (the run that scored them).
    """
    engine, data = open_stored(folder, storage)
    config = data["config"]
    records = engine.records()
    scores = {int(k): v for k, v in data.get("scores", {}).items()}
    directions = tuple(config.get("directions") or (config["direction"],))
    weights = ensemble_weights(data.get("ensemble"))
    table = trial_table(records, scores, directions, METRICS[config["kind"]], weights)
    write_csv(table, folder / TRIAL_TABLE)
    summary = data.get("summary")
    if summary:
        summary.update(summary_counts(records, scores, directions, summary.get("test_metric")))
        write_json(folder / STUDY_JSON, data)
    return table


def rebuild_all(out: Path, task: str | None, storage: str | None) -> list[str]:
    """Rebuild the trial table of every finished study under ``out`` (of ``task``); returns
    a note for each study that could not be rebuilt (its table stays as last written)."""
    notes = []
    folders = [p.parent for p in study_files(out, task)]
    for folder in [f for f in folders if read_json(f / STUDY_JSON).get("summary")]:
        try:
            rebuild(folder, storage)
        except (SearchError, OSError, KeyError) as error:
            notes.append(
                f"{folder.parent.name}/{folder.name}: {error}; its table is the one written "
                "by its last run"
            )
    return notes


def render_report(folder: Path) -> list[Path]:
    """The study in ``folder`` as PNG plots and an HTML page (:func:`report.render`)."""
    config = read_json(folder / STUDY_JSON)["config"]
    if config.get("storage"):
        raise SearchError(
            f"study {config['study']!r} lives in a shared storage ({config['storage']}); "
            "the report reads studies kept in their folder only"
        )
    engine, _ = open_stored(folder)
    return report.render(folder, engine.records(), config)


def summary_counts(
    records: list[TrialRecord],
    scores: dict[int, dict[str, float]],
    directions: tuple[str, ...],
    test_metric: str | None,
) -> dict[str, Any]:
    """The part of a study's summary that its records (and test scores) decide: the counts
    of trials by state, the best trial, the Pareto front's size, and the best trial's
    ``test_metric``."""
    ranked = rank_complete(records, directions)
    best = ranked[0] if ranked else None
    return {
        **state_counts(records),
        "best_value": best.value if best else None,
        "best_trial": best.number if best else None,
        "pareto_front_size": front_size(records, directions),
        "test_metric": test_metric,
        "test_value": scores.get(best.number, {}).get(test_metric or "") if best else None,
    }


def find_study(out: Path, task: str, study: str | None) -> Path:
    """The folder of ``study`` of ``task``, or of the task's study with the best value."""
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


def predict(folder: Path, data: str | Path) -> pd.DataFrame:
    """The predictions of the study's best model on the feature columns of a CSV file:
    ``prediction`` (a value or a class name) and, for classifiers, the probabilities."""
    import keras  # loaded here: finding a study and reading its files need no Keras
    import numpy as np

    from search.tasks.frames import read_features

    model_path = folder / BEST_MODEL
    config = read_json(folder / STUDY_JSON)["config"]
    if config.get("trainer") == "lookup":
        raise SearchError(
            f"{config['task']} is a tabular benchmark: its trials were looked up in a table, "
            "and no model was trained to predict with"
        )
    if not model_path.exists():
        raise SearchError(f"no best model at {model_path}; run the study first")
    x = read_features(data, tuple(config["features"]))
    model = keras.saving.load_model(model_path, safe_mode=True)
    predictions = np.asarray(model.predict(x, verbose=0))
    kind, classes = config["kind"], config.get("classes", [])
    if kind == "regression":
        return pd.DataFrame({"prediction": predictions.reshape(-1)})
    if kind == "binary":
        probability = predictions.reshape(-1)
        labels = np.asarray(classes or ["0", "1"])[(probability > 0.5).astype(int)]
        return pd.DataFrame({"prediction": labels, "probability": probability})
    names = classes or [str(i) for i in range(predictions.shape[1])]
    frame = pd.DataFrame(predictions, columns=[f"probability_{name}" for name in names])
    frame.insert(0, "prediction", np.asarray(names)[predictions.argmax(axis=1)])
    return frame
