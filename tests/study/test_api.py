"""The Python API: the README's example as written, against the CLI; callbacks; bad input.

The README's first Python block is run as it stands (a task from arrays, one from a
DataFrame, a Space class defined in the block itself); its leaderboards must equal those of
the equivalent CLI commands with the same seed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import cli_env, readme_blocks, run_main
from spaces_fixtures import WIDE, write_space

import search
from search.errors import SearchError

pytestmark = pytest.mark.slow


def comparable(table: pd.DataFrame) -> pd.DataFrame:
    """A leaderboard without what differs between two runs of one study: the seconds."""
    return table.drop(columns=["seconds"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def readme(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The namespace the README's example leaves, run in an empty folder."""
    folder = tmp_path_factory.mktemp("readme")
    namespace: dict[str, Any] = {}
    here = Path.cwd()
    os.chdir(folder)
    try:
        exec(compile(readme_blocks()[0], "README.md", "exec"), namespace)  # noqa: S102
    finally:
        os.chdir(here)
    namespace["folder"] = folder
    return namespace


def test_the_readme_example_runs_and_matches_the_cli(
    readme: dict[str, Any], tmp_path: Path
) -> None:
    result = readme["result"]
    table = result.leaderboard
    assert len(table) == 10 and table["rank"].iloc[0] == 1
    assert result.best_params == {k: v for k, v in table.iloc[0].items() if k in result.best_params}
    # Integer hyperparameters stay integers in the DataFrame and the CSV.
    assert str(table["units"].dtype) == "Int64"
    # out="results" is relative to the folder the example ran in.
    written = pd.read_csv(readme["folder"] / result.folder / "leaderboard.csv")
    assert str(written["units"].dtype) == "int64"
    model = readme["model"]
    boston = readme["boston"]
    assert model.predict(boston.x_test[:3], verbose=0).shape == (3, 1)
    assert type(result.study).__name__ == "Study"  # optuna's

    space = write_space(tmp_path / "wide.py", WIDE)
    args = ["boston", "--space", space, "--epochs", "30", "--trials", "10", "--cv", "1"]
    assert run_main([*args, "--out", tmp_path / "cli"]) == 0
    cli = pd.read_csv(tmp_path / "cli" / "boston" / "wide-optuna-tpe" / "leaderboard.csv")
    pd.testing.assert_frame_equal(comparable(written), comparable(cli))


def test_the_best_model_loads_without_a_warning(
    readme: dict[str, Any], capfd: pytest.CaptureFixture[str]
) -> None:
    capfd.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = readme["result"].best_model()
        predictions = model.predict(readme["boston"].x_test[:5], verbose=0)
    assert predictions.shape == (5, 1)
    shown = [str(w.message) for w in caught if not issubclass(w.category, DeprecationWarning)]
    assert shown == []
    assert capfd.readouterr().err == ""


def test_a_dataframe_task_matches_the_csv_task(readme: dict[str, Any], tmp_path: Path) -> None:
    frame, task = readme["frame"], readme["task_from_frame"]
    assert task.spec.kind == "regression" and task.spec.feature_names[-1] == "LSTAT"
    options = {"epochs": 5, "cv": 1, "top_k": 1, "ensemble": 1, "seed": 4}
    result = search.Study(task, readme["Wide"], out=tmp_path / "api", **options).run(
        trials=3, progress=False
    )
    data = tmp_path / "boston.csv"
    frame.to_csv(data, index=False)
    args = ["csv", "--data", data, "--target", "price", "--space", tmp_path / "wide.py"]
    write_space(tmp_path / "wide.py", WIDE)
    args += ["--epochs", "5", "--cv", "1", "--top-k", "1", "--ensemble", "1", "--seed", "4"]
    assert run_main([*args, "--trials", "3", "--out", tmp_path / "cli"]) == 0
    cli = pd.read_csv(tmp_path / "cli" / "csv" / "wide-optuna-tpe" / "leaderboard.csv")
    api = pd.read_csv(result.folder / "leaderboard.csv")
    pd.testing.assert_frame_equal(comparable(api), comparable(cli))


@pytest.mark.parametrize("engine", ["optuna", "keras-tuner"])
def test_mlflow_logs_every_trial(readme: dict[str, Any], tmp_path: Path, engine: str) -> None:
    """optuna-integration's MLflowCallback, unchanged, on a local MLflow store."""
    mlflow = pytest.importorskip("mlflow")
    from optuna_integration.mlflow import MLflowCallback

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    study = search.Study(
        readme["task"], readme["Wide"], engine=engine, out=tmp_path, epochs=3, top_k=1, ensemble=1
    )
    result = study.run(trials=3, callbacks=[MLflowCallback(uri, metric_name="val_mse")])
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name(f"arrays/{study.name}")
    runs = client.search_runs([experiment.experiment_id])
    by_number = {int(run.data.tags["number"]): run for run in runs}
    assert sorted(by_number) == [r.number for r in result.records] == [0, 1, 2]
    for record in result.records:
        run = by_number[record.number]
        assert run.data.metrics["val_mse"] == pytest.approx(record.value)
        assert run.data.params["units"] == str(record.params["units"])
        assert run.data.tags["state"] == "COMPLETE"


