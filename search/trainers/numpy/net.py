"""A Keras model read as the numpy trainer trains it: a chain of Dense and Dropout ops, its
loss, penalties, optimizer and metrics. Reading a model it cannot train raises
:class:`~search.errors.UnsupportedModelError`, saying why."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from search.errors import UnsupportedModelError
from search.space import keras_metric_classes
from search.trainers.checks import (
    chain,
    check_optimizer_options,
    check_reduction,
    checked_compile,
    penalty,
)

_HIDDEN = ("linear", "relu", "tanh", "elu", "sigmoid")
# The output activation each loss needs: the loss gradient is then taken in closed form.
_OUTPUT = {
    keras.losses.MeanSquaredError: "linear",
    keras.losses.BinaryCrossentropy: "sigmoid",
    keras.losses.SparseCategoricalCrossentropy: "softmax",
}
_METRICS = {cls: name for (_, name), cls in keras_metric_classes().items()}
_OPTIMIZERS = (keras.optimizers.SGD, keras.optimizers.RMSprop, keras.optimizers.Adam)


@dataclass(frozen=True)
class Op:
    """One step of the chain: a Dense layer (its parameter positions) or a dropout."""

    activation: str = "linear"
    kernel: int = -1  # position in the parameter list; -1 for a dropout
    bias: int = -1  # -1 without a bias
    dropout: int = -1  # a dropout's position among the net's dropouts (its rate in ``rates``)


class Net:
    """A model read as a chain of ops, its loss, penalties, optimizer and metrics."""

    def __init__(self, model: keras.Model) -> None:
        compiled = checked_compile(model)
        self.optimizer = Optimizer(compiled.get("optimizer"))
        self.kind = _output(model.loss)
        self.metric_names: list[str] = []
        self.metric_kinds: list[str] = []
        for metric in compiled.get("metrics") or []:
            kind = _METRICS.get(type(metric))
            if kind is None or getattr(metric, "from_logits", False):
                raise UnsupportedModelError(f"metric {metric!r}")
            if kind == "accuracy" and getattr(metric, "threshold", 0.5) != 0.5:
                raise UnsupportedModelError("an accuracy threshold other than 0.5")
            self.metric_names.append(metric.name)
            self.metric_kinds.append(kind)
        self.log_names = ["loss", *self.metric_names, "val_loss"] + [
            f"val_{n}" for n in self.metric_names
        ]
        self.ops, self.layers, self.penalties, self.rates = _read_chain(model)
        last = self.ops[-1]
        if last.kernel < 0 or last.activation != self.kind:
            raise UnsupportedModelError(f"the output layer must be a Dense with {self.kind}")

    def key(self, batch_size: int) -> tuple[Any, ...]:
        """What models must share to train in one population: everything but the learning
        rate, dropout rates, penalties, clipping and weights."""
        optimizer = self.optimizer
        return (
            tuple(self.ops),
            tuple(tuple(layer.kernel.shape) for layer in self.layers),
            self.kind,
            tuple(self.metric_names),
            tuple(self.metric_kinds),
            optimizer.kind,
            float(optimizer.momentum),
            optimizer.nesterov,
            float(optimizer.rho),
            float(optimizer.beta_1),
            float(optimizer.beta_2),
            float(optimizer.epsilon),
            int(batch_size),
        )

    def weights(self, model: keras.Model) -> list[np.ndarray]:
        """The model's Dense parameters in this net's order (kernel, bias per layer)."""
        arrays: list[np.ndarray] = []
        for layer in (layer for layer in model.layers if isinstance(layer, keras.layers.Dense)):
            arrays.append(keras.ops.convert_to_numpy(layer.kernel).astype(np.float32))
            if layer.use_bias:
                arrays.append(keras.ops.convert_to_numpy(layer.bias).astype(np.float32))
        return arrays

    def drawn(self, seed: int) -> list[np.ndarray]:
        """Fresh initial weights from the layers' own initializers, seeded with ``seed``."""
        arrays: list[np.ndarray] = []
        for k, layer in enumerate(self.layers):
            arrays.append(_draw(layer.kernel_initializer, layer.kernel.shape, seed, 2 * k))
            if layer.use_bias:
                arrays.append(_draw(layer.bias_initializer, layer.bias.shape, seed, 2 * k + 1))
        return arrays

    def assign(self, model: keras.Model, params: Sequence[np.ndarray]) -> None:
        values = iter(params)
        for layer in (layer for layer in model.layers if isinstance(layer, keras.layers.Dense)):
            layer.kernel.assign(next(values))
            if layer.use_bias:
                layer.bias.assign(next(values))


