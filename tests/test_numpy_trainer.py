"""The numpy trainer (search/numpy_trainer.py) against Keras ``fit``, on every backend.

The cases and the two kinds of agreement are in ``trainer_cases.py``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import keras
import numpy as np
import optuna
import pytest
from trainer_cases import (
    BIG_BATCH,
    DISTRIBUTION_CASES,
    EXACT_CASES,
    SEEDS,
    assert_same_distribution,
    data_for,
    fit_values,
    small_build,
    space_build,
)

from search import numpy_trainer, training
from search.tasks import Task, load_task
from search.training import TrialFailedError, evaluate, retrain

# Binary and multiclass crossentropies, sigmoid and softmax outputs, plain SGD and clipping.
CLASSIFICATION_CASES = [
    (
        "breast-cancer",
        "logistic",
        {
            "l1": 1e-3,
            "l2": 1e-2,
            "optimizer": "adam",
            "learning_rate": 0.05,
            "clipnorm": 5.0,
            "batch_size": 32,
        },
    ),
    (
        "digits",
        "mlp",
        {
            "layers": 2,
            "activation": "relu",
            "l2": 1e-3,
            "units_0": 32,
            "dropout_0": 0.0,
            "units_1": 16,
            "dropout_1": 0.0,
            "optimizer": "sgd",
            "learning_rate": 0.05,
            "clipnorm": 1.0,
            "batch_size": 32,
        },
    ),
    (
        "boston",
        "mlp",
        {
            "layers": 1,
            "activation": "sigmoid",
            "l2": 1e-4,
            "units_0": 16,
            "dropout_0": 0.0,
            "optimizer": "nesterov",
            "learning_rate": 0.01,
            "clipnorm": 0.0,
            "batch_size": 32,
        },
    ),
]


@pytest.fixture(scope="module")
def boston() -> Task:
    return load_task("boston")


@pytest.mark.parametrize(("task_name", "space", "params"), EXACT_CASES + CLASSIFICATION_CASES)
def test_equals_fit_without_randomness(task_name: str, space: str, params: dict[str, Any]) -> None:
    """One batch per epoch and no dropout: loss, penalties, optimizer, metrics, validation."""
    task = load_task(task_name)
    data = data_for(task, epochs=15)
    build = space_build(task, space, params, batch=BIG_BATCH)
    expected = evaluate(build, data, task.objective, seed=3)
    result = numpy_trainer.evaluate_numpy(build, data, task.objective, seed=3)
    assert set(result.curves[0]) == set(expected.curves[0])
    for key, values in expected.curves[0].items():
        np.testing.assert_allclose(result.curves[0][key], values, rtol=1e-4, err_msg=key)
    assert result.best_epoch == expected.best_epoch
    assert result.value == pytest.approx(expected.value, rel=1e-4)


@pytest.mark.parametrize(("space", "params"), DISTRIBUTION_CASES)
def test_matches_fit_in_distribution(boston: Task, space: str, params: dict[str, Any]) -> None:
    """Minibatches of 16 and 32, dropout, penalties and clipping, over five seeds."""
    build = space_build(boston, space, params)
    data = data_for(boston)
    values = [numpy_trainer.evaluate_numpy(build, data, "val_mse", seed).value for seed in SEEDS]
    assert_same_distribution("numpy", values, fit_values(space, params))


def test_folds_and_executions(boston: Task) -> None:
    """Every fold x execution is a run; the first starts where fit starts, the rest differ."""
    data = data_for(boston, epochs=8, cv=2, executions=2)
    build = small_build(batch=BIG_BATCH)
    expected = evaluate(build, data, "val_mse", seed=11)
    result = numpy_trainer.evaluate_numpy(build, data, "val_mse", seed=11)
    assert len(result.curves) == len(expected.curves) == 4
    np.testing.assert_allclose(
        result.curves[0]["val_mse"], expected.curves[0]["val_mse"], rtol=1e-4
    )
    # Runs of one fold share their rows but not their initial weights.
    assert result.curves[0]["val_mse"] != result.curves[2]["val_mse"]
    mean = np.mean([curve["val_mse"] for curve in result.curves], axis=0)
    assert result.value == pytest.approx(float(mean.min()))
    assert result.best_epoch == int(mean.argmin()) + 1
    assert result.params == build()[0].count_params()


def test_a_member_whose_rows_ran_out_sits_the_step_out() -> None:
    """Folds whose sizes differ have different step counts: the shorter one must not move."""
    build = small_build(batch=19, learning_rate=0.05)
    model = build()[0]
    net = numpy_trainer._Net(model)
    x = np.random.default_rng(0).normal(size=(20, 13)).astype(np.float32)
    y = x @ np.arange(13, dtype=np.float32)
    empty = np.arange(0)
    alone = numpy_trainer._Trainer(
        net, [net.weights(model)], x, y, [(np.arange(19), empty)], 19, seed=1
    )
    together = numpy_trainer._Trainer(
        net,
        [net.weights(model)] * 2,
        x,
        y,
        [(np.arange(19), empty), (np.arange(20), empty)],
        19,
        seed=1,
    )
    alone.epoch()
    together.epoch()
    # 19 rows make one full batch (order does not matter); 20 rows make two steps.
    assert together.step.tolist() == [1, 2]
    for single, pair in zip(alone.params, together.params, strict=True):
        np.testing.assert_allclose(pair[0], single[0], rtol=1e-5, atol=1e-7)
        assert not np.allclose(pair[1], single[0])


def test_variables_stay_views_of_the_flat_parameters() -> None:
    """The optimizer updates the flat (members x parameters) array; the forward pass and the
    gradients use per-variable views of it, which must never silently become copies."""
    build = small_build(batch=8, learning_rate=0.05)
    model = build()[0]
    net = numpy_trainer._Net(model)
    x = np.random.default_rng(0).normal(size=(24, 13)).astype(np.float32)
    y = x @ np.arange(13, dtype=np.float32)
    rows = [(np.arange(16), np.arange(16, 24))] * 3
    trainer = numpy_trainer._Trainer(net, [net.weights(model)] * 3, x, y, rows, 8, seed=1)
    for _ in range(2):
        trainer.epoch()
        for views, flat in ((trainer.params, trainer.flat), (trainer.grads, trainer.grad_flat)):
            assert all(np.shares_memory(view, flat) for view in views)
            assert sum(view[0].size for view in views) == flat.shape[1]
        trainer.keep([0, 2])  # the next epoch trains two members
    kernel = trainer.params[0]
    np.testing.assert_array_equal(kernel[1].reshape(-1), trainer.flat[1, : kernel[1].size])


def test_early_stopping_stops(boston: Task) -> None:
    """With a zero learning rate the curve is flat: training stops after ``patience`` epochs."""
    data = data_for(boston, epochs=50, patience=4, cv=3)
    build = small_build(learning_rate=0.0, optimizer=keras.optimizers.SGD)
    result = numpy_trainer.evaluate_numpy(build, data, "val_mse", seed=0)
    expected = evaluate(build, data, "val_mse", seed=0)
    assert result.epochs == expected.epochs == 5
    assert all(len(values) == 5 for curve in result.curves for values in curve.values())
    assert result.best_epoch == 1


def test_epochs_override(boston: Task) -> None:
    """keras-tuner's Hyperband passes the epochs of each trial."""
    result = numpy_trainer.evaluate_numpy(small_build(), data_for(boston), "val_mse", 0, epochs=3)
    assert result.epochs == 3
    assert len(result.curves[0]["loss"]) == 3


