"""The numpy trainer: ``fit``'s training of a Dense/Dropout chain, without ``fit``'s overhead.

On a few hundred rows a Keras ``fit`` step is microseconds of arithmetic inside a
millisecond of dispatch, callbacks and metric objects, and the JAX compiled trainer trades
that for seconds of XLA compilation per model shape. This trainer runs each batch's forward
pass, backward pass and optimizer update as a few dozen numpy calls, on any backend and with
nothing to compile. The runs of one configuration (every fold x execution) train together:
their weights are stacked on a leading axis, one *member* per run, so one numpy call serves
them all.

What matches ``fit`` as :func:`search.training.evaluate` calls it:
- the first run starts from the built model's weights, those ``fit`` starts from; the
  other runs draw theirs from the layers' initializers, seeded with the run's seed;
- each epoch reshuffles the run's training rows; batches have the configuration's batch
  size and the last partial batch is kept (its loss is the mean over its rows);
- dropout keeps a unit with probability ``1 - rate`` and scales it by ``1 / (1 - rate)``;
- the loss is the compiled loss plus the L1/L2 penalties; the epoch's ``loss`` is the
  row-weighted mean over its batches, its metrics are over the epoch's training predictions
  (dropout on), and ``val_*`` are computed after the epoch on the validation rows;
- the optimizers are Keras' update rules (SGD with momentum or Nesterov, RMSprop, Adam),
  with ``clipnorm`` per variable, ``global_clipnorm`` or ``clipvalue``;
- early stopping, pruning (the first run reports every epoch), the objective (best epoch of
  the mean curve) and ``TrialFailedError`` on a non-finite loss are ``evaluate``'s.

What differs: the random streams (shuffles and dropout masks come from one numpy generator
per trial), and the crossentropies are computed from the logits, as Keras' TensorFlow
backend does for a sigmoid or softmax output. With one batch per epoch and no dropout,
curves equal ``fit``'s up to float rounding; otherwise they agree in distribution over seeds
(``tests/test_numpy_trainer.py``). A model outside what is listed in :func:`unsupported`
is trained by ``fit``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
from threadpoolctl import ThreadpoolController

from search.training import (
    Build,
    Report,
    TrainData,
    TrialResult,
    Watch,
    compile_arguments,
    evaluate,
    read_result,
    retrain,
)

_HIDDEN = ("linear", "relu", "tanh", "elu", "sigmoid")
# The output activation each loss needs: the loss gradient is then taken in closed form.
_OUTPUT = {
    keras.losses.MeanSquaredError: "linear",
    keras.losses.BinaryCrossentropy: "sigmoid",
    keras.losses.SparseCategoricalCrossentropy: "softmax",
}
_METRICS = {
    keras.metrics.MeanSquaredError: "mse",
    keras.metrics.MeanAbsoluteError: "mae",
    keras.metrics.BinaryCrossentropy: "logloss",
    keras.metrics.SparseCategoricalCrossentropy: "logloss",
    keras.metrics.BinaryAccuracy: "accuracy",
    keras.metrics.SparseCategoricalAccuracy: "accuracy",
}
_PENALTIES = (keras.regularizers.L1, keras.regularizers.L2, keras.regularizers.L1L2)


def unsupported(model: keras.Model) -> str | None:
    """Why this trainer cannot train ``model`` as ``fit`` would (None when it can)."""
    try:
        _Net(model)
    except _UnsupportedError as error:
        return str(error)
    return None


def evaluate_numpy(
    build: Build,
    data: TrainData,
    objective: str,
    seed: int,
    report: Report | None = None,
    epochs: int | None = None,
    curves: list[dict[str, list[float]]] | None = None,
) -> TrialResult:
    """:func:`search.training.evaluate` with the numpy trainer: same arguments and result.

    A model this trainer does not support is trained by ``evaluate`` (Keras ``fit``).
    """
    settings = data.settings
    start = time.perf_counter()
    curves = [] if curves is None else curves
    keras.utils.set_random_seed(seed)
    model, batch_size = build()
    try:
        net = _Net(model)
    except _UnsupportedError:
        return evaluate(build, data, objective, seed, report, epochs, curves)
    if objective != "val_loss" and objective[4:] not in net.metric_names:
        return evaluate(build, data, objective, seed, report, epochs, curves)
    runs = [(e, f) for e in range(settings.executions) for f in range(len(data.folds))]
    # Building a Keras model takes longer than training it here: the other runs draw their
    # initial weights from the same initializers instead, each with its run's seed.
    initial = [net.weights(model)]
    initial += [net.drawn(seed + 1000 * execution + fold) for execution, fold in runs[1:]]
    rows = [data.folds[fold] for _, fold in runs]
    trainer = _Trainer(net, initial, data.x, data.y, rows, batch_size, seed)
    watches = [
        Watch(objective, settings.patience, report if run == 0 else None)
        for run in range(len(runs))
    ]
    curves.extend(watch.curve for watch in watches)
    for epoch in range(epochs or settings.epochs):
        logs = trainer.epoch()
        for member, values in zip(trainer.alive, logs, strict=True):
            logged = dict(zip(net.log_names, map(float, values), strict=True))
            watches[member].end_epoch(epoch, logged)
        # Every run's epoch is recorded first: a pruned trial keeps its curves for TensorBoard.
        for error in (watches[member].error for member in trainer.alive):
            if error is not None:
                raise error
        trainer.keep([m for m in trainer.alive if watches[m].running])
        if not trainer.alive:
            break
    return read_result(curves, objective, model.count_params(), time.perf_counter() - start)


def retrain_numpy(build: Build, epochs: int, data: TrainData, seed: int) -> keras.Model:
    """:func:`search.training.retrain` with the numpy trainer: the model, trained in place."""
    keras.utils.set_random_seed(seed)
    model, batch_size = build()
    try:
        net = _Net(model)
    except _UnsupportedError:
        return retrain(build, epochs, data, seed)
    everything = (np.arange(len(data.x)), np.arange(0))
    trainer = _Trainer(net, [net.weights(model)], data.x, data.y, [everything], batch_size, seed)
    watch = Watch(None, 0, None)
    for epoch in range(epochs):
        logs = trainer.epoch()[0]
        watch.end_epoch(epoch, dict(zip(net.log_names, map(float, logs), strict=True)))
        if watch.error is not None:
            raise watch.error
    net.assign(model, [p[0] for p in trainer.params])
    return model


# --------------------------------------------------------------------------- the network


class _UnsupportedError(ValueError):
    pass


@dataclass(frozen=True)
class _Op:
    """One step of the chain: a Dense layer (its parameter positions) or a dropout."""

    activation: str = "linear"
    kernel: int = -1  # position in the parameter list; -1 for a dropout
    bias: int = -1  # -1 without a bias
    rate: float = 0.0  # dropout rate


class _Net:
    """A model read as a chain of ops, its loss, penalties, optimizer and metrics."""

    def __init__(self, model: keras.Model) -> None:
        compiled = compile_arguments(model)
        self.optimizer = _Optimizer(compiled.get("optimizer"))
        loss = model.loss
        output = _OUTPUT.get(type(loss))
        if output is None:
            raise _UnsupportedError(f"loss {loss!r} is not MSE or a crossentropy")
        if getattr(loss, "from_logits", False) or getattr(loss, "label_smoothing", 0.0):
            raise _UnsupportedError("crossentropy from logits or with label smoothing")
        if getattr(loss, "ignore_class", None) is not None or loss.reduction not in (
            "sum_over_batch_size",
            "mean",
        ):
            raise _UnsupportedError("a loss with ignore_class or another reduction")
        if compiled.get("loss_weights") is not None or compiled.get("weighted_metrics"):
            raise _UnsupportedError("loss weights and weighted metrics")
        self.kind = output
        self.metric_names: list[str] = []
        self.metric_kinds: list[str] = []
        for metric in compiled.get("metrics") or []:
            kind = _METRICS.get(type(metric))
            if kind is None or getattr(metric, "from_logits", False):
                raise _UnsupportedError(f"metric {metric!r}")
            if kind == "accuracy" and getattr(metric, "threshold", 0.5) != 0.5:
                raise _UnsupportedError("an accuracy threshold other than 0.5")
            self.metric_names.append(metric.name)
            self.metric_kinds.append(kind)
        self.log_names = ["loss", *self.metric_names, "val_loss"] + [
            f"val_{n}" for n in self.metric_names
        ]
        self.ops, self.layers, self.penalties = self._chain(model)
        last = self.ops[-1]
        if last.kernel < 0 or last.activation != output:
            raise _UnsupportedError(f"the output layer must be a Dense with {output}")

    @staticmethod
    def _chain(model: keras.Model) -> tuple[list[_Op], list[Any], list[tuple[float, float]]]:
        if not model.built or len(model.inputs) != 1 or len(model.outputs) != 1:
            raise _UnsupportedError("only built models with one input and one output")
        if len(model.inputs[0].shape) != 2:
            raise _UnsupportedError("only (rows, features) inputs")
        ops: list[_Op] = []
        layers: list[Any] = []
        penalties: list[tuple[float, float]] = []
        previous = model.inputs[0]
        for layer in model.layers:
            if isinstance(layer, keras.layers.InputLayer):
                continue
            try:
                chained = layer.input is previous
            except (AttributeError, ValueError):  # a layer called more than once
                chained = False
            if not chained:
                raise _UnsupportedError("only chains of layers, each feeding the next")
            previous = layer.output
            if layer.dtype_policy.name != "float32" or not layer.trainable:
                raise _UnsupportedError(f"layer {layer.name!r}: float32 and trainable only")
            if isinstance(layer, keras.layers.Dropout):
                if layer.noise_shape is not None:
                    raise _UnsupportedError("dropout with a noise shape")
                ops.append(_Op(rate=float(layer.rate)))
                continue
            if type(layer) is not keras.layers.Dense:
                raise _UnsupportedError(f"layer {layer.name!r} ({type(layer).__name__})")
            activation = layer.activation.__name__
            # The output layer's activation is checked against the loss by the caller.
            if activation not in _HIDDEN and layer is not model.layers[-1]:
                raise _UnsupportedError(f"activation {activation!r}")
            if layer.activity_regularizer is not None or layer.lora_rank:
                raise _UnsupportedError(f"layer {layer.name!r}: activity regularizer or LoRA")
            if layer.kernel_constraint is not None or layer.bias_constraint is not None:
                raise _UnsupportedError(f"layer {layer.name!r}: weight constraints")
            kernel = len(penalties)
            penalties.append(_penalty(layer.kernel_regularizer))
            bias = -1
            if layer.use_bias:
                bias = len(penalties)
                penalties.append(_penalty(layer.bias_regularizer))
            ops.append(_Op(activation, kernel, bias))
            layers.append(layer)
        if not layers:
            raise _UnsupportedError("no Dense layer")
        return ops, layers, penalties

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


def _draw(initializer: Any, shape: tuple[int, ...], seed: int, index: int) -> np.ndarray:
    """One initial value; a seeded initializer gives the same values on every call, so each
    draw gets its own copy with its own seed."""
    config = initializer.get_config()
    if "seed" in config:
        seeded = {**config, "seed": (seed * 1009 + index) % (2**31 - 1)}
        initializer = type(initializer).from_config(seeded)
    return keras.ops.convert_to_numpy(initializer(shape, dtype="float32")).astype(np.float32)


def _penalty(regularizer: Any) -> tuple[float, float]:
    if regularizer is None:
        return (0.0, 0.0)
    if type(regularizer) not in _PENALTIES:
        raise _UnsupportedError(f"regularizer {type(regularizer).__name__}")
    return (float(getattr(regularizer, "l1", 0.0)), float(getattr(regularizer, "l2", 0.0)))


class _Optimizer:
    """Keras' update rules for SGD, RMSprop and Adam, over stacked members."""

    def __init__(self, optimizer: Any) -> None:
        if type(optimizer) not in (
            keras.optimizers.SGD,
            keras.optimizers.RMSprop,
            keras.optimizers.Adam,
        ):
            raise _UnsupportedError(f"optimizer {type(optimizer).__name__}")
        config = optimizer.get_config()
        if not isinstance(config["learning_rate"], float):
            raise _UnsupportedError("a learning-rate schedule")
        if config.get("weight_decay") or config.get("use_ema") or config.get("centered"):
            raise _UnsupportedError("weight decay, EMA or a centered RMSprop")
        if config.get("amsgrad") or config.get("gradient_accumulation_steps"):
            raise _UnsupportedError("AMSGrad or gradient accumulation")
        if config.get("loss_scale_factor") is not None:
            raise _UnsupportedError("loss scaling")
        self.kind = type(optimizer).__name__
        self.lr = np.float32(config["learning_rate"])
        self.momentum = np.float32(config.get("momentum") or 0.0)
        self.nesterov = bool(config.get("nesterov"))
        self.rho = np.float32(config.get("rho", 0.9))
        self.beta_1 = np.float32(config.get("beta_1", 0.9))
        self.beta_2 = np.float32(config.get("beta_2", 0.999))
        self.epsilon = np.float32(config.get("epsilon", 1e-7))
        self.clipnorm = config.get("clipnorm")
        self.global_clipnorm = config.get("global_clipnorm")
        self.clipvalue = config.get("clipvalue")

    def slots(self, params: list[np.ndarray]) -> list[list[np.ndarray]]:
        """Zeroed optimizer slots per parameter: momentum, velocity, or Adam's two."""
        count = {"SGD": 1 if self.momentum else 0, "RMSprop": 2 if self.momentum else 1}
        return [[np.zeros_like(p) for p in params] for _ in range(count.get(self.kind, 2))]

    def clip(self, grads: list[np.ndarray]) -> list[np.ndarray]:
        if self.clipnorm:
            return [g * (self.clipnorm / np.maximum(_norm(g), self.clipnorm)) for g in grads]
        if self.global_clipnorm:
            total = np.sqrt(sum(_sum_of_squares(g) for g in grads))
            scale = self.global_clipnorm / np.maximum(total, self.global_clipnorm)
            return [g * scale.reshape((-1,) + (1,) * (g.ndim - 1)) for g in grads]
        if self.clipvalue:
            return [np.clip(g, -self.clipvalue, self.clipvalue) for g in grads]
        return grads

    def apply(
        self,
        params: list[np.ndarray],
        grads: list[np.ndarray],
        slots: list[list[np.ndarray]],
        step: np.ndarray,
    ) -> None:
        """One update in place; ``step`` is each member's iteration count after it (M,)."""
        lr = self.lr
        if self.kind == "SGD":
            if not self.momentum:
                for p, g in zip(params, grads, strict=True):
                    p -= lr * g
                return
            for p, g, m in zip(params, grads, slots[0], strict=True):
                m *= self.momentum
                m -= lr * g
                p += self.momentum * m - lr * g if self.nesterov else m
            return
        if self.kind == "RMSprop":
            rho = self.rho
            for i, (p, g, v) in enumerate(zip(params, grads, slots[0], strict=True)):
                v *= rho
                v += (1 - rho) * g * g
                increment = lr * g / np.sqrt(v + self.epsilon)
                if self.momentum:
                    m = slots[1][i]
                    m *= self.momentum
                    m += increment
                    increment = m
                p -= increment
            return
        # Adam: alpha carries the bias corrections of the members' own step counts. In place,
        # since these updates are most of a step's memory traffic for wide layers.
        alpha = lr * np.sqrt(1 - self.beta_2**step) / (1 - self.beta_1**step)
        for p, g, m, v in zip(params, grads, slots[0], slots[1], strict=True):
            # Keras' own association, m += (g - m)(1 - b1): the rounding stays the same.
            m += (g - m) * (1 - self.beta_1)
            v += (np.square(g) - v) * (1 - self.beta_2)
            denominator = np.sqrt(v)
            denominator += self.epsilon
            np.divide(m, denominator, out=denominator)
            denominator *= _members(alpha, p)
            p -= denominator


