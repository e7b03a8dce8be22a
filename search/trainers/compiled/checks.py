"""What the compiled trainer cannot train as ``fit`` would: :func:`unsupported` says why."""

from __future__ import annotations

import keras

from search.errors import UnsupportedModelError
from search.trainers.checks import (
    chain,
    check_objective,
    check_optimizer_options,
    check_reduction,
    checked_compile,
    penalty,
)

# Layers that treat every row on its own, so padding the last batch cannot change the real
# rows' outputs (BatchNormalization mixes rows), and whose settings are all plain values the
# signature can see (Normalization with given statistics keeps them as constants, not
# variables, so two such layers would wrongly share a program).
_ROW_WISE_LAYERS: tuple[type[keras.layers.Layer], ...] = (
    keras.layers.Dense,
    keras.layers.Dropout,
    keras.layers.Activation,
    keras.layers.LayerNormalization,
    keras.layers.Identity,
    keras.layers.ReLU,
    keras.layers.ELU,
    keras.layers.LeakyReLU,
    keras.layers.Softmax,
    keras.layers.Flatten,
)


def unsupported(model: keras.Model, objective: str | None) -> str | None:
    """Why the compiled trainer cannot train ``model`` towards ``objective`` (None: a
    retraining); None when it can."""
    try:
        _check(model, objective)
    except UnsupportedModelError as error:
        return str(error)
    return None


def _check(model: keras.Model, objective: str | None) -> None:
    if keras.backend.backend() != "jax":
        raise UnsupportedModelError(
            f"the compiled trainer needs the JAX backend, not {keras.backend.backend()}"
        )
    compiled = checked_compile(model)
    optimizer = compiled.get("optimizer")
    if not isinstance(optimizer, keras.optimizers.Optimizer) or model.loss is None:
        raise UnsupportedModelError("the model is not compiled with a Keras optimizer and a loss")
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        raise UnsupportedModelError("LossScaleOptimizer")
    check_optimizer_options(optimizer.get_config())
    loss = model.loss
    if isinstance(loss, keras.losses.Loss):
        check_reduction(loss)
    elif not isinstance(loss, str):
        raise UnsupportedModelError("only a single Keras loss (an object or a name)")
    metrics = compiled.get("metrics") or []
    if not isinstance(metrics, list) or not all(
        isinstance(m, keras.metrics.Metric) for m in metrics
    ):
        raise UnsupportedModelError("metrics must be a list of keras.metrics objects")
    check_objective(objective, [m.name for m in metrics])
    for layer in chain(model):
        if not isinstance(layer, _ROW_WISE_LAYERS):
            raise UnsupportedModelError(f"layer {layer.name!r} ({type(layer).__name__})")
    for variable in model.trainable_variables:
        penalty(variable.regularizer)