def test_a_resumed_study_announces_only_its_new_trials(
    readme: dict[str, Any], tmp_path: Path
) -> None:
    study = search.Study(readme["task"], readme["Wide"], out=tmp_path, epochs=2, top_k=0)
    seen: list[int] = []
    study.run(trials=2, callbacks=[lambda s, t: seen.append(t.number)], progress=False)
    study.run(trials=4, callbacks=[lambda s, t: seen.append(t.number)], progress=False)
    assert seen == [0, 1, 2, 3]


def test_trials_run_with_older_objects_frozen_and_thawed_after(
    readme: dict[str, Any], tmp_path: Path
) -> None:
    """The garbage collector leaves what existed before the trials alone while they run
    (a full collection walks every Keras object), and has it all back after; a caller's own
    gc.freeze is left as it was."""
    import gc

    study = search.Study(readme["task"], readme["Wide"], out=tmp_path, epochs=2, top_k=0)
    during: list[int] = []
    study.run(trials=2, callbacks=[lambda s, t: during.append(gc.get_freeze_count())])
    assert len(during) == 2 and min(during) > 0
    assert gc.get_freeze_count() == 0
    gc.freeze()
    try:
        held = gc.get_freeze_count()
        study.run(trials=3, callbacks=[lambda s, t: during.append(gc.get_freeze_count())])
        # Frozen objects still die by their reference counts: at most the caller's remain.
        assert 0 < during[2] <= held and 0 < gc.get_freeze_count() <= held
    finally:
        gc.unfreeze()


def test_bad_input_raises_search_error_and_writes_nothing(
    readme: dict[str, Any], tmp_path: Path
) -> None:
    task, wide = readme["task"], readme["Wide"]
    cases = [
        ({"engine": "nope"}, "unknown engine 'nope'; choose one of optuna, keras-tuner"),
        ({"algorithm": "grid"}, "unknown algorithm 'grid' for optuna"),
        ({"epochs": 0}, "epochs must be a positive integer, got 0"),
        ({"name": ""}, "invalid study name ''"),
        ({"trainer": "torch"}, "unknown trainer 'torch'"),
        ({"objective": "val_accuracy"}, "unknown objective 'val_accuracy'"),
        ({"workers": 2}, "workers > 1 need a space they can load"),
        ({"validation_split": 1.5}, "validation_split must lie in (0, 1)"),
    ]
    for options, message in cases:
        with pytest.raises(SearchError, match=re.escape(message)):
            search.Study(task, wide, out=tmp_path / "out", **options)
    with pytest.raises(SearchError, match="a space is a subclass of search.Space"):
        search.Study(task, dict, out=tmp_path / "out")
    with pytest.raises(SearchError, match="does not fit task"):
        search.Study("mlp", wide, out=tmp_path / "out")
    with pytest.raises(SearchError, match="trials must be a positive integer"):
        search.Study(task, wide, out=tmp_path / "out").run(trials=0)
    with pytest.raises(SearchError, match="x_train has 13 features but x_test has 2"):
        search.Task.from_arrays(
            task.x_train, task.y_train, task.x_test[:, :2], task.y_test, kind="regression"
        )
    assert not (tmp_path / "out").exists()


def test_import_search_loads_neither_keras_nor_pandas() -> None:
    """``import search; search.Space; search.Study`` stays light (the README's figure)."""
    code = (
        "import sys, search; search.Space; search.Study; search.Task; search.SearchError;"
        "print(sorted(m for m in ('keras', 'tensorflow', 'jax', 'pandas', 'optuna', "
        "'keras_tuner') if m in sys.modules))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True, check=True
    )
    assert proc.stdout.strip() == "[]"


def test_the_cli_logs_to_mlflow(tmp_path: Path, recwarn: pytest.WarningsRecorder) -> None:
    """``--mlflow`` logs through MLflow's own client: the same runs as optuna-integration's
    deprecated callback made, without its deprecation warning."""
    mlflow = pytest.importorskip("mlflow")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["boston", "--space", "linear", "--trials", "2", "--epochs", "2", "--cv", "1"]
    assert run_main([*args, "--top-k", "0", "--mlflow", uri, "--out", tmp_path / "out"]) == 0
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("boston/linear-optuna-tpe")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(run.data.tags["number"] for run in runs) == ["0", "1"]
    assert all("val_mse" in run.data.metrics for run in runs)
    assert all(run.data.tags["state"] == "COMPLETE" for run in runs)
    assert {"learning_rate", "optimizer"} <= set(runs[0].data.params)
    table = pd.read_csv(tmp_path / "out" / "boston" / "linear-optuna-tpe" / "leaderboard.csv")
    values = dict(zip(table["trial"].astype(str), table["value"], strict=True))
    for run in runs:
        assert run.data.metrics["val_mse"] == pytest.approx(values[run.data.tags["number"]])
    assert mlflow.get_tracking_uri() != uri  # MLflow's global state stays the user's
    deprecated = [w for w in recwarn if "MLflowCallback" in str(w.message)]
    assert not deprecated, [str(w.message) for w in deprecated]
