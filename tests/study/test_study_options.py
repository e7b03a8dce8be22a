"""What keras-tuner and Optuna users ask for: warm starts, time budgets and size limits.

Each runs on both engines, through the CLI and through the Python API.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest
from conftest import call_cli, describe, run_main

import search
from search.errors import SearchError

pytestmark = pytest.mark.slow

ENGINES = {"optuna": "tpe", "keras-tuner": "random"}
# The linear space at the settings the normal equation's line is reached with.
SGD = {
    "optimizer": "sgd",
    "learning_rate": 0.01,
    "clipnorm": 0.0,
    "batch_size": 32,
    "l1": 1e-6,
    "l2": 1e-6,
}
QUICK = ["--cv", "1", "--top-k", "1", "--ensemble", "1", "--ensemble-size", "0", "--no-tensorboard"]


def leaderboard(out: Path, task: str, study: str) -> pd.DataFrame:
    return pd.read_csv(out / task / study / "leaderboard.csv")


def summary(out: Path, task: str, study: str) -> dict:
    return json.loads((out / task / study / "study.json").read_text())["summary"]


@pytest.mark.parametrize("engine", list(ENGINES))
def test_enqueue_makes_trial_0_that_configuration(tmp_path: Path, engine: str) -> None:
    file = tmp_path / "start.json"
    file.write_text(json.dumps([SGD]), encoding="utf-8")
    args = ["boston", "--space", "linear", "--engine", engine, "--epochs", "3", *QUICK]
    assert run_main([*args, "--trials", "2", "--enqueue", file, "--out", tmp_path]) == 0
    study = f"linear-{engine}-{ENGINES[engine]}"
    table = leaderboard(tmp_path, "boston", study).set_index("trial")
    assert {k: table.loc[0, k] for k in SGD} == pytest.approx(SGD)
    # A resumed study with the same --enqueue does not try it again.
    assert run_main([*args, "--trials", "4", "--enqueue", file, "--out", tmp_path]) == 0
    table = leaderboard(tmp_path, "boston", study)
    assert len(table) == 4
    assert (table["optimizer"] == "sgd").sum() == 1 + (
        table[table["trial"] > 0]["optimizer"] == "sgd"
    ).sum()
    same = table[(table["optimizer"] == "sgd") & (table["l1"] == 1e-6) & (table["l2"] == 1e-6)]
    assert list(same["trial"]) == [0]


@pytest.mark.parametrize("engine", list(ENGINES))
def test_a_leaderboard_and_another_study_warm_start_a_study(tmp_path: Path, engine: str) -> None:
    args = ["boston", "--space", "mlp", "--engine", engine, "--epochs", "2", *QUICK]
    assert run_main([*args, "--trials", "4", "--study", "first", "--out", tmp_path]) == 0
    first = leaderboard(tmp_path, "boston", "first")
    source = tmp_path / "boston" / "first" / "leaderboard.csv"
    assert (
        run_main([*args, "--trials", "5", "--study", "csv", "--enqueue", source, "--out", tmp_path])
        == 0
    )
    again = leaderboard(tmp_path, "boston", "csv").set_index("trial")
    params = ["layers", "units_0", "activation", "optimizer", "batch_size", "learning_rate"]
    # The file's rows (best first, as a leaderboard is ordered) are the first trials.
    for position, (_, row) in enumerate(first.iterrows()):
        assert again.loc[position, params].tolist() == row[params].tolist()
    top_k = ["--top-k", "2"]
    assert (
        run_main(
            [
                *args,
                *top_k,
                "--trials",
                "3",
                "--study",
                "warm",
                "--warm-start",
                "first",
                "--out",
                tmp_path,
            ]
        )
        == 0
    )
    warm = leaderboard(tmp_path, "boston", "warm").set_index("trial")
    best = first.sort_values("rank").head(2)
    for position, (_, row) in enumerate(best.iterrows()):
        assert warm.loc[position, params].tolist() == row[params].tolist()


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({**SGD, "depth": 3}, "row 1: unknown hyperparameter 'depth'"),
        ({**SGD, "learning_rate": 5.0}, "row 1: learning_rate=5.0 is outside [0.0001, 0.1]"),
        ({k: v for k, v in SGD.items() if k != "l2"}, "row 1: 'l2' is missing"),
        ({**SGD, "optimizer": "adagrad"}, "row 1: optimizer='adagrad' is outside the choices"),
    ],
)
def test_a_bad_configuration_is_one_line_and_writes_nothing(
    tmp_path: Path, row: dict, message: str
) -> None:
    file = tmp_path / "start.json"
    file.write_text(json.dumps([row]), encoding="utf-8")
    proc = call_cli(["boston", "--space", "linear", "--enqueue", file, "--out", tmp_path / "out"])
    assert proc.returncode == 2, describe(proc)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], describe(proc)
    assert not (tmp_path / "out").exists()
    study = search.Study("boston", "linear", out=tmp_path / "api")
    with pytest.raises(SearchError, match=re.escape(message)):
        study.enqueue([row])


def test_a_leaderboard_row_is_read_back_as_its_hyperparameters(tmp_path: Path) -> None:
    """A Pareto search's leaderboard row: its own columns are not hyperparameters."""
    study = search.Study("boston", "linear", out=tmp_path)
    row = {**SGD, "rank": 1, "pareto_front": 1, "trial": 4, "val_mse": 3.0, "test_mae": 2.0}
    study.enqueue([row | {"seconds": 1.5, "error": "", "params": 14}])
    assert study.config.enqueue == (SGD,)


