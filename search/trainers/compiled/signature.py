"""Which models share a compiled program (and a group of the population): their signature,
everything that shapes the program with the traced hyperparameters left out."""

from __future__ import annotations

import json
from typing import Any

import keras

from search.space import compile_arguments


def signature(model: keras.Model, batch_size: int) -> str:
    """Everything that shapes the compiled program, with the traced hyperparameters left out.

    The traced ones are the learning rate, ``clipnorm``, L1/L2 coefficients and dropout
    rates; initializers do not matter either (the initial values are arguments). Layers are
    described by position, not name, so models that Keras auto-named differently still share
    a program.
    """
    options = dict(model.optimizer.get_config())
    options.pop("name", None)
    if isinstance(options.get("learning_rate"), float):
        options["learning_rate"] = "traced"
    if options.get("clipnorm") is None or isinstance(options.get("clipnorm"), float):
        options["clipnorm"] = "traced"
    loss = model.loss
    compiled = compile_arguments(model)
    described = {
        "layers": [_describe_layer(layer) for layer in model.layers],
        "input": [model.inputs[0].shape, model.inputs[0].dtype],
        "variables": [
            # L1/L2 on a variable is traced: only whether it is penalised shapes the program.
            [v.shape, v.dtype, v.trainable, v.regularizer is not None]
            for v in model.variables
        ],
        "optimizer": [type(model.optimizer).__name__, options],
        "loss": loss
        if isinstance(loss, str)
        else [
            type(loss).__name__,
            getattr(getattr(loss, "fn", None), "__name__", None),
            loss.get_config(),
        ],
        "metrics": [[type(m).__name__, m.get_config()] for m in compiled.get("metrics") or []],
        "batch_size": int(batch_size),
        "floatx": keras.config.floatx(),
    }
    return json.dumps(described, sort_keys=True, default=repr)


_SCALARS = (bool, int, float, str, type(None), tuple, list)


def _describe_layer(layer: keras.layers.Layer) -> dict[str, Any]:
    """A layer's class, dtype policy and public settings, minus name and traced values."""
    described: dict[str, Any] = {
        "class": type(layer).__name__,
        "dtype_policy": layer.dtype_policy.name,
        "trainable": layer.trainable,
    }
    for key, value in vars(layer).items():
        if key.startswith("_") or key in ("name", "built"):
            continue
        if isinstance(value, _SCALARS):
            described[key] = value
        elif key.endswith("_constraint"):
            described[key] = [type(value).__name__, value.get_config()]
    if isinstance(layer, keras.layers.Dropout):
        # The rate is traced; the seed only sets the seed generator's initial state.
        described.pop("rate", None)
        described.pop("seed", None)
    activation = getattr(layer, "activation", None)
    if activation is not None:
        described["activation"] = getattr(activation, "__name__", repr(activation))
    return described