def test_divergence_fails_the_trial(boston: Task) -> None:
    diverging = small_build(learning_rate=1e4, optimizer=keras.optimizers.SGD)
    with pytest.raises(TrialFailedError, match=r"loss became (nan|inf) at epoch \d+"):
        numpy_trainer.evaluate_numpy(diverging, data_for(boston), "val_mse", seed=0)


def test_pruning_sees_every_epoch_of_the_first_run(boston: Task) -> None:
    reported: list[int] = []

    def prune(epoch: int, value: float) -> None:
        reported.append(epoch)
        if epoch == 3:
            raise optuna.TrialPruned("pruned")

    partial: list[dict[str, list[float]]] = []
    data = data_for(boston, cv=2)
    with pytest.raises(optuna.TrialPruned):
        numpy_trainer.evaluate_numpy(small_build(), data, "val_mse", 0, prune, None, partial)
    assert reported == [1, 2, 3]
    # A pruned trial still hands back the epochs it ran, for TensorBoard.
    assert [len(curve["val_mse"]) for curve in partial] == [3, 3]


def test_retrain_equals_fit_without_randomness(boston: Task) -> None:
    data = data_for(boston)
    build = small_build(batch=BIG_BATCH)
    expected = training.test_scores(retrain(build, 7, data, seed=5), boston)
    model = numpy_trainer.retrain_numpy(build, 7, data, seed=5)
    assert training.test_scores(model, boston) == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        (keras.layers.BatchNormalization(), "BatchNormalization"),
        (keras.layers.Dense(8, activation="softplus"), "softplus"),
    ],
    ids=["batchnorm", "softplus"],
)
def test_unsupported_model_falls_back_to_fit(
    boston: Task, extra: keras.layers.Layer, reason: str
) -> None:
    build = small_build(extra=extra)
    assert reason in (numpy_trainer.unsupported(build()[0]) or "")
    result = numpy_trainer.evaluate_numpy(build, data_for(boston, epochs=2), "val_mse", 0)
    assert result.epochs == 2 and math.isfinite(result.value)


def test_optimizers_outside_keras_rules_are_refused() -> None:
    build = small_build(optimizer=lambda rate: keras.optimizers.Adam(rate, amsgrad=True))
    assert "AMSGrad" in (numpy_trainer.unsupported(build()[0]) or "")
    build = small_build(optimizer=keras.optimizers.Adagrad)
    assert "Adagrad" in (numpy_trainer.unsupported(build()[0]) or "")


@pytest.mark.parametrize("trainer", ["numpy", "keras"])
def test_a_study_runs_on_each_trainer(tmp_path: Path, trainer: str) -> None:
    """numpy is the default; --trainer keras keeps Keras fit for every trial."""
    from conftest import STUDY_ARGS, read_curves, tiny_run

    args = (*STUDY_ARGS, "--cv", "2") + (("--trainer", trainer) if trainer != "numpy" else ())
    study = tiny_run(tmp_path, "boston", "mlp", "optuna", *args)
    trials = study.trials()
    assert (trials["state"] == "complete").all() and len(trials) == 3
    assert trials["test_mse"].notna().sum() == 2
    assert keras.saving.load_model(study.folder / "best.keras", safe_mode=True) is not None
    config = json.loads((study.folder / "study.json").read_text())["config"]
    assert config["trainer"] == trainer
    validation = study.folder / "tensorboard" / "trial_0000" / "validation"
    assert len(read_curves(validation)["epoch_mse"]) == 2