def test_the_api_enqueues_and_keras_tuner_hyperband_refuses(tmp_path: Path) -> None:
    study = search.Study("boston", "linear", out=tmp_path, epochs=2, cv=1, top_k=0)
    study.enqueue([SGD])
    result = study.run(trials=2, progress=False)
    first = next(r for r in result.records if r.number == 0)
    assert first.params == pytest.approx(SGD)
    hyperband = search.Study(
        "boston", "linear", engine="keras-tuner", algorithm="hyperband", out=tmp_path
    )
    with pytest.raises(SearchError, match="not for keras-tuner's hyperband"):
        hyperband.enqueue([SGD])


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("engine", list(ENGINES))
def test_a_time_budget_stops_the_study(tmp_path: Path, engine: str, workers: int) -> None:
    args = ["boston", "--space", "mlp", "--engine", engine, *QUICK, "--epochs", "30"]
    args += ["--workers", str(workers)]
    study = f"mlp-{engine}-{ENGINES[engine]}"
    # The budget is measured in this machine's time, not in fixed seconds: a one-trial
    # study with the same settings (its workers' start-up included) takes `once` here, now;
    # half as long again leaves each worker room to start a second trial.
    warm = call_cli([*args, "--trials", "1", "--out", tmp_path / "once"])
    assert warm.returncode == 0, describe(warm)
    once = summary(tmp_path / "once", "boston", study)["wall_seconds"]
    budget = math.ceil(1.5 * once) + 1
    proc = call_cli([*args, "--trials", "100000", "--time-budget", budget, "--out", tmp_path])
    assert proc.returncode == 0, describe(proc)
    ended = summary(tmp_path, "boston", study)
    table = leaderboard(tmp_path, "boston", study)
    assert ended["ended_by"] == "time budget"
    assert ended["trials"] == len(table) >= 2
    # Once the budget is spent no trial starts: the search's wall time is the budget, then
    # at most the trials already running (one per worker) and their bookkeeping, which the
    # one-trial study's time bounds (its workers' start-up and end too).
    longest = table["seconds"].max()
    assert ended["wall_seconds"] <= budget + longest + once, ended
    assert "time budget" in proc.stdout


def test_the_api_takes_a_timeout(tmp_path: Path) -> None:
    study = search.Study("boston", "linear", out=tmp_path, epochs=20, cv=1, top_k=0)
    result = study.run(trials=100000, timeout=3, progress=False)
    assert result.summary["ended_by"] == "time budget"
    assert result.summary["wall_seconds"] < 3 + max(r.seconds or 0 for r in result.records) + 5


