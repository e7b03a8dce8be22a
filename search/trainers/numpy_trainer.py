"""The numpy trainer: ``fit``'s training of a Dense/Dropout chain, without ``fit``'s overhead.

On a few hundred rows a Keras ``fit`` step is microseconds of arithmetic inside a
millisecond of dispatch, callbacks and metric objects, and the JAX compiled trainer trades
that for seconds of XLA compilation per model shape. This trainer runs each batch's forward
pass, backward pass and optimizer update as a few dozen numpy calls, on any backend and with
nothing to compile. The runs of one configuration (every fold x execution) train together:
their weights are stacked on a leading axis, one *member* per run, so one numpy call serves
them all. So do the runs of several configurations of one structure (a *population*, see
:func:`evaluate_population`), each member with its own learning rate, dropout rates,
penalties and clipping (:class:`_Own`), and an ensemble's retrainings.

What matches ``fit`` as :func:`search.trainers.keras_fit.evaluate` calls it:
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
per trial). The crossentropies are computed as the backend's are: from the logits on
TensorFlow, from probabilities clipped to [epsilon, 1 - epsilon] on the others. With one
batch per epoch and no dropout, curves equal ``fit``'s up to float rounding; otherwise they
agree in distribution over seeds (``tests/test_trainers.py``). A model outside what is
listed in :func:`unsupported` is trained by ``fit``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import keras
import numpy as np
from threadpoolctl import ThreadpoolController

from search.space import compile_arguments, keras_metric_classes
from search.trainers.base import (
    Build,
    Outcome,
    Report,
    TrainData,
    TrialFailedError,
    TrialResult,
    Watch,
    evaluate_one,
    read_result,
)
from search.trainers.keras_fit import evaluate_each, retrain_each

_HIDDEN = ("linear", "relu", "tanh", "elu", "sigmoid")
# The output activation each loss needs: the loss gradient is then taken in closed form.
_OUTPUT = {
    keras.losses.MeanSquaredError: "linear",
    keras.losses.BinaryCrossentropy: "sigmoid",
    keras.losses.SparseCategoricalCrossentropy: "softmax",
}
_METRICS = {cls: name for (_, name), cls in keras_metric_classes().items()}
# How Keras computes a crossentropy of a sigmoid or softmax output. The TensorFlow backend
# finds the output's logits and computes from them; the others (JAX, torch, numpy) clip the
# probabilities to [epsilon, 1 - epsilon] first, so a saturated output's loss is capped (about
# 16.1) and passes no gradient back. This trainer computes as the backend it runs on does.
_FROM_LOGITS = keras.backend.backend() == "tensorflow"
_PENALTIES = (keras.regularizers.L1, keras.regularizers.L2, keras.regularizers.L1L2)


def unsupported(model: keras.Model) -> str | None:
    """Why this trainer cannot train ``model`` as ``fit`` would (None when it can)."""
    try:
        _Net(model)
    except _UnsupportedError as error:
        return str(error)
    return None


def structure_key(model: keras.Model, batch_size: int) -> tuple[Any, ...] | None:
    """What decides which configurations train together (None: one this trainer cannot
    train): equal keys differ only in learning rate, dropout rates, penalties and clipping."""
    try:
        return _Net(model).key(batch_size)
    except _UnsupportedError:
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
    """:func:`search.trainers.keras_fit.evaluate` with the numpy trainer: same arguments and result.

    A model this trainer does not support is trained by ``evaluate`` (Keras ``fit``).
    """
    return evaluate_one(evaluate_population, build, data, objective, seed, report, epochs, curves)


def evaluate_population(
    builds: Sequence[Build],
    data: TrainData,
    objective: str,
    seeds: Sequence[int],
    reports: Sequence[Report | None] | None = None,
    epochs: Sequence[int | None] | None = None,
    curves: Sequence[list[dict[str, list[float]]]] | None = None,
) -> list[Outcome]:
    """Train many configurations; those of one structure train together, as one population.

    Configurations share a population when their models differ only in what each member
    keeps in its own row: learning rate, dropout rates, L1/L2 penalties, clipping and initial
    weights (:meth:`_Net.key` says what must be equal). ``seeds``, ``reports`` (pruning
    callbacks), ``epochs`` (overrides of the study's epochs, as Hyperband sets them) and
    ``curves`` (empty lists that receive each run's curve as it grows) go with ``builds``.
    Each outcome is that configuration's :class:`TrialResult`, or the exception that ended
    it (a non-finite loss, or its report's pruning); one member ending does not stop the
    others. ``seconds`` of a configuration is its population's wall time, model builds
    included, over the population's size. Models this trainer does not support are trained
    one by one with ``evaluate``.
    """
    count = len(builds)
    reports = [None] * count if reports is None else list(reports)
    limits = [None] * count if epochs is None else list(epochs)
    runs_curves = [[] for _ in builds] if curves is None else list(curves)
    if not len(seeds) == len(reports) == len(limits) == len(runs_curves) == count:
        raise ValueError("one seed, report, epochs and curves list per build")
    outcomes: dict[int, Outcome] = {}
    groups: dict[tuple[Any, ...], list[_Member]] = {}
    for index, build in enumerate(builds):
        start = time.perf_counter()
        keras.utils.set_random_seed(seeds[index])
        model, batch_size = build()
        try:
            net = _Net(model)
        except _UnsupportedError:
            net = None
        if net is None or (objective != "val_loss" and objective[4:] not in net.metric_names):
            outcomes[index] = evaluate_each(
                [build],
                data,
                objective,
                [seeds[index]],
                [reports[index]],
                [limits[index]],
                [runs_curves[index]],
            )[0]
            continue
        member = _Member(index, model, net, seeds[index], reports[index], limits[index])
        member.built = time.perf_counter() - start
        groups.setdefault(net.key(batch_size), []).append(member)
    for (*_, batch_size), members in groups.items():
        outcomes |= _train_population(members, data, objective, batch_size, runs_curves)
    return [outcomes[index] for index in range(count)]


@dataclass
class _Member:
    """One configuration of a population, and what its training needs."""

    index: int
    model: keras.Model
    net: _Net
    seed: int
    report: Report | None
    epochs: int | None
    built: float = 0.0  # seconds its model took to build


def _train_population(
    members: list[_Member],
    data: TrainData,
    objective: str,
    batch_size: int,
    runs_curves: list[list[dict[str, list[float]]]],
) -> dict[int, Outcome]:
    """Train configurations of one structure together; every run of each is a row."""
    settings = data.settings
    start = time.perf_counter() - sum(member.built for member in members)
    runs = [(e, f) for e in range(settings.executions) for f in range(len(data.folds))]
    rows = [(member, run) for member in members for run in range(len(runs))]
    # Building a Keras model takes longer than training it here: the other runs draw their
    # initial weights from the same initializers instead, each with its run's seed.
    initial = [
        member.net.weights(member.model)
        if run == 0
        else member.net.drawn(member.seed + 1000 * runs[run][0] + runs[run][1])
        for member, run in rows
    ]
    trainer = _Trainer(
        members[0].net,
        initial,
        data.x,
        data.y,
        [data.folds[runs[run][1]] for _, run in rows],
        batch_size,
        # One configuration alone draws from its own seed; a population from all of theirs.
        members[0].seed if len(members) == 1 else [member.seed for member in members],
        [member.net for member, _ in rows],
    )
    watches = [
        Watch(objective, settings.patience, member.report if run == 0 else None)
        for member, run in rows
    ]
    for (member, _), watch in zip(rows, watches, strict=True):
        runs_curves[member.index].append(watch.curve)
    ended: dict[int, Exception] = {}
    limit = [member.epochs or settings.epochs for member, _ in rows]
    for epoch in range(max(limit)):
        logs = trainer.epoch()
        for row, values in zip(trainer.alive, logs, strict=True):
            logged = dict(zip(trainer.net.log_names, map(float, values), strict=True))
            watches[row].end_epoch(epoch, logged)
            if epoch + 1 >= limit[row]:
                watches[row].running = False
        # Every run's epoch is recorded first: an ended trial keeps its curves for TensorBoard.
        for row in trainer.alive:
            error = watches[row].error
            if error is not None:
                ended.setdefault(rows[row][0].index, error)
        trainer.keep(
            [r for r in trainer.alive if watches[r].running and rows[r][0].index not in ended]
        )
        if not trainer.alive:
            break
    seconds = (time.perf_counter() - start) / len(members)
    return {
        member.index: ended.get(member.index)
        or read_result(runs_curves[member.index], objective, member.model.count_params(), seconds)
        for member in members
    }


def retrain_numpy(build: Build, epochs: int, data: TrainData, seed: int) -> keras.Model:
    """Keras fit's ``retrain`` with the numpy trainer: the model, trained in place."""
    model = retrain_population(build, epochs, data, [seed])[0]
    if isinstance(model, Exception):
        raise model
    return model


def retrain_population(
    build: Build, epochs: int, data: TrainData, seeds: Sequence[int]
) -> list[keras.Model | TrialFailedError]:
    """One configuration retrained from each of ``seeds`` (an ensemble's members), all of
    them together: each a model trained in place, or the error of one that diverged. A model
    this trainer does not support is trained by ``retrain`` (Keras ``fit``), seed by seed."""
    models, nets, keys = [], [], set()
    for seed in seeds:
        keras.utils.set_random_seed(seed)
        model, batch_size = build()
        try:
            nets.append(_Net(model))
        except _UnsupportedError:
            return retrain_each(build, epochs, data, seeds)
        models.append(model)
        keys.add(nets[-1].key(batch_size))
    if len(keys) > 1:  # a build that is not a function of its hyperparameters alone
        return retrain_each(build, epochs, data, seeds, retrain_numpy)
    everything = (np.arange(len(data.x)), np.arange(0))
    trainer = _Trainer(
        nets[0],
        [net.weights(model) for net, model in zip(nets, models, strict=True)],
        data.x,
        data.y,
        [everything] * len(models),
        batch_size,
        seeds[0] if len(seeds) == 1 else list(seeds),
        nets,
    )
    watches = [Watch(None, 0, None) for _ in models]
    for epoch in range(epochs):
        for row, values in zip(trainer.alive, trainer.epoch(), strict=True):
            logged = dict(zip(nets[0].log_names, map(float, values), strict=True))
            watches[row].end_epoch(epoch, logged)
        trainer.keep([row for row in trainer.alive if watches[row].running])
        if not trainer.alive:
            break
    for position, row in enumerate(trainer.alive):
        nets[row].assign(models[row], [p[position] for p in trainer.params])
    return [watch.error or model for watch, model in zip(watches, models, strict=True)]


# --------------------------------------------------------------------------- the network


class _UnsupportedError(ValueError):
    pass


@dataclass(frozen=True)
class _Op:
    """One step of the chain: a Dense layer (its parameter positions) or a dropout."""

    activation: str = "linear"
    kernel: int = -1  # position in the parameter list; -1 for a dropout
    bias: int = -1  # -1 without a bias
    dropout: int = -1  # a dropout's position among the net's dropouts (its rate in ``rates``)


class _Net:
    """A model read as a chain of ops, its loss, penalties, optimizer and metrics."""

    def __init__(self, model: keras.Model) -> None:
        if getattr(model, "search_fit", None) is not None:
            raise _UnsupportedError("its HyperModel trains it with a fit of its own")
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
        self.ops, self.layers, self.penalties, self.rates = self._chain(model)
        last = self.ops[-1]
        if last.kernel < 0 or last.activation != output:
            raise _UnsupportedError(f"the output layer must be a Dense with {output}")

    def key(self, batch_size: int) -> tuple[Any, ...]:
        """What models must share to train in one population: everything but the learning
        rate, dropout rates, penalties, clipping and weights (the batch size comes last)."""
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

    @staticmethod
    def _chain(
        model: keras.Model,
    ) -> tuple[list[_Op], list[Any], list[tuple[float, float]], list[float]]:
        if not model.built or len(model.inputs) != 1 or len(model.outputs) != 1:
            raise _UnsupportedError("only built models with one input and one output")
        if len(model.inputs[0].shape) != 2:
            raise _UnsupportedError("only (rows, features) inputs")
        ops: list[_Op] = []
        layers: list[Any] = []
        penalties: list[tuple[float, float]] = []
        rates: list[float] = []
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
                ops.append(_Op(dropout=len(rates)))
                rates.append(float(layer.rate))
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
        return ops, layers, penalties, rates

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
        self.lr = float(config["learning_rate"])  # each member's own (see _Own)
        self.momentum = np.float32(config.get("momentum") or 0.0)
        self.nesterov = bool(config.get("nesterov"))
        self.rho = np.float32(config.get("rho", 0.9))
        self.beta_1 = np.float32(config.get("beta_1", 0.9))
        self.beta_2 = np.float32(config.get("beta_2", 0.999))
        self.epsilon = np.float32(config.get("epsilon", 1e-7))
        # Each member's own (see _Own): None is no clipping.
        self.clipnorm = config.get("clipnorm")
        self.global_clipnorm = config.get("global_clipnorm")
        self.clipvalue = config.get("clipvalue")

    def slots(self, flat: np.ndarray) -> list[np.ndarray]:
        """Zeroed optimizer slots shaped like ``flat``: momentum, velocity, or Adam's two."""
        count = {"SGD": 1 if self.momentum else 0, "RMSprop": 2 if self.momentum else 1}
        return [np.zeros_like(flat) for _ in range(count.get(self.kind, 2))]

    def clip(self, grads: np.ndarray, layout: _Layout, own: _Own) -> None:
        """Clip the members' flat gradients (M, P) in place, as Keras clips them; a member
        without a clipping has an infinite threshold (a scale of 1)."""
        if own.clips_norm:  # per variable: each variable's own norm
            # Keras scales by c / max(norm, c): the same as min(1, c / norm), which stays 1
            # for c = inf.
            sums = np.add.reduceat(grads * grads, layout.starts, axis=1)
            scale = np.minimum(1, own.clipnorm / np.sqrt(sums))
            grads *= np.repeat(scale, layout.sizes, axis=1)
        if own.clips_global:
            total = np.sqrt(np.einsum("mp,mp->m", grads, grads))
            grads *= np.minimum(1, own.global_clipnorm / total)[:, None]
        if own.clips_value:
            np.clip(grads, -own.clipvalue, own.clipvalue, out=grads)

    def apply(
        self,
        params: np.ndarray,
        grads: np.ndarray,
        slots: list[np.ndarray],
        step: np.ndarray,
        lr: np.ndarray,
    ) -> None:
        """One update of the flat parameters (M, P) in place; ``step`` is each member's
        iteration count after it (M,), ``lr`` its learning rate (M,). Every variable at
        once: one numpy call per term."""
        rate = lr[:, None]
        if self.kind == "SGD":
            if not self.momentum:
                params -= rate * grads
                return
            m = slots[0]
            m *= self.momentum
            m -= rate * grads
            params += self.momentum * m - rate * grads if self.nesterov else m
            return
        if self.kind == "RMSprop":
            v = slots[0]
            v *= self.rho
            v += (1 - self.rho) * grads * grads
            increment = rate * grads / np.sqrt(v + self.epsilon)
            if self.momentum:
                m = slots[1]
                m *= self.momentum
                m += increment
                increment = m
            params -= increment
            return
        # Adam: alpha carries the bias corrections of the members' own step counts.
        alpha = lr * np.sqrt(1 - self.beta_2**step) / (1 - self.beta_1**step)
        m, v = slots
        # Keras' own association, m += (g - m)(1 - b1): the rounding stays the same.
        m += (grads - m) * (1 - self.beta_1)
        v += (np.square(grads) - v) * (1 - self.beta_2)
        denominator = np.sqrt(v)
        denominator += self.epsilon
        np.divide(m, denominator, out=denominator)
        denominator *= alpha[:, None]
        params -= denominator


@dataclass(frozen=True)
class _Layout:
    """Where each variable lies in a member's flat vector of all its variables."""

    shapes: tuple[tuple[int, ...], ...]
    sizes: np.ndarray  # elements per variable
    starts: np.ndarray  # offset of each variable

    @classmethod
    def of(cls, arrays: Sequence[np.ndarray]) -> _Layout:
        sizes = np.array([a.size for a in arrays], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        return cls(tuple(a.shape for a in arrays), sizes, starts)

    def flatten(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        return np.concatenate([np.asarray(a, dtype=np.float32).reshape(-1) for a in arrays])

    def views(self, flat: np.ndarray) -> list[np.ndarray]:
        """Each variable of every member as a view of ``flat`` (M, P): (M, *shape)."""
        members = len(flat)
        return [
            flat[:, start : start + size].reshape((members, *shape))
            for start, size, shape in zip(self.starts, self.sizes, self.shapes, strict=True)
        ]

    def spread(self, values: Sequence[float]) -> np.ndarray:
        """One value per variable, repeated over its elements (P,)."""
        return np.repeat(np.asarray(values, dtype=np.float32), self.sizes)


@dataclass(frozen=True)
class _Own:
    """What each member sets for itself, a row per member: a population's configurations
    differ in these (and in their weights) only."""

    lr: np.ndarray  # (M,) learning rates
    rates: np.ndarray  # (M, dropouts) dropout rates
    scales: np.ndarray  # (M, dropouts) 1 / (1 - rate): what a kept unit is multiplied by
    l1: np.ndarray  # (M, P) the L1 coefficient of every parameter
    l2: np.ndarray  # (M, P)
    clipnorm: np.ndarray  # (M, 1) per-variable norm limit; inf: none
    global_clipnorm: np.ndarray  # (M,)
    clipvalue: np.ndarray  # (M, 1)

    @classmethod
    def of(cls, nets: Sequence[_Net], layout: _Layout) -> _Own:
        def limits(name: str) -> np.ndarray:
            values = [getattr(net.optimizer, name) for net in nets]
            return np.array([v if v else np.inf for v in values], dtype=np.float32)

        rates = np.array([net.rates for net in nets], dtype=np.float64).reshape(len(nets), -1)
        return cls(
            lr=np.array([net.optimizer.lr for net in nets], dtype=np.float32),
            rates=rates.astype(np.float32),
            scales=(1 / (1 - rates)).astype(np.float32),
            l1=np.stack([layout.spread([l1 for l1, _ in net.penalties]) for net in nets]),
            l2=np.stack([layout.spread([l2 for _, l2 in net.penalties]) for net in nets]),
            clipnorm=limits("clipnorm")[:, None],
            global_clipnorm=limits("global_clipnorm"),
            clipvalue=limits("clipvalue")[:, None],
        )

    def take(self, positions: list[int]) -> _Own:
        return _Own(*(getattr(self, f.name)[positions] for f in fields(self)))

    @functools.cached_property
    def clips_norm(self) -> bool:
        return bool(np.isfinite(self.clipnorm).any())

    @functools.cached_property
    def clips_global(self) -> bool:
        return bool(np.isfinite(self.global_clipnorm).any())

    @functools.cached_property
    def clips_value(self) -> bool:
        return bool(np.isfinite(self.clipvalue).any())

    @functools.cached_property
    def has_l1(self) -> bool:
        return bool(self.l1.any())

    @functools.cached_property
    def has_l2(self) -> bool:
        return bool(self.l2.any())


# --------------------------------------------------------------------------- training


def _sigmoid(z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # e^-z overflows to inf for z < -88: the sigmoid is 0
        return 1 / (1 + np.exp(-z))


def _softmax(z: np.ndarray) -> np.ndarray:
    shifted = np.exp(z - z.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


_ACTIVATE: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "linear": lambda z: z,
    "relu": lambda z: np.maximum(z, 0),
    "tanh": np.tanh,
    "elu": lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0))),
    "sigmoid": _sigmoid,
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
        seed: int | Sequence[int],
        nets: Sequence[_Net] | None = None,
    ) -> None:
        """``initial`` holds each member's weights; ``nets`` each member's net (all of one
        :meth:`_Net.key`; default: ``net`` for every member), for what it sets itself."""
        self.net = net
        # Every member's variables lie in one row of ``flat`` (M, P), and ``params`` are
        # views of it: the optimizer, clipping and penalties take one numpy call for all
        # variables, where a batch of a few hundred rows costs little more than the calls.
        self.layout = _Layout.of(initial[0])
        self._place(np.stack([self.layout.flatten(arrays) for arrays in initial]))
        self.slots = net.optimizer.slots(self.flat)
        self.step = np.zeros(len(initial), dtype=np.float32)
        self.batch_size = int(batch_size)
        self.rng = np.random.default_rng(seed)
        self.alive = list(range(len(initial)))
        self.x = np.asarray(x, dtype=np.float32)
        self.y = self._targets(np.asarray(y))
        self.train_rows = [train for train, _ in rows]
        self.val_index, self.val_weight = _padded([val for _, val in rows])
        self.own = _Own.of(nets or [net] * len(initial), self.layout)

    def _place(self, flat: np.ndarray) -> None:
        """Make ``flat`` the members' variables, with their views and a gradient buffer."""
        self.flat = flat
        self.params = self.layout.views(flat)
        self.grad_flat = np.empty_like(flat)
        self.grads = self.layout.views(self.grad_flat)

    def _targets(self, y: np.ndarray) -> np.ndarray:
        if self.net.kind == "softmax":
            return y.reshape(-1).astype(np.int64)
        return y.reshape(len(y), -1).astype(np.float32)

    def keep(self, members: list[int]) -> None:
        """Go on with ``members`` only (the others stopped early)."""
        if members == self.alive:
            return
        positions = [self.alive.index(m) for m in members]
        self._place(self.flat[positions])
        self.slots = [slot[positions] for slot in self.slots]
        self.step = self.step[positions]
        self.own = self.own.take(positions)
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
                rate = self.own.rates[:, op.dropout]
                if dropout and rate.any():
                    keep = self.rng.random(h.shape, dtype=np.float32) >= rate[:, None, None]
                    mask = keep * self.own.scales[:, op.dropout, None, None]
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
            mse = _output_mean(error * error)
            return {"loss": mse, "mse": mse, "mae": _output_mean(np.abs(error))}
        if kind == "sigmoid":
            accuracy = _output_mean(((logits > 0) == (y > 0.5)).astype(np.float32))
            if _FROM_LOGITS:
                # Binary crossentropy from the logit: max(z, 0) - z y + log(1 + e^-|z|).
                row = np.maximum(logits, 0) - logits * y + np.log1p(np.exp(-np.abs(logits)))
            else:
                p = _clipped(_sigmoid(logits))
                row = -(y * np.log(p) + (1 - y) * np.log(1 - p))
            logloss = _output_mean(row)
            return {"loss": logloss, "logloss": logloss, "accuracy": accuracy}
        accuracy = (logits.argmax(axis=-1) == y).astype(np.float32)
        if _FROM_LOGITS:
            shifted = logits - logits.max(axis=-1, keepdims=True)
            log_softmax = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
            logloss = -np.take_along_axis(log_softmax, y[..., None], axis=-1)[..., 0]
        else:
            logloss = -np.log(_clipped(_softmax_of_label(logits, y)))
        return {"loss": logloss, "logloss": logloss, "accuracy": accuracy}

    def _output_grad(self, logits: np.ndarray, y: np.ndarray, weight: np.ndarray) -> np.ndarray:
        """d (batch mean loss) / d logits; ``weight`` is each row's 1/rows, 0 for padding."""
        kind = self.net.kind
        w = weight[..., None]
        if kind == "linear":
            return (2 / logits.shape[-1]) * (logits - y) * w
        if kind == "sigmoid":
            p = _sigmoid(logits)
            if not _FROM_LOGITS:
                w = w * _inside_clip(p)  # a clipped probability passes no gradient back
            return (p - y) * (w / logits.shape[-1])
        grad = _softmax(logits)
        label = np.take_along_axis(grad, y[..., None], axis=-1)
        if not _FROM_LOGITS:
            w = w * _inside_clip(label)
        np.put_along_axis(grad, y[..., None], label - 1, axis=-1)
        return grad * w

    def _penalty(self) -> np.ndarray:
        """Each member's L1/L2 penalty (M,)."""
        total = np.zeros(len(self.alive), dtype=np.float32)
        if self.own.has_l1:
            total += np.einsum("mp,mp->m", np.abs(self.flat), self.own.l1)
        if self.own.has_l2:
            total += np.einsum("mp,mp->m", self.flat * self.flat, self.own.l2)
        return total

    def _grads(
        self,
        out: np.ndarray,
        cache: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
        masks: list[np.ndarray],
    ) -> np.ndarray:
        """The members' flat gradients (M, P), penalties included; written into one buffer
        that every step reuses (each variable's gradient is written whole)."""
        grads = self.grads
        dz = out
        dense = [op for op in self.net.ops if op.kernel >= 0]
        mask_iter = reversed(masks)
        ops = self.net.ops
        layer = len(dense) - 1
        for position in range(len(ops) - 1, -1, -1):
            op = ops[position]
            if op.kernel < 0:
                if self.own.rates[:, op.dropout].any() and masks:
                    dz = dz * next(mask_iter)
                continue
            h, z, a = cache[layer]
            if layer < len(dense) - 1:
                dz = _activation_grad(op.activation, dz, z, a)
            np.matmul(h.transpose(0, 2, 1), dz, out=grads[op.kernel])
            if op.bias >= 0:
                dz.sum(axis=1, out=grads[op.bias])
            if position > 0:
                dz = np.matmul(dz, self.params[op.kernel].transpose(0, 2, 1))
            layer -= 1
        if self.own.has_l1:
            self.grad_flat += self.own.l1 * np.sign(self.flat)
        if self.own.has_l2:
            self.grad_flat += (2 * self.own.l2) * self.flat
        return self.grad_flat

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
            grads = self._grads(self._output_grad(logits, yb, scale), cache, masks)
            optimizer.clip(grads, self.layout, self.own)
            if active.all():
                self.step += 1
                optimizer.apply(self.flat, grads, self.slots, self.step, self.own.lr)
            else:  # a member whose rows ran out this epoch sits the step out
                self._apply_some(grads, active)
        logs = list(sums / np.array([len(rows) for rows in trains], dtype=np.float32))
        logs.extend(self._validate())
        return np.stack(logs, axis=1)

    def _apply_some(self, grads: np.ndarray, active: np.ndarray) -> None:
        idle = ~active
        before = self.flat[idle], [slot[idle] for slot in self.slots]
        self.step += active
        self.net.optimizer.apply(
            self.flat, grads, self.slots, np.maximum(self.step, 1), self.own.lr
        )
        self.flat[idle] = before[0]
        for slot, previous in zip(self.slots, before[1], strict=True):
            slot[idle] = previous

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


def _softmax_of_label(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The softmax's probability of each row's label, renormalised as Keras does."""
    p = _softmax(z)
    p /= p.sum(axis=-1, keepdims=True)
    return np.take_along_axis(p, y[..., None], axis=-1)[..., 0]


def _clip_range() -> tuple[np.float32, np.float32]:
    epsilon = keras.config.epsilon()
    return np.float32(epsilon), np.float32(1.0 - epsilon)


def _clipped(p: np.ndarray) -> np.ndarray:
    """Probabilities clipped to [epsilon, 1 - epsilon], as Keras' crossentropies clip them."""
    low, high = _clip_range()
    return np.clip(p, low, high)


def _inside_clip(p: np.ndarray) -> np.ndarray:
    """1 where ``p`` lies strictly inside the clip range, else 0 (float32)."""
    low, high = _clip_range()
    return ((p > low) & (p < high)).astype(np.float32)


def _output_mean(values: np.ndarray) -> np.ndarray:
    """The mean over the output axis; with one output, that output (no reduction call)."""
    return values[..., 0] if values.shape[-1] == 1 else values.mean(axis=-1)


def _padded(groups: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of several groups padded to one length, and weights 1 for real rows."""
    length = max(len(g) for g in groups)
    index = np.zeros((len(groups), length), dtype=np.int64)
    weight = np.zeros((len(groups), length), dtype=np.float32)
    for k, group in enumerate(groups):
        index[k, : len(group)] = group
        weight[k, : len(group)] = 1
    return index, weight


class NumpyTrainer:
    """The ``numpy`` trainer (the default): :func:`evaluate_population` and
    :func:`retrain_population`."""

    evaluate = staticmethod(evaluate_population)
    retrain = staticmethod(retrain_population)
