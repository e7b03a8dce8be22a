"""The best model round trip (best.keras <-> predict) and trials whose training diverges."""

from __future__ import annotations

import json
import math
import warnings
import zipfile
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from conftest import STUDY_SEED, Study, run_main, tiny_run
from spaces_fixtures import ACCURATE, CONSTANT, DIVERGING, RETRAIN_DIVERGES, write_space

from search.study.scoring import for_inference, retrain_epochs
from search.tasks import Task, load_task, score
from search.trainers import averaged, weighted
from search.trainers.base import Settings

# best.keras is saved, loaded and run by the backend the study ran on.
SAVED_MODEL = pytest.mark.backend
TINY = ("--trials", "2", "--epochs", "2", "--cv", "1", "--top-k", "1", "--no-tensorboard")


def load_best(study: Study) -> keras.Model:
    return keras.saving.load_model(study.folder / "best.keras", safe_mode=True)


def feature_file(task: Task, path: Path) -> Path:
    pd.DataFrame(task.x_test, columns=list(task.spec.feature_names)).to_csv(path, index=False)
    return path


def predict(study: Study, folder: Path, *extra: str) -> pd.DataFrame:
    """``python -m search predict`` (in this process) on the task's raw test features."""
    data = feature_file(load_task(study.task), folder / "features.csv")
    output = folder / "predictions.csv"
    args = ["predict", study.task, "--data", data, "--output", output, "--out", study.out]
    assert run_main([*args, *extra]) == 0
    return pd.read_csv(output, dtype={"prediction": str})


@pytest.fixture(scope="module", params=["optuna", "keras-tuner"])
def boston(request: pytest.FixtureRequest) -> Study:
    name = {"optuna": "boston_study", "keras-tuner": "boston_kt_study"}[request.param]
    found: Study = request.getfixturevalue(name)
    return found


@SAVED_MODEL
def test_best_model_loads_safely_and_predict_writes_its_predictions(
    boston: Study, tmp_path: Path
) -> None:
    model = load_best(boston)
    task = load_task("boston")
    expected = np.asarray(model.predict(task.x_test, verbose=0)).reshape(-1)
    written = predict(boston, tmp_path)
    assert list(written.columns) == ["prediction"]
    assert len(written) == len(task.x_test)
    np.testing.assert_allclose(written["prediction"].astype(float), expected, atol=1e-4)
    named = predict(boston, tmp_path, "--study", boston.study)
    np.testing.assert_allclose(named["prediction"].astype(float), expected, atol=1e-4)


def compile_configs(config: object) -> list[object]:
    """Every ``compile_config`` in a saved model's config (an empty one compiles nothing)."""
    if isinstance(config, dict):
        own = [config["compile_config"]] if "compile_config" in config else []
        return own + [c for value in config.values() for c in compile_configs(value)]
    if isinstance(config, list):
        return [c for value in config for c in compile_configs(value)]
    return []


