"""The task's output layer (``Space.output_layer``): a regression output starts at the
training split's target mean, in every trainer and in a saved model."""

from __future__ import annotations

from pathlib import Path

import keras
import keras_tuner as kt
import numpy as np
import pytest

from search.spaces.mlp import MLP
from search.tasks import Task, load_task
from search.trainers.numpy.net import Net


@pytest.fixture(scope="module")
def boston() -> Task:
    return load_task("boston")


def test_a_regression_task_records_its_training_target_mean(boston: Task) -> None:
    assert boston.spec.target_mean == pytest.approx(float(boston.y_train.mean()), rel=1e-6)
    assert boston.spec.target_mean > 20  # Boston's prices: far from the zero bias of before
    assert load_task("circles").spec.target_mean == 0.0  # a class's output keeps its zero


def test_the_output_bias_starts_at_the_target_mean_for_keras_and_the_numpy_trainer(
    boston: Task, tmp_path: Path
) -> None:
    model = MLP(boston.spec).build(kt.HyperParameters())
    mean = boston.spec.target_mean
    bias = keras.ops.convert_to_numpy(model.get_layer("output").bias)
    np.testing.assert_allclose(bias, [mean], rtol=1e-6)
    # The numpy trainer draws each model's initial weights from the layers' initializers.
    np.testing.assert_allclose(Net(model).drawn(seed=3)[-1], [mean], rtol=1e-6)
    # A model saved with its initializer loads in plain Keras, the initializer kept.
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", compile=False)
    config = loaded.get_layer("output").get_config()["bias_initializer"]
    assert config["config"]["value"] == pytest.approx(mean, rel=1e-6)
