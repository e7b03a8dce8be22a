"""Configurations and helpers shared by the trainer tests: the contract suite every trainer
keeps (``test_trainers.py``), the numpy and compiled trainers' own tests
(``test_numpy_trainer.py``, ``test_compiled.py``) and the populations (``test_population.py``).

Every fast trainer (numpy, compiled) is checked against Keras ``fit``
(:func:`search.trainers.keras_fit.evaluate`) on the same cases. Two kinds of
agreement: where nothing random is left (one batch per epoch, no dropout) the curves must
equal ``fit``'s up to float rounding; with minibatches and dropout the random streams
differ, so over five seeds the mean validation MSE must agree with ``fit``'s within three
standard errors of the difference of the means (with a floor of 2% of the mean for
configurations whose spread over seeds is tiny).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from typing import Any

import keras
import keras_tuner
import numpy as np

from search.space import loss_for, metrics_for
from search.space_lookup import space_class
from search.tasks import Task, load_task
from search.trainers.base import Build, Settings, TrainData
from search.trainers.keras_fit import evaluate

SEEDS = range(5)
EPOCHS = 30
BIG_BATCH = 4096  # larger than any training split: one (padded) batch per epoch


def space_build(task: Task, space: str, params: dict[str, Any], batch: int | None = None) -> Build:
    """A space's model for fixed hyperparameters, as keras-tuner rebuilds a trial."""
    built = space_class(space)(task.spec)

    def build() -> tuple[keras.Model, int]:
        hp = keras_tuner.HyperParameters()
        hp.values.update(params)  # registered values win over the defaults
        model = built.build(hp)
        return model, batch or int(hp.get("batch_size"))

    return build


def small_build(
    units: int = 16,
    dropout: float = 0.0,
    learning_rate: float = 0.01,
    optimizer: Callable[[float], keras.optimizers.Optimizer] = keras.optimizers.Adam,
    batch: int = 32,
    extra: keras.layers.Layer | None = None,
) -> Build:
    """A Sequential regression MLP on Boston's 13 features (Keras names its layers)."""

    def build() -> tuple[keras.Model, int]:
        layers: list[keras.layers.Layer] = [keras.Input((13,)), keras.layers.Dense(units, "relu")]
        if extra is not None:
            layers.append(extra)
        if dropout:
            layers.append(keras.layers.Dropout(dropout))
        model = keras.Sequential([*layers, keras.layers.Dense(1)])
        model.compile(
            optimizer=optimizer(learning_rate),
            loss=loss_for("regression"),
            metrics=metrics_for("regression"),
        )
        return model, batch

    return build


# What a test's trials train with unless it says otherwise: one holdout split of 20%, one
# execution, seed 0, EPOCHS epochs and no early stopping.
DEFAULT_SETTINGS: dict[str, Any] = {
    "epochs": EPOCHS,
    "patience": 0,
    "cv": 1,
    "executions": 1,
    "validation_split": 0.2,
    "seed": 0,
}


def data_for(task: Task, **settings: Any) -> TrainData:
    """``task``'s data for trials with the default settings, as overridden by ``settings``."""
    return TrainData(task, Settings(**{**DEFAULT_SETTINGS, **settings}))


# Fixed configurations of the built-in spaces: minibatches, dropout, penalties, clipping.
DISTRIBUTION_CASES = [
    (
        "linear",
        {
            "l1": 1e-3,
            "l2": 1e-2,
            "optimizer": "sgd",
            "learning_rate": 0.01,
            "clipnorm": 0.0,
            "batch_size": 16,
        },
    ),
    (
        "mlp",
        {
            "layers": 1,
            "activation": "relu",
            "l2": 1e-4,
            "units_0": 64,
            "dropout_0": 0.2,
            "optimizer": "adam",
            "learning_rate": 0.003,
            "clipnorm": 0.0,
            "batch_size": 32,
        },
    ),
    (
        "mlp",
        {
            "layers": 2,
            "activation": "tanh",
            "l2": 1e-3,
            "units_0": 128,
            "dropout_0": 0.5,
            "units_1": 32,
            "dropout_1": 0.3,
            "optimizer": "rmsprop",
            "learning_rate": 0.001,
            "clipnorm": 1.0,
            "batch_size": 16,
        },
    ),
]


EXACT_CASES = [
    (
        "boston",
        "linear",
        {
            "l1": 1e-3,
            "l2": 1e-2,
            "optimizer": "momentum",
            "learning_rate": 0.01,
            "clipnorm": 1.0,
            "batch_size": 32,
        },
    ),
    (
        "boston",
        "mlp",
        {
            "layers": 2,
            "activation": "elu",
            "l2": 1e-3,
            "units_0": 32,
            "dropout_0": 0.0,
            "units_1": 16,
            "dropout_1": 0.0,
            "optimizer": "adam",
            "learning_rate": 0.01,
            "clipnorm": 5.0,
            "batch_size": 32,
        },
    ),
    (
        "mlp",
        "mlp",
        {
            "layers": 1,
            "activation": "tanh",
            "l2": 1e-3,
            "units_0": 32,
            "dropout_0": 0.0,
            "optimizer": "rmsprop",
            "learning_rate": 0.003,
            "clipnorm": 0.0,
            "batch_size": 32,
        },
    ),
]


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


def mean_and_se(values: list[float]) -> tuple[float, float]:
    array = np.asarray(values)
    return float(array.mean()), float(array.std(ddof=1) / math.sqrt(len(array)))


def assert_same_distribution(name: str, values: list[float], fit: list[float]) -> None:
    """``values`` and ``fit`` (one per seed) agree within 3 standard errors (or 2%)."""
    fit_mean, fit_se = mean_and_se(fit)
    mean, se = mean_and_se(values)
    allowed = max(3 * math.hypot(fit_se, se), 0.02 * fit_mean)
    assert abs(mean - fit_mean) <= allowed, (
        f"{name} mean val_mse {mean:.2f} ± {se:.2f} vs fit {fit_mean:.2f} ± {fit_se:.2f}: "
        f"{name}={np.round(values, 2)}, fit={np.round(fit, 2)}"
    )


@functools.cache
def _fit_values(space: str, params: str) -> tuple[float, ...]:
    task = load_task("boston")
    build = space_build(task, space, json.loads(params))
    return tuple(evaluate(build, data_for(task), "val_mse", seed).value for seed in SEEDS)


def fit_values(space: str, params: dict[str, Any]) -> list[float]:
    """``fit``'s val_mse on Boston over SEEDS, computed once per test session."""
    return list(_fit_values(space, json.dumps(params, sort_keys=True)))
