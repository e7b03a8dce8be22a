"""The compiled trainer's own parts (search/trainers/compiled.py): chunks of epochs, the
program cache, shapes and the refusal of what it cannot train.

What every trainer keeps, this one's agreement with Keras ``fit``
(search/trainers/keras_fit.py) included, is tested in ``test_trainers.py``.
"""

from __future__ import annotations

import math

import keras
import pytest
from trainer_cases import DISTRIBUTION_CASES, data_for, small_build, space_build

from search.errors import UnsupportedModelError
from search.tasks import Task, load_task
from search.trainers import compiled

jax_only = pytest.mark.skipif(
    keras.backend.backend() != "jax", reason="the compiled trainer is JAX-only"
)


@pytest.fixture(scope="module")
def boston() -> Task:
    return load_task("boston")


@jax_only
def test_curves_have_one_entry_per_epoch(boston: Task) -> None:
    data = data_for(boston, epochs=13)
    result = compiled.evaluate_compiled(small_build(dropout=0.2), data, "val_mse", seed=0, chunk=5)
    assert set(result.curves[0]) == {"loss", "mse", "mae", "val_loss", "val_mse", "val_mae"}
    assert all(len(values) == 13 for values in result.curves[0].values())
    assert result.epochs == 13
    assert result.metrics["val_mse"] == min(result.curves[0]["val_mse"])


@jax_only
def test_early_stopping_inside_a_later_chunk(boston: Task) -> None:
    """Chunks of 3 epochs: a run that stops after epoch 5 stops inside its second chunk."""
    data = data_for(boston, epochs=50, patience=4)
    build = small_build(learning_rate=0.0, optimizer=keras.optimizers.SGD)
    result = compiled.evaluate_compiled(build, data, "val_mse", seed=0, chunk=3)
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
    assert compiled.group_by_shape(builds) == [[0, 1, 2]]


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
def test_unsupported_model_is_refused_without_fallback(boston: Task) -> None:
    """``test_trainers.py`` checks that such a model goes to ``fit``; without the fallback
    it is refused, and the error says why."""
    build = small_build(extra=keras.layers.BatchNormalization())
    assert not compiled.supports(build()[0])
    with pytest.raises(UnsupportedModelError, match="BatchNormalization"):
        compiled.evaluate_compiled(build, data_for(boston, epochs=2), "val_mse", 0, fallback=False)


def test_other_backends_fall_back_to_fit(boston: Task) -> None:
    """On any backend the compiled entry point keeps evaluate's contract."""
    if keras.backend.backend() == "jax":
        pytest.skip("the fallback is exercised on the other backends")
    build = small_build()
    assert not compiled.supports(build()[0])
    result = compiled.evaluate_compiled(build, data_for(boston, epochs=2), "val_mse", 0)
    assert result.epochs == 2 and math.isfinite(result.value)
