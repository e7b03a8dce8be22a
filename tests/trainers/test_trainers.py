"""The contract every trainer keeps: one suite over ``get_trainer(name)`` (search/trainers/).

Each test runs through the :class:`~search.trainers.Trainer` protocol (``evaluate`` and
``retrain``) on ``numpy`` (search/trainers/numpy/), ``keras`` (Keras ``fit``,
search/trainers/keras_fit.py) and ``compiled`` (search/trainers/compiled/, JAX only).
Comparisons with ``fit`` run on the fast trainers only (``FAST``): the ``keras`` trainer *is*
``fit``, so for it they hold trivially. The cases and the two kinds of agreement with ``fit``
are in ``trainer_cases.py``; what only one trainer has (the numpy trainer's network, the
compiled trainer's program cache and chunks, what each refuses) is tested in
``test_numpy_trainer.py`` and ``test_compiled.py``, the numpy trainer's populations in
``test_population.py``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import optuna
import pytest
from trainer_cases import (
    BIG_BATCH,
    CLASSIFICATION_CASES,
    DISTRIBUTION_CASES,
    EXACT_CASES,
    SEEDS,
    assert_same_distribution,
    data_for,
    fit_values,
    small_build,
    space_build,
)

from search import trainers
from search.errors import TrialFailedError
from search.space import loss_for, metrics_for
from search.tasks import Task, load_task
from search.trainers import (
    TRAINERS,
    Build,
    Job,
    Report,
    TrainData,
    TrialResult,
    get_trainer,
)
from search.trainers.checkpoint import Checkpoint, Every, read
from search.trainers.keras_fit import evaluate, retrain

pytestmark = pytest.mark.backend(
    "tensorflow", "jax", why="every trainer is compared with fit, which the numpy backend lacks"
)
JAX_ONLY = pytest.mark.backend("jax", why="the compiled trainer is JAX-only")


def _trainers(*names: str) -> list[Any]:
    """``names`` as parameters of ``trainer``; the compiled one skips off JAX."""
    return [
        pytest.param(name, id=name, marks=JAX_ONLY if name == "compiled" else ()) for name in names
    ]


# The lookup trainer trains nothing: it reads tabular benchmarks (tests/tasks/test_tabular.py).
ALL = _trainers(*(name for name in TRAINERS if name != "lookup"))
# Compared with fit; the keras trainer is fit itself, so there the comparison is trivially true.
FAST = _trainers("numpy", "compiled")

# How closely each fast trainer's curves equal fit's where nothing random is left: float32
# rounding, grown over 15 epochs of Adam. The worst measured (2026-12-02, every exact case, both
# backends) was 1.2e-5 for numpy (Boston MLP) and 3.2e-7 for compiled; docs/training.md quotes them.
EXACT_RTOL = {"numpy": 3e-5, "compiled": 3e-6}


@pytest.fixture(scope="module")
def boston() -> Task:
    return load_task("boston")


def run_one(
    trainer: str,
    build: Build,
    data: TrainData,
    objective: str,
    seed: int,
    report: Report | None = None,
    epochs: int | None = None,
    curves: list[dict[str, list[float]]] | None = None,
) -> TrialResult:
    """One configuration through ``trainer``'s ``evaluate``: its result, or what ended it
    (a non-finite loss, its report's pruning) raised."""
    job = Job(build, seed, report, epochs, [] if curves is None else curves)
    outcome = get_trainer(trainer).evaluate([job], data, objective)[0]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def retrain_one(trainer: str, build: Build, epochs: int, data: TrainData, seed: int) -> keras.Model:
    """One configuration through ``trainer``'s ``retrain`` from one seed: the model, or the
    error of a diverged run raised."""
    model = get_trainer(trainer).retrain(build, epochs, data, [seed])[0]
    if isinstance(model, Exception):
        raise model
    return model


def assert_equals_fit(trainer: str, build: Build, data: TrainData, objective: str) -> TrialResult:
    """``trainer``'s curves, best epoch and value equal fit's from one seed; its result."""
    expected = evaluate(build, data, objective, seed=3)
    result = run_one(trainer, build, data, objective, seed=3)
    rtol = EXACT_RTOL[trainer]
    assert set(result.curves[0]) == set(expected.curves[0])
    for key, values in expected.curves[0].items():
        np.testing.assert_allclose(result.curves[0][key], values, rtol=rtol, err_msg=key)
    assert result.best_epoch == expected.best_epoch
    assert result.value == pytest.approx(expected.value, rel=rtol)
    return result


@pytest.mark.parametrize("trainer", FAST)
@pytest.mark.parametrize(("task_name", "space", "params"), EXACT_CASES + CLASSIFICATION_CASES)
def test_equals_fit_without_randomness(
    trainer: str, task_name: str, space: str, params: dict[str, Any]
) -> None:
    """One (padded) batch per epoch and no dropout: loss, penalties, optimizer, metrics,
    validation."""
    task = load_task(task_name)
    build = space_build(task, space, params, batch=BIG_BATCH)
    assert_equals_fit(trainer, build, data_for(task, epochs=15), task.objective)


@pytest.mark.parametrize("trainer", FAST)
@pytest.mark.parametrize("clipping", ["clipnorm", "global_clipnorm", "clipvalue"])
def test_gradient_clipping_equals_fit(boston: Task, trainer: str, clipping: str) -> None:
    """Each of Keras' three clippings, tight enough to bind on every step of plain SGD."""
    data = data_for(boston, epochs=15)

    def sgd(**options: float) -> Callable[[float], keras.optimizers.Optimizer]:
        return lambda learning_rate: keras.optimizers.SGD(learning_rate, **options)

    limit = 0.05 if clipping == "clipvalue" else 0.5
    clipped = assert_equals_fit(
        trainer, small_build(optimizer=sgd(**{clipping: limit}), batch=BIG_BATCH), data, "val_mse"
    )
    free = run_one(trainer, small_build(optimizer=sgd(), batch=BIG_BATCH), data, "val_mse", 3)
    # The clipping binds: without it the same run learns a different curve.
    assert not np.allclose(clipped.curves[0]["loss"], free.curves[0]["loss"], rtol=0.01)


@pytest.mark.parametrize("trainer", FAST)
@pytest.mark.parametrize("task_name", ["breast-cancer", "digits"])
def test_saturated_outputs_equal_fit(trainer: str, task_name: str) -> None:
    """Outputs far past what float32 tells from 0 or 1. On TensorFlow Keras computes the
    crossentropy from the logits; on the other backends it clips the probabilities to
    [epsilon, 1 - epsilon], which caps a row's loss and stops its gradient: the trainer
    must do as the backend does."""
    task = load_task(task_name)
    binary = task.spec.kind == "binary"

    def build() -> tuple[keras.Model, int]:
        model = keras.Sequential(
            [
                keras.Input((task.spec.n_features,)),
                keras.layers.Dense(
                    1 if binary else task.spec.n_classes,
                    activation="sigmoid" if binary else "softmax",
                    kernel_initializer=keras.initializers.RandomNormal(stddev=20.0, seed=1),
                ),
            ]
        )
        model.compile(
            optimizer=keras.optimizers.Adam(0.05),
            loss=loss_for(task.spec.kind),
            metrics=metrics_for(task.spec.kind),
        )
        return model, BIG_BATCH

    model, _ = build()
    kernel, bias = (np.asarray(v) for v in model.layers[-1].weights)
    logits = task.standardize(task.x_train) @ kernel + bias
    # Some rows' logits lie far past where float32 tells a sigmoid or softmax from 0 or 1
    # (about 17): the clip is reached.
    spread = logits.max(axis=-1) - (logits.min(axis=-1) if not binary else 0)
    assert (np.abs(spread) > 40).any()
    result = assert_equals_fit(trainer, build, data_for(task, epochs=10), task.objective)
    if keras.backend.backend() != "tensorflow":
        # Clipped rows cost at most -log(epsilon) each, so no mean can exceed it.
        assert max(result.curves[0]["loss"]) <= -math.log(keras.config.epsilon()) + 1e-3


@pytest.mark.parametrize("trainer", FAST)
@pytest.mark.parametrize(("space", "params"), DISTRIBUTION_CASES)
def test_matches_fit_in_distribution(
    boston: Task, trainer: str, space: str, params: dict[str, Any]
) -> None:
    """Minibatches of 16 and 32, dropout, penalties and clipping, over five seeds: trained
    one configuration per call, and all five seeds in one call (a population)."""
    data = data_for(boston)
    build = space_build(boston, space, params)
    single = [run_one(trainer, build, data, "val_mse", seed).value for seed in SEEDS]
    population = get_trainer(trainer).evaluate(
        [Job(build, seed) for seed in SEEDS], data, "val_mse"
    )
    together = [result.value for result in population if not isinstance(result, Exception)]
    assert len(together) == len(SEEDS)
    if trainer == "compiled":
        # The same seeds draw the same shuffles and dropout masks in both compiled programs;
        # the numpy trainer draws a population's from all of its members' seeds together.
        np.testing.assert_allclose(together, single, rtol=1e-3)
    fit = fit_values(space, params)
    assert_same_distribution(trainer, single, fit)
    assert_same_distribution(f"{trainer} population", together, fit)


@pytest.mark.parametrize("trainer", FAST)
def test_folds_and_executions(boston: Task, trainer: str) -> None:
    """Every fold x execution is a run, averaged as ``fit``'s are; the first starts where fit
    starts, the runs of one fold differ."""
    data = data_for(boston, epochs=8, cv=2, executions=2)
    build = small_build(batch=BIG_BATCH)
    expected = evaluate(build, data, "val_mse", seed=11)
    result = run_one(trainer, build, data, "val_mse", seed=11)
    assert len(result.curves) == len(expected.curves) == 4
    np.testing.assert_allclose(
        result.curves[0]["val_mse"], expected.curves[0]["val_mse"], rtol=EXACT_RTOL[trainer]
    )
    # Runs of one fold share their rows but not their initial weights.
    assert result.curves[0]["val_mse"] != result.curves[2]["val_mse"]
    mean = np.mean([curve["val_mse"] for curve in result.curves], axis=0)
    assert result.value == pytest.approx(float(mean.min()))
    assert result.best_epoch == int(mean.argmin()) + 1
    assert result.params == build()[0].count_params()
    if trainer == "compiled":
        # It builds every run's model from the run's seed, as fit does, so every run equals
        # fit's; the numpy trainer draws the other runs' initial weights itself.
        assert result.value == pytest.approx(expected.value, rel=2e-5)
        assert result.metrics == pytest.approx(expected.metrics, rel=2e-5)
        assert (result.epochs, result.best_epoch) == (expected.epochs, expected.best_epoch)


@pytest.mark.parametrize("trainer", ALL)
def test_early_stopping_stops(boston: Task, trainer: str) -> None:
    """With a zero learning rate the curve is flat: training stops after ``patience`` epochs,
    in every fold."""
    data = data_for(boston, epochs=50, patience=4, cv=3)
    build = small_build(learning_rate=0.0, optimizer=keras.optimizers.SGD)
    result = run_one(trainer, build, data, "val_mse", seed=0)
    expected = evaluate(build, data, "val_mse", seed=0)
    assert result.epochs == expected.epochs == 5
    assert len(result.curves) == 3
    assert all(len(values) == 5 for curve in result.curves for values in curve.values())
    assert result.best_epoch == 1


@pytest.mark.parametrize("trainer", ALL)
def test_epochs_override(boston: Task, trainer: str) -> None:
    """keras-tuner's Hyperband passes the epochs of each trial."""
    result = run_one(trainer, small_build(), data_for(boston), "val_mse", 0, epochs=3)
    assert result.epochs == 3
    assert len(result.curves[0]["loss"]) == 3


@pytest.mark.parametrize("trainer", ALL)
def test_divergence_fails_the_trial(boston: Task, trainer: str) -> None:
    diverging = small_build(learning_rate=1e4, optimizer=keras.optimizers.SGD)
    with pytest.raises(TrialFailedError, match=r"loss became (nan|inf) at epoch \d+"):
        run_one(trainer, diverging, data_for(boston), "val_mse", seed=0)


@pytest.mark.parametrize("trainer", ALL)
@pytest.mark.parametrize(("cv", "prune_at"), [(1, 2), (2, 3)], ids=["holdout", "2-fold"])
def test_pruning_sees_every_epoch_of_the_first_run(
    boston: Task, trainer: str, cv: int, prune_at: int
) -> None:
    """The first run reports every epoch; what its report raises ends the trial."""
    reported: list[int] = []

    def prune(epoch: int, value: float) -> None:
        reported.append(epoch)
        if epoch == prune_at:
            raise optuna.TrialPruned("pruned")

    partial: list[dict[str, list[float]]] = []
    data = data_for(boston, cv=cv)
    with pytest.raises(optuna.TrialPruned):
        run_one(trainer, small_build(), data, "val_mse", 0, prune, None, partial)
    assert reported == list(range(1, prune_at + 1))
    # A pruned trial still hands back the epochs it ran, for TensorBoard: the numpy trainer
    # trains every fold at once, the others train the folds one after the other and stop at
    # the pruned first.
    runs = cv if trainer == "numpy" else 1
    assert [len(curve["val_mse"]) for curve in partial] == [prune_at] * runs


@pytest.mark.parametrize("trainer", ALL)
def test_members_of_one_call_end_alone(boston: Task, trainer: str) -> None:
    """A diverging configuration and a pruned one end alone; the others are scored."""
    data = data_for(boston, epochs=12)
    builds = [
        small_build(learning_rate=0.01, optimizer=keras.optimizers.SGD),
        small_build(learning_rate=1e4, optimizer=keras.optimizers.SGD),
        small_build(learning_rate=0.001, optimizer=keras.optimizers.SGD),
    ]
    reported: list[tuple[int, float]] = []

    def prune_at_3(epoch: int, value: float) -> None:
        reported.append((epoch, value))
        if epoch == 3:
            raise optuna.TrialPruned(f"pruned at epoch {epoch}")

    reports = [None, None, prune_at_3]
    jobs = [Job(*job) for job in zip(builds, [1, 2, 3], reports, strict=True)]
    outcomes = get_trainer(trainer).evaluate(jobs, data, "val_mse")
    assert not isinstance(outcomes[0], Exception) and outcomes[0].epochs == 12
    assert isinstance(outcomes[1], TrialFailedError)
    assert isinstance(outcomes[2], optuna.TrialPruned)
    assert [epoch for epoch, _ in reported] == [1, 2, 3]


@pytest.mark.parametrize("trainer", FAST)
def test_retrain_equals_fit_without_randomness(boston: Task, trainer: str) -> None:
    data = data_for(boston)
    build = small_build(batch=BIG_BATCH)
    expected = trainers.test_scores(retrain(build, 7, data, seed=5), boston)
    model = retrain_one(trainer, build, 7, data, seed=5)
    assert trainers.test_scores(model, boston) == pytest.approx(expected, rel=1e-4)


EXTRA_LAYERS: dict[str, Callable[[], keras.layers.Layer]] = {
    "batchnorm": keras.layers.BatchNormalization,
    "softplus": lambda: keras.layers.Dense(8, activation="softplus"),
}


@pytest.mark.parametrize(
    ("trainer", "extra"),
    [
        pytest.param("numpy", "batchnorm", id="numpy-batchnorm"),
        pytest.param("numpy", "softplus", id="numpy-softplus"),
        # The compiled trainer trains softplus itself.
        pytest.param("compiled", "batchnorm", id="compiled-batchnorm", marks=JAX_ONLY),
    ],
)
def test_unsupported_model_falls_back_to_fit(boston: Task, trainer: str, extra: str) -> None:
    """A layer the fast trainer does not train (its own tests check that it says so) is
    trained by fit, with the same contract."""
    build = small_build(extra=EXTRA_LAYERS[extra]())
    result = run_one(trainer, build, data_for(boston, epochs=2), "val_mse", 0)
    assert result.epochs == 2 and math.isfinite(result.value)


@pytest.mark.parametrize("trainer", ALL)
@pytest.mark.parametrize("engine", ["optuna", "keras-tuner"])
def test_a_study_runs_on_each_trainer(tmp_path: Path, trainer: str, engine: str) -> None:
    """Both engines, 2-fold CV, TensorBoard, top-k retraining and best.keras on each trainer;
    numpy is the default, the others are chosen with --trainer."""
    from conftest import STUDY_ARGS, read_curves, tiny_run

    args = (*STUDY_ARGS, "--cv", "2") + (("--trainer", trainer) if trainer != "numpy" else ())
    study = tiny_run(tmp_path, "boston", "mlp", engine, *args)
    trials = study.trials()
    assert (trials["state"] == "complete").all() and len(trials) == 3
    assert trials["test_mse"].notna().sum() == 2
    assert keras.saving.load_model(study.folder / "best.keras", safe_mode=True) is not None
    config = json.loads((study.folder / "study.json").read_text())["config"]
    assert config["trainer"] == trainer
    # One TensorBoard run per trial (and, where the backend draws graphs, the best model's).
    runs = sorted(p for p in (study.folder / "tensorboard").glob("trial_*") if p.is_dir())
    assert len(runs) == 3
    validation = study.folder / "tensorboard" / "trial_0000" / "validation"
    assert len(read_curves(validation)["epoch_mse"]) == 2


@pytest.mark.parametrize(
    ("trainer", "cv"),
    [
        ("numpy", 1),
        ("numpy", 2),
        *(pytest.param("compiled", cv, id=f"compiled-{cv}", marks=JAX_ONLY) for cv in (1, 2)),
        # fit: the restored run's path is the holdout's; seconds of fit per call.
        pytest.param("keras", 2, marks=pytest.mark.slow),
    ],
)
def test_an_interrupted_trial_continues_from_its_checkpoint(
    tmp_path: Path, boston: Task, trainer: str, cv: int
) -> None:
    """Interrupted at epoch 5 (its report raises KeyboardInterrupt, as Ctrl-C would), the
    trial's checkpoint holds epochs 1-4; run again, it trains epochs 5-12 only, from the
    saved weights and optimizer state: with nothing random left (one batch, no dropout) its
    curve is the uninterrupted one. The compiled trainer writes its checkpoint between
    chunks of epochs: chunks of 4 here."""
    data = data_for(boston, epochs=12, cv=cv)
    build = small_build(batch=BIG_BATCH)
    path = tmp_path / "trial_0000.npz"
    every_epoch = Every(epochs=1, seconds=0)
    if trainer == "compiled":
        from search.trainers.compiled import CompiledTrainer

        chosen: trainers.Trainer = CompiledTrainer(chunk=4)
    else:
        chosen = get_trainer(trainer)

    def interrupt(epoch: int, value: float) -> None:
        if epoch == 5:
            raise KeyboardInterrupt

    job = Job(build, 0, interrupt, checkpoint=Checkpoint(path, every_epoch))
    with pytest.raises(KeyboardInterrupt):
        chosen.evaluate([job], data, "val_mse")
    kept = read(path).curves
    # The numpy trainer trains every fold at once; fit and compiled train them in turn.
    assert [len(curve["val_mse"]) for curve in kept] == [4] * (cv if trainer == "numpy" else 1)
    checkpoint = Checkpoint(path, every_epoch)
    reported: list[int] = []
    # A population trainer trains a new configuration of the call in a group of its own.
    builds = [build, small_build(learning_rate=0.02, batch=BIG_BATCH)][
        : 1 if trainer == "keras" else 2
    ]
    jobs = [
        Job(builds[0], 0, lambda epoch, value: reported.append(epoch), None, [], checkpoint),
        *(Job(build, 1) for build in builds[1:]),
    ]
    outcomes = chosen.evaluate(jobs, data, "val_mse")
    continued = outcomes[0]
    assert isinstance(continued, TrialResult)
    assert reported == list(range(5, 13))
    for run, curve in enumerate(kept):
        assert continued.curves[run]["val_mse"][:4] == curve["val_mse"]
    uninterrupted = run_one(trainer, build, data, "val_mse", seed=0)
    assert len(continued.curves) == len(uninterrupted.curves) == cv
    for got, expected in zip(continued.curves, uninterrupted.curves, strict=True):
        np.testing.assert_allclose(got["val_mse"], expected["val_mse"], rtol=1e-4)
    for other in outcomes[1:]:
        assert isinstance(other, TrialResult)
        assert [len(curve["val_mse"]) for curve in other.curves] == [12] * cv