def _output(loss: Any) -> str:
    """The output activation ``loss`` needs, for a loss this trainer computes."""
    output = _OUTPUT.get(type(loss))
    if output is None:
        raise UnsupportedModelError(f"loss {loss!r} is not MSE or a crossentropy")
    if getattr(loss, "from_logits", False) or getattr(loss, "label_smoothing", 0.0):
        raise UnsupportedModelError("crossentropy from logits or with label smoothing")
    if getattr(loss, "ignore_class", None) is not None:
        raise UnsupportedModelError("a loss with ignore_class")
    check_reduction(loss)
    return output


def _read_chain(
    model: keras.Model,
) -> tuple[list[Op], list[Any], list[tuple[float, float]], list[float]]:
    """The model's ops, its Dense layers, each parameter's penalties and each dropout's rate."""
    chained = chain(model)
    if len(model.inputs[0].shape) != 2:
        raise UnsupportedModelError("only (rows, features) inputs")
    ops: list[Op] = []
    layers: list[Any] = []
    penalties: list[tuple[float, float]] = []
    rates: list[float] = []
    for layer in chained:
        if layer.dtype_policy.name != "float32" or not layer.trainable:
            raise UnsupportedModelError(f"layer {layer.name!r}: float32 and trainable only")
        if isinstance(layer, keras.layers.Dropout):
            if layer.noise_shape is not None:
                raise UnsupportedModelError("dropout with a noise shape")
            ops.append(Op(dropout=len(rates)))
            rates.append(float(layer.rate))
            continue
        if type(layer) is not keras.layers.Dense:
            raise UnsupportedModelError(f"layer {layer.name!r} ({type(layer).__name__})")
        activation = layer.activation.__name__
        # The output layer's activation is checked against the loss by the caller.
        if activation not in _HIDDEN and layer is not model.layers[-1]:
            raise UnsupportedModelError(f"activation {activation!r}")
        if layer.lora_rank:
            raise UnsupportedModelError(f"layer {layer.name!r}: LoRA")
        if layer.kernel_constraint is not None or layer.bias_constraint is not None:
            raise UnsupportedModelError(f"layer {layer.name!r}: weight constraints")
        kernel = len(penalties)
        penalties.append(penalty(layer.kernel_regularizer))
        bias = -1
        if layer.use_bias:
            bias = len(penalties)
            penalties.append(penalty(layer.bias_regularizer))
        ops.append(Op(activation, kernel, bias))
        layers.append(layer)
    if not layers:
        raise UnsupportedModelError("no Dense layer")
    return ops, layers, penalties, rates


def _draw(initializer: Any, shape: tuple[int, ...], seed: int, index: int) -> np.ndarray:
    """One initial value; a seeded initializer gives the same values on every call, so each
    draw gets its own copy with its own seed."""
    config = initializer.get_config()
    if "seed" in config:
        seeded = {**config, "seed": (seed * 1009 + index) % (2**31 - 1)}
        initializer = type(initializer).from_config(seeded)
    return keras.ops.convert_to_numpy(initializer(shape, dtype="float32")).astype(np.float32)


class Optimizer:
    """A Keras SGD, RMSprop or Adam as the compiled loop runs its update rule."""

    def __init__(self, optimizer: Any) -> None:
        if type(optimizer) not in _OPTIMIZERS:
            raise UnsupportedModelError(f"optimizer {type(optimizer).__name__}")
        config = optimizer.get_config()
        if not isinstance(config["learning_rate"], float):
            raise UnsupportedModelError("a learning-rate schedule")
        check_optimizer_options(config)
        if config.get("weight_decay") or config.get("centered") or config.get("amsgrad"):
            raise UnsupportedModelError("weight decay, a centered RMSprop or AMSGrad")
        self.kind = type(optimizer).__name__
        self.lr = float(config["learning_rate"])  # each member's own (see tables.Own)
        self.momentum = np.float32(config.get("momentum") or 0.0)
        self.nesterov = bool(config.get("nesterov"))
        self.rho = np.float32(config.get("rho", 0.9))
        self.beta_1 = np.float32(config.get("beta_1", 0.9))
        self.beta_2 = np.float32(config.get("beta_2", 0.999))
        self.epsilon = np.float32(config.get("epsilon", 1e-7))
        # Each member's own (see tables.Own): None is no clipping.
        self.clipnorm = config.get("clipnorm")
        self.global_clipnorm = config.get("global_clipnorm")
        self.clipvalue = config.get("clipvalue")

    def slots(self, flat: np.ndarray) -> np.ndarray:
        """Zeroed optimizer slots, (S, *flat.shape): SGD's velocity (with momentum),
        RMSprop's mean square (and momentum), or Adam's two moments."""
        count = {"SGD": 1 if self.momentum else 0, "RMSprop": 2 if self.momentum else 1}
        return np.zeros((count.get(self.kind, 2), *flat.shape), dtype=np.float32)
