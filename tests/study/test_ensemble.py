"""Ensemble selection across trials: the greedy algorithm, the saved model, both engines."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from conftest import run_main

import search
from search.study.ensemble import greedy_selection, weights_of
from search.tasks import load_task, score
from search.trainers import weighted


def test_greedy_selection_with_replacement_finds_the_best_blend() -> None:
    # Against a target of 0, the blend of 2 and -1 with weights 1/3 and 2/3 is exact: only
    # picking -1 twice (with replacement) reaches it.
    truth = np.zeros(4)
    predictions = np.stack([np.full(4, 2.0), np.full(4, -1.0), np.full(4, 5.0)])
    picks = greedy_selection(predictions, truth, "regression", "mse", 3)
    assert picks == [1, 0, 1]
    assert weights_of(picks) == ((1, 0), (2 / 3, 1 / 3))


def test_greedy_selection_picks_the_single_best_first_and_breaks_ties_to_the_earlier() -> None:
    truth = np.array([0.0, 1.0, 2.0, 3.0])
    predictions = np.stack([truth + 1.0, truth + 0.5, truth - 0.5, truth + 3.0])
    # 1 and 2 tie (MSE 0.25); the earlier (better by the search) is picked; then the other
    # one cancels its error.
    assert greedy_selection(predictions, truth, "regression", "mse", 2) == [1, 2]
    # A size of 1 is the candidate best on these predictions alone.
    assert greedy_selection(predictions, truth, "regression", "mae", 1) == [1]


def test_greedy_selection_maximises_accuracy() -> None:
    truth = np.array([0, 1, 1, 0])
    good = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.7, 0.3]])
    bad = good[:, ::-1]
    picks = greedy_selection(np.stack([bad, good]), truth, "multiclass", "accuracy", 2)
    assert picks == [1, 1]


def _constant(value: float, features: int) -> keras.Model:
    """A model that outputs ``value`` for any row (one Dense unit, zero kernel)."""
    inputs = keras.Input((features,))
    dense = keras.layers.Dense(1, kernel_initializer="zeros")
    model = keras.Model(inputs, dense(inputs))
    dense.bias.assign([value])
    return model


@pytest.mark.backend
def test_weighted_model_saves_loads_with_plain_keras_and_predicts_the_weighted_mean(
    tmp_path: Path,
) -> None:
    model = weighted([_constant(1.0, 3), _constant(4.0, 3)], [0.75, 0.25])
    path = tmp_path / "ensemble.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    rows = np.random.default_rng(0).normal(size=(5, 3)).astype("float32")
    np.testing.assert_allclose(loaded.predict(rows, verbose=0), np.full((5, 1), 1.75), rtol=1e-6)


def _members(best: keras.Model) -> list[keras.Model]:
    """best.keras's member models, in weight order (``member_k`` is weight k's)."""
    inner = best.get_layer("ensemble")
    named = [layer for layer in inner.layers if layer.name.startswith("member_")]
    return sorted(named, key=lambda layer: int(layer.name.removeprefix("member_")))


FIT = pytest.mark.backend("tensorflow", "jax", why="the keras trainer is fit")


# best.keras is saved and loaded by the study's backend: on every backend, fit's on two.
@pytest.mark.parametrize(
    ("engine", "trainer"),
    [
        pytest.param("optuna", "numpy", marks=pytest.mark.backend),
        pytest.param("keras-tuner", "keras", marks=FIT),
    ],
)
def test_best_keras_is_the_selected_ensemble_and_the_tables_say_so(
    tmp_path: Path, engine: str, trainer: str
) -> None:
    study = search.Study(
        "boston",
        "mlp",
        engine=engine,
        trainer=trainer,
        epochs=2,
        cv=2,
        seed=5,
        top_k=1,
        ensemble=1,
        ensemble_size=3,
        tensorboard=False,
        out=tmp_path,
    )
    # Three trials, each a candidate: fit on JAX compiles every model it trains (trials,
    # the fresh folds, the members), so each one more costs seconds.
    result = study.run(3, progress=False)
    ensemble = json.loads((study.folder / "study.json").read_text())["ensemble"]
    members = [member["trial"] for member in ensemble["members"]]
    weights = [member["weight"] for member in ensemble["members"]]
    assert ensemble["size"] == 3 and ensemble["folds"] == 2 and len(ensemble["picks"]) == 3
    assert sum(weights) == pytest.approx(1.0)
    assert set(members) <= {int(trial) for trial in ensemble["candidates"]}
    # Plain Keras loads best.keras; it is the weighted mean of its members on the
    # standardised rows, and its test score is the ensemble's.
    task = load_task("boston")
    best = keras.saving.load_model(study.folder / "best.keras", safe_mode=True)
    predicted = best.predict(task.x_test, verbose=0)
    assert score("regression", task.y_test, predicted)["mse"] == pytest.approx(
        ensemble["test"]["mse"], rel=1e-4
    )
    if len(members) > 1:
        scaled = task.standardize(task.x_test)
        parts = [np.asarray(m(scaled)) * w for m, w in zip(_members(best), weights, strict=True)]
        np.testing.assert_allclose(predicted, np.sum(parts, axis=0), rtol=1e-4, atol=1e-4)
    # The trial table gives each trial's weight; the study table the ensemble's line.
    table = pd.read_csv(study.folder / "leaderboard.csv").set_index("trial")
    for trial, weight in zip(members, weights, strict=True):
        assert table.loc[trial, "ensemble_weight"] == pytest.approx(weight)
    assert table["ensemble_weight"].sum() == pytest.approx(1.0)
    assert result.leaderboard["ensemble_weight"].sum() == pytest.approx(1.0)
    (row,) = pd.read_csv(tmp_path / "leaderboard.csv").to_dict("records")
    assert row["ensemble_test_value"] == pytest.approx(ensemble["test"]["mse"])
    assert row["ensemble_value"] == pytest.approx(ensemble["validation"])
    assert [int(part.split(":")[0]) for part in row["ensemble"].split()] == members


def test_size_0_saves_the_rank_1_model_and_no_ensemble(tmp_path: Path) -> None:
    args = ["boston", "--space", "linear", "--trials", "2", "--epochs", "2", "--cv", "1"]
    args += ["--top-k", "1", "--ensemble", "1", "--ensemble-size", "0", "--out", tmp_path]
    assert run_main([*map(str, args), "--no-tensorboard"]) == 0
    folder = tmp_path / "boston" / "linear-optuna-tpe"
    assert json.loads((folder / "study.json").read_text())["ensemble"] is None
    table = pd.read_csv(folder / "leaderboard.csv")
    assert "ensemble_weight" not in table
    best = keras.saving.load_model(folder / "best.keras", safe_mode=True)
    task = load_task("boston")
    mse = score("regression", task.y_test, best.predict(task.x_test, verbose=0))["mse"]
    assert mse == pytest.approx(table.loc[table["rank"] == 1, "test_mse"].item(), rel=1e-4)


@pytest.mark.parametrize("size", [-1, 2.5, True])
def test_a_bad_size_is_refused_before_anything_is_written(tmp_path: Path, size: object) -> None:
    with pytest.raises(search.SearchError, match="ensemble_size must be an integer >= 0"):
        search.Study("boston", "linear", ensemble_size=size, out=tmp_path)  # type: ignore[arg-type]
    assert not list(tmp_path.iterdir())