def _norm(g: np.ndarray) -> np.ndarray:
    """Each member's L2 norm of ``g``, shaped to broadcast against it."""
    return _members(np.sqrt(_sum_of_squares(g)), g)


def _sum_of_squares(a: np.ndarray) -> np.ndarray:
    """Per member (M,): einsum sums without the temporary array ``a * a`` would make."""
    flat = a.reshape(len(a), -1)
    return np.einsum("mi,mi->m", flat, flat)


def _members(values: np.ndarray, like: np.ndarray) -> np.ndarray:
    """A per-member vector shaped to broadcast against a stacked array."""
    return values.reshape((-1,) + (1,) * (like.ndim - 1))


# --------------------------------------------------------------------------- training


_ACTIVATE: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "linear": lambda z: z,
    "relu": lambda z: np.maximum(z, 0),
    "tanh": np.tanh,
    "elu": lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0))),
    "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
}


def _activation_grad(name: str, da: np.ndarray, z: np.ndarray, a: np.ndarray) -> np.ndarray:
    """d loss / d z from d loss / d a, for a = activation(z)."""
    if name == "relu":
        return da * (z > 0)
    if name == "tanh":
        return da * (1 - a * a)
    if name == "elu":
        return da * np.where(z > 0, 1, a + 1)
    if name == "sigmoid":
        return da * a * (1 - a)
    return da


