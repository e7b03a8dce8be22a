"""The compiled trainer's own parts (search/trainers/compiled/): chunks of epochs, the
program cache, shapes and the refusal of what it cannot train.

What every trainer keeps, this one's agreement with Keras ``fit``
(search/trainers/keras_fit.py) included, is tested in ``test_trainers.py``.
"""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np
import pytest
from trainer_cases import DISTRIBUTION_CASES, data_for, small_build, space_build

from search.tasks import Task, load_task
from search.trainers import Build, Job, TrainData, TrialResult
from search.trainers.checkpoint import Checkpoint, Every, Saved, read
from search.trainers.compiled import CHUNK, CompiledTrainer
from search.trainers.compiled import trainer as compiled

jax_only = pytest.mark.backend("jax", why="the compiled trainer is JAX-only")
TRAINER = CompiledTrainer()


def evaluate(build: Build, data: TrainData, seed: int, chunk: int = CHUNK) -> TrialResult:
    """One configuration through the compiled trainer, ``chunk`` epochs a jitted call, towards
    val_mse: its result, or what ended it raised."""
    outcome = CompiledTrainer(chunk).evaluate([Job(build, seed)], data, "val_mse")[0]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


@pytest.fixture(scope="module")
def boston() -> Task:
    return load_task("boston")


@jax_only
def test_curves_have_one_entry_per_epoch(boston: Task) -> None:
    data = data_for(boston, epochs=13)
    result = evaluate(small_build(dropout=0.2), data, seed=0, chunk=5)
    assert set(result.curves[0]) == {"loss", "mse", "mae", "val_loss", "val_mse", "val_mae"}
    assert all(len(values) == 13 for values in result.curves[0].values())
    assert result.epochs == 13
    assert result.metrics["val_mse"] == min(result.curves[0]["val_mse"])


@jax_only
def test_early_stopping_inside_a_later_chunk(boston: Task) -> None:
    """Chunks of 3 epochs: a run that stops after epoch 5 stops inside its second chunk."""
    data = data_for(boston, epochs=50, patience=4)
    build = small_build(learning_rate=0.0, optimizer=keras.optimizers.SGD)
    result = evaluate(build, data, seed=0, chunk=3)
    assert result.epochs == 5
    assert all(len(values) == 5 for values in result.curves[0].values())
    assert result.best_epoch == 1


@jax_only
def test_configurations_of_one_shape_form_one_population() -> None:
    """Learning rates differ, shapes do not: one group, one vmapped program."""
    builds = [
        small_build(learning_rate=0.01, optimizer=keras.optimizers.SGD),
        small_build(learning_rate=1e4, optimizer=keras.optimizers.SGD),
        small_build(learning_rate=0.001, optimizer=keras.optimizers.SGD),
    ]
    assert not any(TRAINER.unsupported(build()[0], "val_mse") for build in builds)
    assert len({TRAINER.group_key(*build()) for build in builds}) == 1


@jax_only
def test_one_program_serves_configurations_of_one_shape(boston: Task) -> None:
    """Learning rate, dropout rate, clipnorm and penalties are traced: no retrace."""
    data = data_for(boston, epochs=4)
    first = space_build(boston, "mlp", dict(DISTRIBUTION_CASES[2][1]))
    second_params = dict(DISTRIBUTION_CASES[2][1])
    second_params.update(learning_rate=0.02, dropout_0=0.1, l2=1e-5, clipnorm=5.0)
    second = space_build(boston, "mlp", second_params)
    wider = space_build(boston, "mlp", {**second_params, "units_0": 64})
    key = TRAINER.group_key(*first())
    assert TRAINER.group_key(*second()) == key
    assert TRAINER.group_key(*wider()) != key
    compiled._PROGRAMS.clear()
    evaluate(first, data, 0)
    evaluate(second, data, 1)
    program = compiled._PROGRAMS[key]
    assert len(compiled._PROGRAMS) == 1
    assert program._single._cache_size() == 1
    # Keras auto-names the layers of each new Sequential model; positions decide, not names.
    assert TRAINER.group_key(*small_build()()) == TRAINER.group_key(*small_build()())


class _StopAfter(Checkpoint):
    """A checkpoint written after every chunk whose ``saves``-th write is followed by an
    interruption, as a kill right after it would be (``SEARCH_KILL_AT=checkpoint:N``)."""

    def __init__(self, path: Path, saves: int) -> None:
        super().__init__(path, Every(epochs=1, seconds=0))
        self.left = saves

    def save(self, saved: Saved) -> None:
        super().save(saved)
        self.left -= 1
        if self.left == 0:
            raise KeyboardInterrupt


