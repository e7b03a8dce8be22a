"""The compiled trainer (search/compiled.py) against Keras ``fit`` (search/training.py).

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

from search import compiled, training
from search.tasks import Task, load_task
from search.training import TrialFailedError, evaluate, retrain

jax_only = pytest.mark.skipif(
    keras.backend.backend() != "jax", reason="the compiled trainer is JAX-only"
)


@pytest.fixture(scope="module")
def boston() -> Task:
    return load_task("boston")


@jax_only
@pytest.mark.parametrize(("space", "params"), DISTRIBUTION_CASES)
def test_matches_fit_in_distribution(boston: Task, space: str, params: dict[str, Any]) -> None:
    data = data_for(boston)
    build = space_build(boston, space, params)
    single = [compiled.evaluate_compiled(build, data, "val_mse", seed).value for seed in SEEDS]
    population = compiled.evaluate_population([build] * len(SEEDS), data, "val_mse", list(SEEDS))
    together = [result.value for result in population if not isinstance(result, Exception)]
    assert len(together) == len(SEEDS)
    # The same seeds draw the same shuffles and dropout masks in both compiled programs.
    np.testing.assert_allclose(together, single, rtol=1e-3)
    fit = fit_values(space, params)
    assert_same_distribution("compiled", single, fit)
    assert_same_distribution("population", together, fit)


@jax_only
@pytest.mark.parametrize(("task_name", "space", "params"), EXACT_CASES)
def test_equals_fit_without_randomness(task_name: str, space: str, params: dict[str, Any]) -> None:
    """One padded batch per epoch and no dropout: loss, penalties, optimizer and metrics."""
    task = load_task(task_name)
    data = data_for(task, epochs=15)
    build = space_build(task, space, params, batch=BIG_BATCH)
    expected = evaluate(build, data, task.objective, seed=3)
    result = compiled.evaluate_compiled(build, data, task.objective, seed=3)
    assert set(result.curves[0]) == set(expected.curves[0])
    for key, values in expected.curves[0].items():
        np.testing.assert_allclose(result.curves[0][key], values, rtol=2e-5, err_msg=key)
    assert result.best_epoch == expected.best_epoch
    assert result.value == pytest.approx(expected.value, rel=2e-5)


@jax_only
def test_folds_and_executions_equal_fit(boston: Task) -> None:
    """cv and executions: the same runs, seeds and averaging as ``evaluate``."""
    data = data_for(boston, epochs=8, cv=2, executions=2)
    build = small_build(batch=BIG_BATCH)
    expected = evaluate(build, data, "val_mse", seed=11)
    result = compiled.evaluate_compiled(build, data, "val_mse", seed=11)
    assert len(result.curves) == len(expected.curves) == 4
    assert result.value == pytest.approx(expected.value, rel=2e-5)
    assert result.metrics == pytest.approx(expected.metrics, rel=2e-5)
    assert (result.epochs, result.best_epoch) == (expected.epochs, expected.best_epoch)


@jax_only
def test_curves_have_one_entry_per_epoch(boston: Task) -> None:
    data = data_for(boston, epochs=13)
    result = compiled.evaluate_compiled(small_build(dropout=0.2), data, "val_mse", seed=0, chunk=5)
    assert set(result.curves[0]) == {"loss", "mse", "mae", "val_loss", "val_mse", "val_mae"}
    assert all(len(values) == 13 for values in result.curves[0].values())
    assert result.epochs == 13
    assert result.metrics["val_mse"] == min(result.curves[0]["val_mse"])


@jax_only
def test_epochs_override(boston: Task) -> None:
    """keras-tuner's Hyperband passes the epochs of each trial."""
    result = compiled.evaluate_compiled(small_build(), data_for(boston), "val_mse", 0, epochs=3)
    assert result.epochs == 3
    assert len(result.curves[0]["loss"]) == 3


@jax_only
def test_early_stopping_stops(boston: Task) -> None:
    """With a zero learning rate the curve is flat: training stops after ``patience`` epochs."""
    data = data_for(boston, epochs=50, patience=4)
    build = small_build(learning_rate=0.0, optimizer=keras.optimizers.SGD)
    result = compiled.evaluate_compiled(build, data, "val_mse", seed=0, chunk=3)
    expected = evaluate(build, data, "val_mse", seed=0)
    assert result.epochs == expected.epochs == 5
    assert all(len(values) == 5 for values in result.curves[0].values())
    assert result.best_epoch == 1


@jax_only
def test_divergence_fails_the_trial(boston: Task) -> None:
    diverging = small_build(learning_rate=1e4, optimizer=keras.optimizers.SGD)
    with pytest.raises(TrialFailedError, match=r"loss became (nan|inf) at epoch \d+"):
        compiled.evaluate_compiled(diverging, data_for(boston), "val_mse", seed=0)


