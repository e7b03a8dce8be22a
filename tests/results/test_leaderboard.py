"""The leaderboards a real tiny study writes: columns, ranks, empty cells, scores, files.

The shared boston/mlp studies (conftest) have 3 trials of 2 epochs (with different numbers
of hidden layers), the top 2 scored on the test split; each test runs against both engines.
"""

from __future__ import annotations

import math
import re
import tempfile
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import STUDY_SEED, Study, read_curves, tiny_run
from spaces_fixtures import COLLIDING, SOFTMAX, write_space

from search.layout import study_files
from search.results.leaderboard import STUDY_COLUMNS
from search.tasks import load_task

HEAD = ["rank", "trial", "state", "value"]
TAIL = ["epochs", "best_epoch", "params", "seconds", "seed", "error"]
TOP_K = 2
MLP_ALWAYS = {"layers", "activation", "l2", "batch_size", "optimizer", "learning_rate", "clipnorm"}


@pytest.fixture(scope="module", params=["optuna", "keras-tuner"])
def study(request: pytest.FixtureRequest) -> Study:
    name = {"optuna": "boston_study", "keras-tuner": "boston_kt_study"}[request.param]
    found: Study = request.getfixturevalue(name)
    return found


@pytest.fixture(scope="module")
def metrics() -> tuple[str, ...]:
    return load_task("boston").metrics


def hyperparameter_columns(table: pd.DataFrame, metrics: tuple[str, ...]) -> list[str]:
    # The shared studies select an ensemble (the default): its weights follow the metrics.
    head = len(HEAD) + 2 * len(metrics) + 1
    return list(table.columns[head : len(table.columns) - len(TAIL)])


def test_trial_columns_in_order(study: Study, metrics: tuple[str, ...]) -> None:
    table = study.trials()
    header = (study.folder / "leaderboard.csv").read_text(encoding="utf-8").splitlines()[0]
    columns = header.split(",")
    assert columns[: len(HEAD)] == HEAD
    assert columns[len(HEAD) : len(HEAD) + 2 * len(metrics) + 1] == [
        *(f"val_{m}" for m in metrics),
        *(f"test_{m}" for m in metrics),
        "ensemble_weight",
    ]
    assert columns[-len(TAIL) :] == TAIL
    assert len(set(columns)) == len(columns), "one column per name"
    layers_used = int(table["layers"].max())
    expected = MLP_ALWAYS | {
        f"{kind}_{i}" for i in range(layers_used) for kind in ("units", "dropout")
    }
    assert set(hyperparameter_columns(table, metrics)) == expected


def test_ranks_are_1_to_n_over_complete_trials_by_value(study: Study) -> None:
    table = study.trials()
    complete = table[table["state"] == "complete"]
    assert len(complete) == 3
    ranked = complete.sort_values("rank")
    assert list(ranked["rank"]) == list(range(1, len(complete) + 1))
    assert ranked["value"].is_monotonic_increasing, "val_mse is minimised: best value first"
    assert table[table["state"] != "complete"]["rank"].isna().all()
    assert list(table["rank"].dropna()) == sorted(table["rank"].dropna()), "sorted by rank"
    # The objective is val_mse: the value is the validation mse at the best epoch.
    np.testing.assert_allclose(complete["value"], complete["val_mse"], rtol=1e-6)


def test_inactive_conditional_hyperparameters_are_empty(study: Study) -> None:
    table = study.trials()
    assert (table["layers"] < 3).any(), "some trial must leave a layer's parameters unused"
    empty_cells = 0
    for _, row in table.iterrows():
        for i in range(3):
            for kind in ("units", "dropout"):
                column = f"{kind}_{i}"
                value = row.get(column, math.nan)  # no column: no trial used that layer
                if i < row["layers"]:
                    assert not pd.isna(value), f"trial {row['trial']}: {column} is used"
                else:
                    assert pd.isna(value), f"trial {row['trial']}: {column} is inactive"
                    empty_cells += column in table.columns
    assert empty_cells > 0


def test_test_metrics_only_for_the_top_k(study: Study, metrics: tuple[str, ...]) -> None:
    table = study.trials()
    for _, row in table.iterrows():
        scored = not pd.isna(row["rank"]) and row["rank"] <= TOP_K
        for metric in metrics:
            assert pd.isna(row[f"test_{metric}"]) != scored, (row["trial"], metric)
    assert table["test_mse"].notna().sum() == TOP_K


def mlp_params(n_features: int, units: list[int]) -> int:
    """Weights of Dense layers n_features -> units... -> 1."""
    sizes = [n_features, *units, 1]
    return sum(a * b + b for a, b in zip(sizes, sizes[1:], strict=False))


def test_trial_bookkeeping_columns(study: Study) -> None:
    table = study.trials()
    n_features = load_task("boston").spec.n_features
    for _, row in table.iterrows():
        assert 1 <= row["best_epoch"] <= row["epochs"] <= 2
        units = [int(row[f"units_{i}"]) for i in range(int(row["layers"]))]
        assert row["params"] == mlp_params(n_features, units)
        assert row["seconds"] > 0
        assert pd.isna(row["error"])
    assert table["seed"].is_unique, "every trial has its own seed"
    assert table["seed"].notna().all()