@pytest.mark.parametrize("engine", list(ENGINES))
def test_max_params_skips_training_of_larger_models(tmp_path: Path, engine: str) -> None:
    limit = 3000
    args = ["boston", "--space", "mlp", "--engine", engine, "--epochs", "3", "--seed", "2"]
    args += ["--trials", "10", "--max-params", str(limit), "--cv", "1", "--top-k", "1"]
    assert run_main([*args, "--ensemble", "1", "--out", tmp_path]) == 0
    study = f"mlp-{engine}-{ENGINES[engine]}"
    table = leaderboard(tmp_path, "boston", study)
    large = table[table["error"].fillna("").str.startswith("not trained")]
    assert len(large) >= 1 and (large["params"] > limit).all()
    # Not trained: no epoch ran, no TensorBoard curve was written (its HParams row is).
    assert large["epochs"].isna().all()
    for number in large["trial"]:
        run = tmp_path / "boston" / study / "tensorboard" / f"trial_{number:04d}"
        assert run.exists() and not (run / "validation").exists()
    assert set(large["state"]) == {"pruned" if engine == "optuna" else "failed"}
    trained = table[table["state"] == "complete"]
    assert len(trained) >= 1 and (trained["params"] <= limit).all()
    api = search.Study(
        "boston",
        "mlp",
        engine=engine,
        out=tmp_path / "api",
        epochs=2,
        cv=1,
        top_k=0,
        max_params=limit,
        seed=2,
    )
    records = api.run(trials=6, progress=False).records
    assert all((r.n_params or 0) <= limit for r in records if r.state == "complete")
    with pytest.raises(SearchError, match="max_params must be a positive integer"):
        search.Study("boston", "mlp", out=tmp_path, max_params=0)


def test_two_objectives_make_a_pareto_search(tmp_path: Path) -> None:
    args = ["boston", "--space", "mlp", "--objective", "val_mse,params", "--algorithm", "nsga2"]
    args += ["--trials", "12", "--epochs", "5", "--cv", "1", "--top-k", "2", "--ensemble", "1"]
    assert run_main([*args, "--out", tmp_path]) == 0
    study = "mlp-optuna-nsga2"
    table = leaderboard(tmp_path, "boston", study)
    complete = table[table["state"] == "complete"]
    # Ordered by front, then by the first objective; a trial's front is below every trial
    # that it dominates.
    keys = list(zip(complete["pareto_front"], complete["value"], strict=True))
    assert keys == sorted(keys)
    points = complete[["trial", "pareto_front", "value", "params"]].to_dict("records")
    for a in points:
        for b in points:
            better = a["value"] <= b["value"] and a["params"] <= b["params"]
            if better and (a["value"], a["params"]) != (b["value"], b["params"]):
                assert a["pareto_front"] < b["pareto_front"], (a, b)
    front = (complete["pareto_front"] == 1).sum()
    studies = pd.read_csv(tmp_path / "leaderboard.csv")
    assert studies.loc[0, "pareto_front_size"] == front
    # best.keras is the front's member with the best first objective: rank 1.
    best = summary(tmp_path, "boston", study)["best_trial"]
    assert best == complete.iloc[0]["trial"] and complete.iloc[0]["pareto_front"] == 1
    assert run_main(["report", "boston", "--study", study, "--out", tmp_path]) == 0
    assert (tmp_path / "boston" / study / "report" / "pareto.png").stat().st_size > 1000
    from search.results.tensorboard import read_experiment

    experiment = read_experiment(tmp_path / "boston" / study / "tensorboard")
    names = {m.name.tag for m in experiment.metric_infos}
    assert {"val_mse", "params"} <= names


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--engine", "keras-tuner"], "keras-tuner's MultiObjective sums the objectives"),
        (["--pruner", "median"], "cannot prune a search of several objectives"),
        (["--algorithm", "cmaes"], "algorithm 'cmaes' searches one objective"),
    ],
)
def test_several_objectives_are_refused_where_they_cannot_be_searched(
    tmp_path: Path, extra: list[str], message: str
) -> None:
    args = ["boston", "--space", "mlp", "--objective", "val_mse,params", *extra]
    proc = call_cli([*args, "--out", tmp_path / "out"])
    assert proc.returncode == 2, describe(proc)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], describe(proc)
    assert not (tmp_path / "out").exists()


def test_the_api_takes_a_list_of_objectives(tmp_path: Path) -> None:
    study = search.Study(
        "boston",
        "linear",
        objective=["val_mse", "seconds"],
        algorithm="nsga3",
        out=tmp_path,
        epochs=3,
        cv=1,
        top_k=1,
        ensemble=1,
    )
    result = study.run(trials=6, progress=False)
    assert all(len(r.values or ()) == 2 for r in result.records if r.state == "complete")
    assert "pareto_front" in result.leaderboard.columns
    with pytest.raises(SearchError, match="the first objective must be a validation metric"):
        search.Study("boston", "linear", objective="params,val_mse", out=tmp_path)