@jax_only
def test_population_member_failure_and_pruning_stay_local(boston: Task) -> None:
    """A diverging member and a pruned one end alone; the others are scored."""
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

    outcomes = compiled.evaluate_population(
        builds, data, "val_mse", seeds=[1, 2, 3], reports=[None, None, prune_at_3], chunk=5
    )
    assert compiled.group_by_shape(builds) == [[0, 1, 2]]
    assert not isinstance(outcomes[0], Exception) and outcomes[0].epochs == 12
    assert isinstance(outcomes[1], TrialFailedError)
    assert isinstance(outcomes[2], optuna.TrialPruned)
    assert [epoch for epoch, _ in reported] == [1, 2, 3]


@jax_only
def test_pruning_propagates_from_a_single_trial(boston: Task) -> None:
    def prune(epoch: int, value: float) -> None:
        if epoch == 2:
            raise optuna.TrialPruned("pruned")

    partial: list[dict[str, list[float]]] = []
    with pytest.raises(optuna.TrialPruned):
        compiled.evaluate_compiled(
            small_build(), data_for(boston), "val_mse", 0, prune, None, partial, chunk=4
        )
    # A pruned trial still hands back the epochs it ran, as evaluate does for TensorBoard.
    assert len(partial) == 1 and len(partial[0]["val_mse"]) == 2


@jax_only
def test_one_program_serves_configurations_of_one_shape(boston: Task) -> None:
    """Learning rate, dropout rate, clipnorm and penalties are traced: no retrace."""
    data = data_for(boston, epochs=4)
    first = space_build(boston, "mlp", dict(DISTRIBUTION_CASES[2][1]))
    second_params = dict(DISTRIBUTION_CASES[2][1])
    second_params.update(learning_rate=0.02, dropout_0=0.1, l2=1e-5, clipnorm=5.0)
    second = space_build(boston, "mlp", second_params)
    wider = space_build(boston, "mlp", {**second_params, "units_0": 64})
    key = compiled.shape_key(*first())
    assert compiled.shape_key(*second()) == key
    assert compiled.shape_key(*wider()) != key
    compiled.clear_cache()
    compiled.evaluate_compiled(first, data, "val_mse", 0)
    compiled.evaluate_compiled(second, data, "val_mse", 1)
    program = compiled._PROGRAMS[key]
    assert len(compiled._PROGRAMS) == 1
    assert program._single._cache_size() == 1
    # Keras auto-names the layers of each new Sequential model; positions decide, not names.
    assert compiled.shape_key(*small_build()()) == compiled.shape_key(*small_build()())


@jax_only
def test_retrain_equals_fit_without_randomness(boston: Task) -> None:
    data = data_for(boston)
    build = small_build(batch=BIG_BATCH)
    expected = training.test_scores(retrain(build, 7, data, seed=5), boston)
    model = compiled.retrain_compiled(build, 7, data, seed=5)
    assert training.test_scores(model, boston) == pytest.approx(expected, rel=1e-4)


@jax_only
def test_unsupported_model_falls_back_to_fit(boston: Task) -> None:
    build = small_build(extra=keras.layers.BatchNormalization())
    assert not compiled.supports(build()[0])
    result = compiled.evaluate_compiled(build, data_for(boston, epochs=2), "val_mse", 0)
    assert result.epochs == 2
    with pytest.raises(compiled.UnsupportedModelError, match="BatchNormalization"):
        compiled.evaluate_compiled(build, data_for(boston, epochs=2), "val_mse", 0, fallback=False)


def test_other_backends_fall_back_to_fit(boston: Task) -> None:
    """On any backend the compiled entry point keeps evaluate's contract."""
    if keras.backend.backend() == "jax":
        pytest.skip("the fallback is exercised on the other backends")
    build = small_build()
    assert not compiled.supports(build()[0])
    result = compiled.evaluate_compiled(build, data_for(boston, epochs=2), "val_mse", 0)
    assert result.epochs == 2 and math.isfinite(result.value)


@jax_only
@pytest.mark.parametrize("engine", ["optuna", "keras-tuner"])
def test_a_study_runs_on_the_compiled_trainer(tmp_path: Path, engine: str) -> None:
    """Both engines, TensorBoard, top-k retraining and best.keras, with --trainer compiled."""
    from conftest import STUDY_ARGS, read_curves, tiny_run

    study = tiny_run(tmp_path, "boston", "mlp", engine, *STUDY_ARGS, "--trainer", "compiled")
    trials = study.trials()
    assert (trials["state"] == "complete").all() and len(trials) == 3
    assert trials["test_mse"].notna().sum() == 2
    assert (study.folder / "best.keras").is_file()
    config = json.loads((study.folder / "study.json").read_text())["config"]
    assert config["trainer"] == "compiled"
    runs = sorted(p for p in (study.folder / "tensorboard").iterdir() if p.is_dir())
    assert len(runs) == 3
    assert len(read_curves(runs[0] / "validation")["epoch_mse"]) == 2