class _Trainer:
    """The members of one configuration (one per run), trained in lockstep epoch by epoch."""

    def __init__(
        self,
        net: _Net,
        initial: list[list[np.ndarray]],
        x: np.ndarray,
        y: np.ndarray,
        rows: list[tuple[np.ndarray, np.ndarray]],
        batch_size: int,
        seed: int,
    ) -> None:
        self.net = net
        self.params = [np.stack(arrays) for arrays in zip(*initial, strict=True)]
        self.slots = net.optimizer.slots(self.params)
        self.step = np.zeros(len(initial), dtype=np.float32)
        self.batch_size = int(batch_size)
        self.rng = np.random.default_rng(seed)
        self.alive = list(range(len(initial)))
        self.x = np.asarray(x, dtype=np.float32)
        self.y = self._targets(np.asarray(y))
        self.train_rows = [train for train, _ in rows]
        self.val_index, self.val_weight = _padded([val for _, val in rows])
        self.penalties = [(np.float32(l1), np.float32(l2)) for l1, l2 in net.penalties if l1 or l2]
        self.penalised = [i for i, (l1, l2) in enumerate(net.penalties) if l1 or l2]

    def _targets(self, y: np.ndarray) -> np.ndarray:
        if self.net.kind == "softmax":
            return y.reshape(-1).astype(np.int64)
        return y.reshape(len(y), -1).astype(np.float32)

    def keep(self, members: list[int]) -> None:
        """Go on with ``members`` only (the others stopped early)."""
        if members == self.alive:
            return
        positions = [self.alive.index(m) for m in members]
        self.params = [p[positions] for p in self.params]
        self.slots = [[s[positions] for s in group] for group in self.slots]
        self.step = self.step[positions]
        self.val_index, self.val_weight = self.val_index[positions], self.val_weight[positions]
        self.alive = members

    # ------------------------------------------------------------------- passes

    def _forward(
        self, x: np.ndarray, dropout: bool
    ) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray, np.ndarray]], list[np.ndarray]]:
        """Logits of the output layer, each Dense layer's (input, z, a) and dropout masks."""
        h = x
        cache: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        masks: list[np.ndarray] = []
        z = h
        for op in self.net.ops:
            if op.kernel < 0:
                if dropout and op.rate > 0:
                    keep = self.rng.random(h.shape, dtype=np.float32) >= op.rate
                    mask = keep * np.float32(1 / (1 - op.rate))
                    masks.append(mask)
                    h = h * mask
                continue
            z = np.matmul(h, self.params[op.kernel])
            if op.bias >= 0:
                z += self.params[op.bias][:, None, :]
            a = _ACTIVATE[op.activation](z) if op is not self.net.ops[-1] else z
            cache.append((h, z, a))
            h = a
        return z, cache, masks

    def _row_losses(self, logits: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        """Per-row loss and metric values (members x rows), keyed by metric kind."""
        kind = self.net.kind
        if kind == "linear":
            error = logits - y
            mse = np.mean(error * error, axis=-1)
            return {"loss": mse, "mse": mse, "mae": np.mean(np.abs(error), axis=-1)}
        if kind == "sigmoid":
            # Binary crossentropy from the logit: max(z, 0) - z y + log(1 + e^-|z|).
            logloss = np.mean(
                np.maximum(logits, 0) - logits * y + np.log1p(np.exp(-np.abs(logits))), axis=-1
            )
            accuracy = np.mean((logits > 0) == (y > 0.5), axis=-1)
            return {"loss": logloss, "logloss": logloss, "accuracy": accuracy}
        shifted = logits - logits.max(axis=-1, keepdims=True)
        log_softmax = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        logloss = -np.take_along_axis(log_softmax, y[..., None], axis=-1)[..., 0]
        accuracy = (logits.argmax(axis=-1) == y).astype(np.float32)
        return {"loss": logloss, "logloss": logloss, "accuracy": accuracy}

    def _output_grad(self, logits: np.ndarray, y: np.ndarray, weight: np.ndarray) -> np.ndarray:
        """d (batch mean loss) / d logits; ``weight`` is each row's 1/rows, 0 for padding."""
        kind = self.net.kind
        w = weight[..., None]
        if kind == "linear":
            return (2 / logits.shape[-1]) * (logits - y) * w
        if kind == "sigmoid":
            return (1 / (1 + np.exp(-logits)) - y) * (w / logits.shape[-1])
        shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
        grad = shifted / shifted.sum(axis=-1, keepdims=True)
        np.put_along_axis(
            grad, y[..., None], np.take_along_axis(grad, y[..., None], axis=-1) - 1, axis=-1
        )
        return grad * w

    def _penalty(self) -> np.ndarray:
        """Each member's L1/L2 penalty (M,)."""
        total = np.zeros(len(self.alive), dtype=np.float32)
        for i, (l1, l2) in zip(self.penalised, self.penalties, strict=True):
            p = self.params[i]
            axes = tuple(range(1, p.ndim))
            if l1:
                total += l1 * np.abs(p).sum(axis=axes)
            if l2:
                total += l2 * _sum_of_squares(p)
        return total

    def _grads(
        self,
        out: np.ndarray,
        cache: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
        masks: list[np.ndarray],
    ) -> list[np.ndarray]:
        grads: list[np.ndarray] = [np.empty(0)] * len(self.params)
        dz = out
        dense = [op for op in self.net.ops if op.kernel >= 0]
        mask_iter = reversed(masks)
        ops = self.net.ops
        layer = len(dense) - 1
        for position in range(len(ops) - 1, -1, -1):
            op = ops[position]
            if op.kernel < 0:
                if op.rate > 0 and masks:
                    dz = dz * next(mask_iter)
                continue
            h, z, a = cache[layer]
            if layer < len(dense) - 1:
                dz = _activation_grad(op.activation, dz, z, a)
            grads[op.kernel] = np.matmul(h.transpose(0, 2, 1), dz)
            if op.bias >= 0:
                grads[op.bias] = dz.sum(axis=1)
            if position > 0:
                dz = np.matmul(dz, self.params[op.kernel].transpose(0, 2, 1))
            layer -= 1
        for i, (l1, l2) in zip(self.penalised, self.penalties, strict=True):
            p = self.params[i]
            if l1:
                grads[i] = grads[i] + l1 * np.sign(p)
            if l2:
                grads[i] = grads[i] + (2 * l2) * p
        return grads

    # ------------------------------------------------------------------- one epoch

    def epoch(self) -> np.ndarray:
        """Train every living member one epoch; their logs in ``net.log_names`` order (M, k)."""
        # A diverging member shows up as a non-finite loss: numpy's warnings are noise.
        with _one_blas_thread(), np.errstate(all="ignore"):
            return self._epoch()

    def _epoch(self) -> np.ndarray:
        bs = self.batch_size
        trains = [self.train_rows[m] for m in self.alive]
        steps = -(-max(len(rows) for rows in trains) // bs)
        index = np.zeros((len(trains), steps * bs), dtype=np.int64)
        weight = np.zeros((len(trains), steps * bs), dtype=np.float32)
        for k, rows in enumerate(trains):
            index[k, : len(rows)] = rows[self.rng.permutation(len(rows))]
            weight[k, : len(rows)] = 1
        names = ["loss", *self.net.metric_kinds]
        sums = np.zeros((len(names), len(trains)), dtype=np.float32)
        optimizer = self.net.optimizer
        for s in range(steps):
            rows, w = index[:, s * bs : (s + 1) * bs], weight[:, s * bs : (s + 1) * bs]
            counts = w.sum(axis=1)
            active = counts > 0
            xb, yb = self.x[rows], self.y[rows]
            logits, cache, masks = self._forward(xb, dropout=True)
            values = self._row_losses(logits, yb)
            batch_loss = (values["loss"] * w).sum(axis=1) / np.maximum(counts, 1)
            batch_loss += self._penalty()
            # Keras' loss tracker weighs each batch's loss by its rows; metrics sum over rows.
            sums[0] += batch_loss * counts
            for k, kind in enumerate(self.net.metric_kinds, start=1):
                sums[k] += (values[kind] * w).sum(axis=1)
            scale = w / np.maximum(counts, 1)[:, None]
            grads = optimizer.clip(self._grads(self._output_grad(logits, yb, scale), cache, masks))
            if active.all():
                self.step += 1
                optimizer.apply(self.params, grads, self.slots, self.step)
            else:  # a member whose rows ran out this epoch sits the step out
                self._apply_some(grads, active)
        logs = list(sums / np.array([len(rows) for rows in trains], dtype=np.float32))
        logs.extend(self._validate())
        return np.stack(logs, axis=1)

    def _apply_some(self, grads: list[np.ndarray], active: np.ndarray) -> None:
        before = [p.copy() for p in self.params], [[s.copy() for s in g] for g in self.slots]
        self.step += active
        self.net.optimizer.apply(self.params, grads, self.slots, np.maximum(self.step, 1))
        for arrays, old in zip([self.params, *self.slots], [before[0], *before[1]], strict=True):
            for array, previous in zip(arrays, old, strict=True):
                array[~active] = previous[~active]

    def _validate(self) -> list[np.ndarray]:
        names = 1 + len(self.net.metric_kinds)
        counts = self.val_weight.sum(axis=1)
        if not counts.any():  # retraining on the whole split: nothing to validate on
            return [np.full(len(self.alive), np.nan, dtype=np.float32)] * names
        logits, _, _ = self._forward(self.x[self.val_index], dropout=False)
        values = self._row_losses(logits, self.y[self.val_index])
        means = [
            (values[kind] * self.val_weight).sum(axis=1) / counts
            for kind in ["loss", *self.net.metric_kinds]
        ]
        means[0] = means[0] + self._penalty()
        return means


@functools.cache
def _controller() -> ThreadpoolController:
    return ThreadpoolController()  # finding the loaded BLAS libraries takes milliseconds


def _one_blas_thread() -> Any:
    """One BLAS thread: the matrices are small, and OpenBLAS' threads spin against each other
    and against other processes (10x slower on a loaded 2-core machine)."""
    return _controller().limit(limits=1, user_api="blas")


def _padded(groups: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of several groups padded to one length, and weights 1 for real rows."""
    length = max(len(g) for g in groups)
    index = np.zeros((len(groups), length), dtype=np.int64)
    weight = np.zeros((len(groups), length), dtype=np.float32)
    for k, group in enumerate(groups):
        index[k, : len(group)] = group
        weight[k, : len(group)] = 1
    return index, weight