@jax_only
def test_a_continued_population_goes_on_as_uninterrupted(tmp_path: Path, boston: Task) -> None:
    """Minibatches, dropout, two folds and a population of two: interrupted after the
    first chunk of the second fold, the first member's checkpoint holds fold 1 finished and
    fold 2's state after 3 epochs, the second's fold 1 only. Continued, the finished fold
    is kept (its pruner is not told it again), each member resumes where it stopped, and
    every curve is the uninterrupted one: the weights, the optimizer state and the dropout's
    seed state are restored and the shuffles replayed (a member continued alone rounds as
    a program of one, 1e-7 off the pair's: 2026-12-07)."""
    data = data_for(boston, epochs=8, cv=2)
    builds = [small_build(dropout=0.2), small_build(dropout=0.4, learning_rate=0.02)]
    paths = [tmp_path / "trial_0000.npz", tmp_path / "trial_0001.npz"]
    trainer = CompiledTrainer(chunk=3)
    first = [Job(builds[0], 0, checkpoint=_StopAfter(paths[0], 4))]
    first.append(Job(builds[1], 1, checkpoint=Checkpoint(paths[1], Every(epochs=1, seconds=0))))
    with pytest.raises(KeyboardInterrupt):
        trainer.evaluate(first, data, "val_mse")
    saved = [read(path) for path in paths]
    assert [len(curve["val_mse"]) for curve in saved[0].curves] == [8, 3]
    assert list(saved[0].running) == [1]
    assert [len(curve["val_mse"]) for curve in saved[1].curves] == [8]
    assert saved[1].running == {}
    reported: list[int] = []
    again = [
        Job(
            build,
            seed,
            lambda epoch, value: reported.append(epoch),
            checkpoint=Checkpoint(path, Every()),
        )
        for seed, (build, path) in enumerate(zip(builds, paths, strict=True))
    ]
    continued = trainer.evaluate(again, data, "val_mse")
    uninterrupted = trainer.evaluate(
        [Job(build, seed) for seed, build in enumerate(builds)], data, "val_mse"
    )
    assert reported == []
    for got, expected, kept in zip(continued, uninterrupted, saved, strict=True):
        assert isinstance(got, TrialResult) and isinstance(expected, TrialResult)
        assert got.curves[0] == kept.curves[0]
        assert [len(curve["val_mse"]) for curve in got.curves] == [8, 8]
        for run, curve in enumerate(expected.curves):
            for key, values in curve.items():
                np.testing.assert_allclose(got.curves[run][key], values, rtol=1e-5, err_msg=key)


@jax_only
def test_a_checkpoint_of_another_model_starts_the_trial_over(
    tmp_path: Path, boston: Task, caplog: pytest.LogCaptureFixture
) -> None:
    """A checkpoint whose state does not fit the model the space builds now (16 units then,
    8 now) is not restored: a note, and the trial trains every epoch from its start."""
    data = data_for(boston, epochs=6)
    path = tmp_path / "trial_0000.npz"
    stop = Job(small_build(units=16), 0, checkpoint=_StopAfter(path, 1))
    with pytest.raises(KeyboardInterrupt):
        CompiledTrainer(chunk=3).evaluate([stop], data, "val_mse")
    assert list(read(path).running) == [0]
    reported: list[int] = []
    job = Job(
        small_build(units=8),
        0,
        lambda epoch, value: reported.append(epoch),
        checkpoint=Checkpoint(path, Every()),
    )
    with caplog.at_level("INFO", logger="search"):
        result = CompiledTrainer(chunk=3).evaluate([job], data, "val_mse")[0]
    assert "does not fit" in caplog.text
    assert reported == list(range(1, 7))
    assert isinstance(result, TrialResult) and result.earlier == 0.0
    expected = evaluate(small_build(units=8), data, seed=0, chunk=3)
    assert result.curves == expected.curves


@jax_only
def test_unsupported_models_are_named() -> None:
    """What the compiled trainer cannot train says why (``test_trainers.py`` checks that such
    a model is trained by ``fit``)."""
    build = small_build(extra=keras.layers.BatchNormalization())
    assert "BatchNormalization" in (TRAINER.unsupported(build()[0], "val_mse") or "")


@pytest.mark.backend("tensorflow", why="the fallback is for the backends other than JAX")
def test_other_backends_fall_back_to_fit(boston: Task) -> None:
    """On any backend but JAX the compiled entry point keeps evaluate's contract."""
    build = small_build()
    assert "JAX backend" in (TRAINER.unsupported(build()[0], "val_mse") or "")
    result = evaluate(build, data_for(boston, epochs=2), 0)
    assert result.epochs == 2 and math.isfinite(result.value)