def test_value_is_the_best_epoch_of_the_validation_curve(study: Study) -> None:
    table = study.trials()
    for _, row in table.iterrows():
        curves = read_curves(
            study.folder / "tensorboard" / f"trial_{row['trial']:04d}" / "validation"
        )
        curve = curves["epoch_mse"]
        assert len(curve) == row["epochs"]
        assert math.isclose(row["value"], min(curve), rel_tol=1e-6)
        assert row["best_epoch"] == int(np.argmin(curve)) + 1


def test_the_studies_are_listed_while_other_processes_probe_the_folder(tmp_path: Path) -> None:
    """Bench jobs list the results folder (for its leaderboard.csv) while others probe it
    for writing with a folder made and removed at once (a bench of 3,750 studies crashed on
    one that vanished mid-listing): the listing never fails, and holds the studies alone,
    not the trash."""
    found = []
    for task, name in [("boston", "a"), ("boston", "b"), ("diabetes", "a")]:
        (tmp_path / task / name).mkdir(parents=True)
        found.append(tmp_path / task / name / "study.json")
        found[-1].write_text("{}", encoding="utf-8")
    (tmp_path / ".trash" / "boston" / "a-1").mkdir(parents=True)
    (tmp_path / ".trash" / "boston" / "a-1" / "study.json").write_text("{}", encoding="utf-8")
    stop = threading.Event()

    def probe(folder: Path) -> None:
        while not stop.is_set():
            tempfile.TemporaryDirectory(dir=folder, prefix=".search-probe-").cleanup()

    probes = [threading.Thread(target=probe, args=(f,)) for f in (tmp_path, tmp_path / "boston")]
    for thread in probes:
        thread.start()
    try:
        for _ in range(500):
            assert study_files(tmp_path) == sorted(found)
    finally:
        stop.set()
        for thread in probes:
            thread.join()
    assert study_files(tmp_path, "boston") == sorted(found[:2])
    assert study_files(tmp_path, "no-such-task") == []


def test_study_table(study: Study) -> None:
    studies = study.studies()
    assert list(studies.columns) == list(STUDY_COLUMNS)
    assert len(studies) == 1
    row = studies.iloc[0]
    trials = study.trials()
    best = trials[trials["rank"] == 1].iloc[0]
    assert (row["task"], row["study"], row["space"]) == ("boston", study.study, "mlp")
    assert (row["trials"], row["complete"], row["pruned"], row["failed"]) == (3, 3, 0, 0)
    assert row["best_trial"] == best["trial"]
    assert math.isclose(row["best_value"], best["value"], rel_tol=1e-9)
    assert row["test_metric"] == "mse"
    assert math.isclose(row["test_value"], best["test_mse"], rel_tol=1e-9)
    assert row["baseline"] == "normal-equation"
    assert row["objective"] == "val_mse"


def test_no_temporary_files_are_left(study: Study) -> None:
    leftovers = [path for path in study.out.rglob("*") if re.match(r"\..*\.tmp", path.name)]
    assert leftovers == []
    assert (study.folder / "best.keras").is_file()


def umask() -> int:
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    pytest.skip("the process umask cannot be read without changing it (no /proc)")


def test_result_files_get_the_usual_permissions(study: Study) -> None:
    expected = 0o666 & ~umask()
    for path in (study.folder / "leaderboard.csv", study.folder / "study.json"):
        assert path.stat().st_mode & 0o777 == expected, path
    assert (study.out / "leaderboard.csv").stat().st_mode & 0o777 == expected


# --------------------------------------------------------------------------- objectives


def test_a_maximised_objective_takes_the_best_epoch_by_its_maximum(tmp_path: Path) -> None:
    space = write_space(tmp_path / "softmax.py", SOFTMAX)
    study = tiny_run(
        tmp_path / "out",
        "digits",
        str(space),
        "optuna",
        *("--objective", "val_accuracy", "--trials", "1", "--epochs", "5", "--patience", "0"),
        *("--cv", "1"),
        *("--top-k", "0", "--seed", str(STUDY_SEED)),
    )
    row = study.trials().iloc[0]
    curve = read_curves(study.folder / "tensorboard" / "trial_0000" / "validation")[
        "epoch_accuracy"
    ]
    assert len(curve) == 5 and max(curve) > min(curve), curve
    assert math.isclose(row["value"], max(curve), rel_tol=1e-6), (row["value"], curve)
    assert row["best_epoch"] == int(np.argmax(curve)) + 1


def test_a_hyperparameter_named_like_a_column_keeps_its_values(tmp_path: Path) -> None:
    space = write_space(tmp_path / "colliding.py", COLLIDING)
    study = tiny_run(
        tmp_path / "out",
        "boston",
        str(space),
        "optuna",
        *("--trials", "2", "--epochs", "2", "--cv", "1", "--top-k", "0", "--no-tensorboard"),
    )
    path = study.folder / "leaderboard.csv"
    columns = path.read_text(encoding="utf-8").splitlines()[0].split(",")
    assert len(set(columns)) == len(columns), columns
    table = pd.read_csv(path)
    assert (table["epochs"] <= 2).all(), "the trainer's epochs column"
    assert table["hp_epochs"].isin([5, 7, 9]).all(), "the tuned values, under a prefix"
