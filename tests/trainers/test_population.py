"""Populations: configurations of one structure trained together by the numpy trainer, fed
by batches of trials from Optuna's ask and keras-tuner's oracle (``--population``).

The numpy trainer does not depend on the Keras backend, and its single-configuration
comparisons with ``fit`` run on every backend (``test_trainers.py``); these run on
TensorFlow only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import keras
import numpy as np
import optuna
import pytest
from conftest import STUDY_ARGS, Study, read_curves, run_main, tiny_run
from trainer_cases import (
    BIG_BATCH,
    DISTRIBUTION_CASES,
    SEEDS,
    assert_same_distribution,
    data_for,
    fit_values,
    small_build,
    space_build,
)

from search.errors import TrialFailedError
from search.tasks import Task, load_task
from search.trainers import Job, TrialResult
from search.trainers.keras_fit import evaluate, retrain
from search.trainers.numpy import NumpyTrainer

NUMPY = NumpyTrainer()
# The numpy trainer uses no backend; ``fit``, which these tests compare it with, does.
COMPARED_WITH_FIT = pytest.mark.backend("tensorflow", why="the populations use no backend")

LINEAR = {"l1": 1e-3, "l2": 1e-2, "optimizer": "momentum", "learning_rate": 0.01}


@pytest.fixture(scope="module")
def boston() -> Task:
    return load_task("boston")


@COMPARED_WITH_FIT
def test_each_member_of_a_population_trains_as_it_would_alone(boston: Task) -> None:
    """One batch per epoch and no dropout: every member's curves equal ``fit``'s for its own
    learning rate, penalties and clipping, though all train in one set of numpy calls."""
    variants: list[dict[str, Any]] = [
        {**LINEAR, "clipnorm": 1.0},
        {**LINEAR, "l1": 0.0, "learning_rate": 0.003, "clipnorm": 0.0},
        {**LINEAR, "l2": 1e-4, "learning_rate": 0.03, "clipnorm": 5.0},
    ]
    data = data_for(boston, epochs=10)
    builds = [space_build(boston, "linear", {**v, "batch_size": 32}, BIG_BATCH) for v in variants]
    assert not any(NUMPY.unsupported(build()[0], "val_mse") for build in builds)
    assert len({NUMPY.group_key(*build()) for build in builds}) == 1  # one population
    jobs = [Job(build, seed) for build, seed in zip(builds, [3, 4, 5], strict=True)]
    outcomes = NUMPY.evaluate(jobs, data, "val_mse")
    for build, seed, outcome in zip(builds, [3, 4, 5], outcomes, strict=True):
        assert isinstance(outcome, TrialResult)
        expected = evaluate(build, data, "val_mse", seed)
        for key, values in expected.curves[0].items():
            np.testing.assert_allclose(outcome.curves[0][key], values, rtol=1e-4, err_msg=key)
        assert outcome.best_epoch == expected.best_epoch


@COMPARED_WITH_FIT
def test_a_population_matches_fit_in_distribution(boston: Task) -> None:
    """Two dropout rates, learning rates and penalties in one population, five seeds each:
    each configuration's validation MSE agrees with ``fit``'s over the same seeds."""
    space, params = DISTRIBUTION_CASES[1]
    other = {**params, "dropout_0": 0.4, "learning_rate": 0.01, "l2": 1e-3}
    builds = [space_build(boston, space, params)] * len(SEEDS)
    builds += [space_build(boston, space, other)] * len(SEEDS)
    assert NUMPY.group_key(*builds[0]()) == NUMPY.group_key(*builds[-1]())
    seeds = [*SEEDS, *SEEDS]
    jobs = [Job(build, seed) for build, seed in zip(builds, seeds, strict=True)]
    outcomes = NUMPY.evaluate(jobs, data_for(boston), "val_mse")
    values = [o.value for o in outcomes if isinstance(o, TrialResult)]
    assert len(values) == len(builds)
    assert_same_distribution("population", values[: len(SEEDS)], fit_values(space, params))
    assert_same_distribution("population", values[len(SEEDS) :], fit_values(space, other))


@pytest.mark.backend("tensorflow", "jax", why="one member goes to fit")
def test_members_end_alone(boston: Task) -> None:
    """A diverging member, a pruned one and one with fewer epochs end by themselves; a model
    the numpy trainer cannot train goes to ``fit``; the others train to the end."""
    data = data_for(boston, epochs=12)
    sgd = keras.optimizers.SGD
    builds = [
        small_build(learning_rate=0.01, optimizer=sgd),
        small_build(learning_rate=1e4, optimizer=sgd),
        small_build(learning_rate=0.001, optimizer=sgd),
        small_build(learning_rate=0.02, optimizer=sgd),
        small_build(extra=keras.layers.BatchNormalization()),
    ]
    reported: list[int] = []

    def prune_at_3(epoch: int, value: float) -> None:
        reported.append(epoch)
        if epoch == 3:
            raise optuna.TrialPruned(f"pruned at epoch {epoch}")

    reports = [None, None, prune_at_3, None, None]
    epochs = [None, None, None, 5, 2]
    jobs = [Job(*job) for job in zip(builds, [1, 2, 3, 4, 5], reports, epochs, strict=True)]
    curves = [job.curves for job in jobs]
    outcomes = NUMPY.evaluate(jobs, data, "val_mse")
    assert NUMPY.unsupported(builds[4]()[0], "val_mse") is not None
    assert isinstance(outcomes[0], TrialResult) and outcomes[0].epochs == 12
    assert isinstance(outcomes[1], TrialFailedError)
    assert isinstance(outcomes[2], optuna.TrialPruned) and reported == [1, 2, 3]
    assert isinstance(outcomes[3], TrialResult) and outcomes[3].epochs == 5
    assert isinstance(outcomes[4], TrialResult) and outcomes[4].epochs == 2
    # What ended early still hands back the epochs it ran, for TensorBoard.
    assert len(curves[2][0]["val_mse"]) == 3
    assert 1 <= len(curves[1][0]["loss"]) < 12


@pytest.mark.parametrize("engine", ["optuna", "keras-tuner"])
def test_a_study_asks_its_trials_in_populations(tmp_path: Path, engine: str) -> None:
    """``--population 4`` over 5 trials: batches of 4 and 1, every trial recorded by its
    engine, shown in TensorBoard and ranked; the study remembers the option."""
    args = [*STUDY_ARGS, "--trials", "5", "--population", "4"]
    study = tiny_run(tmp_path, "boston", "mlp", engine, *args)
    trials = study.trials()
    assert sorted(trials["trial"]) == [0, 1, 2, 3, 4]
    assert (trials["state"] == "complete").all()
    assert trials["test_mse"].notna().sum() == 2
    config = json.loads((study.folder / "study.json").read_text())["config"]
    assert config["population"] == 4
    for number in range(5):
        validation = study.folder / "tensorboard" / f"trial_{number:04d}" / "validation"
        assert len(read_curves(validation)["epoch_mse"]) == 2
    # The configurations differ: each trial was asked for its own.
    assert trials["learning_rate"].nunique() == 5


@COMPARED_WITH_FIT
def test_an_ensemble_retrains_together(boston: Task) -> None:
    """The members of an ensemble (one configuration, several seeds) retrain together: with
    one batch per epoch each equals ``fit``'s retraining from its own seed."""
    params = {**LINEAR, "clipnorm": 1.0, "batch_size": 32}
    build = space_build(boston, "linear", params, BIG_BATCH)
    data = data_for(boston)
    models = NUMPY.retrain(build, 8, data, [1, 2, 3])
    for seed, model in zip([1, 2, 3], models, strict=True):
        assert isinstance(model, keras.Model)
        expected = retrain(build, 8, data, seed)
        for got, want in zip(model.get_weights(), expected.get_weights(), strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    diverging = small_build(learning_rate=1e4, optimizer=keras.optimizers.SGD)
    ended = NUMPY.retrain(diverging, 8, data, [1, 2])
    assert all(isinstance(error, TrialFailedError) for error in ended)


def test_hyperband_rounds_train_as_populations(tmp_path: Path) -> None:
    """keras-tuner's Hyperband hands out a round's trials together, each with its own epoch
    budget; a round that waits for its trials ends the batch."""
    args = [*STUDY_ARGS, "--trials", "6", "--epochs", "3", "--population", "4"]
    args += ["--algorithm", "hyperband", "--study", "rounds"]
    assert (
        run_main(["boston", "--space", "mlp", "--engine", "keras-tuner", "--out", tmp_path, *args])
        == 0
    )
    trials = Study(tmp_path, "boston", "rounds").trials()
    assert len(trials) == 6 and (trials["state"] == "complete").all()
    # Hyperband's budgets with 3 epochs and a factor of 3: 1 epoch in a bracket's first
    # round, 3 for the trials it promotes and in the next bracket.
    assert set(trials["epochs"]) == {1, 3}