@SAVED_MODEL
def test_the_best_model_is_saved_for_inference_and_loads_without_a_warning(
    boston: Study, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """``best.keras`` keeps no optimizer: loading it rebuilt one and warned, once per
    ensemble member, that it skipped the saved optimizer's variables."""
    with zipfile.ZipFile(boston.folder / "best.keras") as archive:
        config = json.loads(archive.read("config.json"))
    assert not any(compile_configs(config)), "a model inside is still compiled"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_best(boston)
        predict(boston, tmp_path)
    shown = [str(w.message) for w in caught if not issubclass(w.category, DeprecationWarning)]
    assert shown == []
    assert "Skipping variable loading" not in capfd.readouterr().err


@SAVED_MODEL
def test_best_model_takes_raw_features(boston: Study) -> None:
    model = load_best(boston)
    task = load_task("boston")
    normalizers = [layer for layer in model.layers if isinstance(layer, keras.layers.Normalization)]
    assert len(normalizers) == 1
    config = normalizers[0].get_config()
    mean, variance = (
        np.asarray(config[key], dtype=float).reshape(-1) for key in ("mean", "variance")
    )
    np.testing.assert_allclose(mean, task.mean, rtol=1e-6)
    np.testing.assert_allclose(np.sqrt(variance), task.std, rtol=1e-5)
    # On raw test rows it reproduces the test scores of what it is: the selected ensemble's
    # in study.json, or the rank-1 trial's in the leaderboard.
    raw = score("regression", task.y_test, model.predict(task.x_test, verbose=0))
    ensemble = json.loads((boston.folder / "study.json").read_text())["ensemble"]
    trials = boston.trials()
    rank1 = trials[trials["rank"] == 1].iloc[0]
    best = ensemble["test"] if ensemble else {"mse": rank1["test_mse"], "mae": rank1["test_mae"]}
    assert math.isclose(raw["mse"], best["mse"], rel_tol=1e-4)
    assert math.isclose(raw["mae"], best["mae"], rel_tol=1e-4)
    # Fed standardised rows instead, it would standardise twice and score much worse.
    twice = score(
        "regression", task.y_test, model.predict(task.standardize(task.x_test), verbose=0)
    )
    assert not math.isclose(twice["mse"], raw["mse"], rel_tol=1e-2)


@SAVED_MODEL
def test_binary_predictions_have_labels_and_probabilities(tmp_path: Path) -> None:
    study = tiny_run(tmp_path / "out", "breast-cancer", "logistic", "optuna", *TINY)
    task = load_task("breast-cancer")
    written = predict(study, tmp_path)
    assert list(written.columns) == ["prediction", "probability"]
    assert len(written) == len(task.x_test)
    probability = written["probability"].to_numpy()
    assert ((probability >= 0) & (probability <= 1)).all()
    expected = np.asarray(load_best(study).predict(task.x_test, verbose=0)).reshape(-1)
    np.testing.assert_allclose(probability, expected, atol=1e-4)
    labels = np.asarray(task.class_names)[(probability > 0.5).astype(int)]
    assert list(written["prediction"]) == list(labels)
    assert set(written["prediction"]) <= set(task.class_names)


@SAVED_MODEL
def test_multiclass_predictions_have_one_probability_per_class(tmp_path: Path) -> None:
    study = tiny_run(tmp_path / "out", "digits", "logistic", "optuna", *TINY)
    task = load_task("digits")
    written = predict(study, tmp_path)
    columns = [f"probability_{name}" for name in task.class_names]
    assert list(written.columns) == ["prediction", *columns]
    assert len(written) == len(task.x_test)
    probabilities = written[columns].to_numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
    expected = np.asarray(load_best(study).predict(task.x_test, verbose=0))
    np.testing.assert_allclose(probabilities, expected, atol=1e-4)
    assert list(written["prediction"]) == [task.class_names[i] for i in expected.argmax(axis=1)]


# --------------------------------------------------------------------------- diverging trials


@pytest.mark.parametrize("engine", ["optuna", "keras-tuner"])
def test_diverging_trials_fail_with_nan_and_the_study_stops_with_exit_1(
    tmp_path: Path, engine: str
) -> None:
    space = write_space(tmp_path / "diverging.py", DIVERGING.replace("{rates}", "1e6"))
    out = tmp_path / "out"
    args = ["boston", "--space", str(space), "--engine", engine, "--out", str(out), *TINY]
    # Every trial of the budget failed: the study stops as at --max-failures (exit 1).
    assert run_main(args) == 1
    algorithm = {"optuna": "tpe", "keras-tuner": "random"}[engine]
    study = Study(out, "boston", f"diverging-{engine}-{algorithm}")
    table = study.trials()
    assert len(table) == 2
    assert (table["state"] == "failed").all()
    assert table["rank"].isna().all() and table["value"].isna().all()
    for error in table["error"]:
        assert isinstance(error, str) and "nan" in error.lower(), error
    row = study.studies().iloc[0]
    assert (row["trials"], row["complete"], row["failed"]) == (2, 0, 2)
    assert pd.isna(row["best_value"])
    assert not (study.folder / "best.keras").exists()


@pytest.mark.parametrize("engine", ["optuna", "keras-tuner"])
def test_a_diverging_trial_fails_while_the_search_goes_on(tmp_path: Path, engine: str) -> None:
    space = write_space(tmp_path / "diverging.py", DIVERGING.replace("{rates}", "0.001, 1e6"))
    args = ("--trials", "5", "--epochs", "2", "--cv", "1", "--top-k", "1", "--seed", "1")
    study = tiny_run(tmp_path / "out", "boston", str(space), engine, *args)
    table = study.trials().sort_values("trial")
    assert list(table["trial"]) == [0, 1, 2, 3, 4], "every trial of the budget ran"
    diverging = table["learning_rate"] == 1e6
    # Which trials sample 1e6 depends on the sampler; with 5 trials both rates show up.
    assert diverging.any() and not diverging.all(), "expected both learning rates in 5 trials"
    assert (table.loc[diverging, "state"] == "failed").all()
    assert table.loc[diverging, "error"].str.contains("nan", case=False).all()
    assert (table.loc[~diverging, "state"] == "complete").all()
    assert table.loc[~diverging, "error"].isna().all()
    first_failure = int(table.loc[diverging, "trial"].min())
    assert (table.loc[~diverging, "trial"] > first_failure).any(), "a success after a failure"
    row = study.studies().iloc[0]
    assert (row["complete"], row["failed"]) == ((~diverging).sum(), diverging.sum())
    assert (study.folder / "best.keras").is_file()


def test_a_retraining_that_diverges_does_not_lose_the_study(tmp_path: Path) -> None:
    space = write_space(tmp_path / "retrain_diverges.py", RETRAIN_DIVERGES)
    out = tmp_path / "out"
    # One build lists the space, one per trial (one fold, one execution): the third build is
    # the retraining.
    args = ["boston", "--space", space, "--trials", "1", "--epochs", "2", "--top-k", "1"]
    args += ["--cv", "1", "--executions", "1", "--no-tensorboard", "--out", out]
    assert run_main(args) == 0
    table = Study(out, "boston", "retrain_diverges-optuna-tpe").trials()
    assert list(table["state"]) == ["complete"]
    assert table["test_mse"].isna().all()


def test_an_ensemble_averages_the_retrainings_that_did_not_diverge(tmp_path: Path) -> None:
    # Build 1 lists the space, build 2 is the trial, build 3 the first retraining
    # (diverges), builds 4 and 5 train.
    space = RETRAIN_DIVERGES.replace("len(BUILDS) <= 2", "len(BUILDS) != 3")
    out = tmp_path / "out"
    args = ["boston", "--space", write_space(tmp_path / "retrain_diverges.py", space)]
    args += ["--trials", "1", "--epochs", "2", "--top-k", "1", "--ensemble", "3", "--cv", "1"]
    args += ["--executions", "1", "--no-tensorboard", "--out", out]
    assert run_main(args) == 0
    study = Study(out, "boston", "retrain_diverges-optuna-tpe")
    (test_mse,) = study.trials()["test_mse"]
    assert math.isfinite(test_mse)
    best = keras.saving.load_model(study.folder / "best.keras")
    predictions = keras.ops.convert_to_numpy(best(load_task("boston").x_test))
    assert np.isfinite(predictions).all()


# --------------------------------------------------------------------------- predict's choice


def test_predict_takes_the_best_study_of_a_maximised_objective(tmp_path: Path) -> None:
    out = tmp_path / "out"
    found = {}
    for name, body in (("accurate", ACCURATE), ("constant", CONSTANT)):
        space = write_space(tmp_path / f"{name}.py", body)
        found[name] = tiny_run(
            out,
            "digits",
            str(space),
            "optuna",
            *("--objective", "val_accuracy", "--seed", str(STUDY_SEED), *TINY),
        )
    studies = found["accurate"].studies().set_index("study")
    accurate, constant = found["accurate"].study, found["constant"].study
    assert studies.loc[accurate, "best_value"] > studies.loc[constant, "best_value"] + 0.3
    task = load_task("digits")
    expected = np.asarray(load_best(found["accurate"]).predict(task.x_test, verbose=0))
    written = predict(found["accurate"], tmp_path)
    probabilities = written[[f"probability_{name}" for name in task.class_names]].to_numpy()
    np.testing.assert_allclose(probabilities, expected, atol=1e-4)


def test_an_ensemble_of_averaged_retrainings_is_saved_with_no_model_compiled_inside() -> None:
    """Ensemble selection nests the trained (compiled) models two deep: a weighted mean of
    members that are each the mean of their retrainings. Keras' clone compiles the copy of a
    compiled model, so every level must come out uncompiled, its weights kept."""

    def trained(seed: int) -> keras.Model:
        inputs = keras.Input((3,))
        model = keras.Model(inputs, keras.layers.Dense(1, name="output")(inputs))
        model.compile("rmsprop", "mse")
        model.get_layer("output").kernel.assign(np.full((3, 1), float(seed), "float32"))
        return model

    ensemble = weighted(
        [averaged([trained(1), trained(2)]), averaged([trained(3), trained(4)])], [0.25, 0.75]
    )
    copy = for_inference(ensemble)
    config = keras.saving.serialize_keras_object(copy)
    assert not any(compile_configs(config)), "a model inside is still compiled"
    x = np.ones((2, 3), "float32")
    # A row of ones: 0.25 * mean(3, 6) + 0.75 * mean(9, 12) (members swapped: 6.0)
    np.testing.assert_allclose(
        np.asarray(copy.predict(x, verbose=0)).ravel(), [9.0, 9.0], rtol=1e-5
    )


@pytest.mark.parametrize(
    ("best", "cv", "split", "epochs"),
    [
        (8, 5, 0.2, 10),  # 5-fold CV: the whole split has 5/4 of a fold's training rows
        (8, 1, 0.2, 10),  # a 20% holdout: 1 / 0.8 of the rows
        (8, 2, 0.2, 16),  # 2 folds: twice the rows
        (8, 1, 0.5, 16),
        (1, 5, 0.2, 1),  # 1.25 rounds to 1, never to 0
        (None, 5, 0.2, 1),  # no best epoch recorded: one epoch, scaled
    ],
)
def test_a_retraining_trains_the_best_epoch_count_scaled_to_the_whole_split(
    best: int | None, cv: int, split: float, epochs: int
) -> None:
    settings = Settings(epochs=50, patience=20, cv=cv, executions=1, validation_split=split, seed=0)
    assert retrain_epochs(best, settings) == epochs
