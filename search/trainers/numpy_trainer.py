"""The numpy trainer: ``fit``'s training of a Dense/Dropout chain, without ``fit``'s overhead.

On a few hundred rows a Keras ``fit`` step is microseconds of arithmetic inside a
millisecond of dispatch, callbacks and metric objects, and the JAX compiled trainer trades
that for seconds of XLA compilation per model shape. This trainer reads the model as a chain
of layers and trains it in one compiled loop (:mod:`search.trainers.numpy_loop`, compiled
once per install and cached), on any backend. The runs of one configuration (every fold x
execution) train together: their weights are stacked on a leading axis, one *member* per
run, and the members are split over the cores in threads. So do the runs of several
configurations of one structure (a *population*, see :func:`evaluate_population`), each
member with its own learning rate, dropout rates, penalties and clipping (:class:`_Own`),
and an ensemble's retrainings.

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

import contextlib
import functools
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, fields
from typing import Any

import keras
import numpy as np
from threadpoolctl import ThreadpoolController

from search.errors import TrialFailedError, UnsupportedModelError
from search.space import compile_arguments, keras_metric_classes
from search.trainers import numpy_loop
from search.trainers.base import (
    Build,
    Outcome,
    Report,
    TrainData,
    TrialResult,
    Watch,
    evaluate_one,
    read_result,
    set_seed,
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
    except UnsupportedModelError as error:
        return str(error)
    return None


def structure_key(model: keras.Model, batch_size: int) -> tuple[Any, ...] | None:
    """What decides which configurations train together (None: one this trainer cannot
    train): equal keys differ only in learning rate, dropout rates, penalties and clipping."""
    try:
        return _Net(model).key(batch_size)
    except UnsupportedModelError:
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
        set_seed(seeds[index])
        model, batch_size = build()
        try:
            net = _Net(model)
        except UnsupportedModelError:
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
    with one_blas_thread():
        for epoch, logs in enumerate(trainer.epochs(max(limit))):
            for row, values in zip(trainer.alive, logs, strict=True):
                logged = dict(zip(trainer.net.log_names, map(float, values), strict=True))
                watches[row].end_epoch(epoch, logged)
                if epoch + 1 >= limit[row]:
                    watches[row].running = False
            # Every run's epoch is recorded first: an ended trial keeps its curves for
            # TensorBoard.
            for row in trainer.alive:
                error = watches[row].error
                if error is not None:
                    ended.setdefault(rows[row][0].index, error)
            trainer.keep(
                [r for r in trainer.alive if watches[r].running and rows[r][0].index not in ended]
            )
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
        set_seed(seed)
        model, batch_size = build()
        try:
            nets.append(_Net(model))
        except UnsupportedModelError:
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
    with one_blas_thread():
        for epoch, logs in enumerate(trainer.epochs(epochs)):
            for row, values in zip(trainer.alive, logs, strict=True):
                logged = dict(zip(nets[0].log_names, map(float, values), strict=True))
                watches[row].end_epoch(epoch, logged)
            trainer.keep([row for row in trainer.alive if watches[row].running])
    for position, row in enumerate(trainer.alive):
        nets[row].assign(models[row], [p[position] for p in trainer.params])
    return [watch.error or model for watch, model in zip(watches, models, strict=True)]


# --------------------------------------------------------------------------- the network


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
            raise UnsupportedModelError("its HyperModel trains it with a fit of its own")
        compiled = compile_arguments(model)
        self.optimizer = _Optimizer(compiled.get("optimizer"))
        loss = model.loss
        output = _OUTPUT.get(type(loss))
        if output is None:
            raise UnsupportedModelError(f"loss {loss!r} is not MSE or a crossentropy")
        if getattr(loss, "from_logits", False) or getattr(loss, "label_smoothing", 0.0):
            raise UnsupportedModelError("crossentropy from logits or with label smoothing")
        if getattr(loss, "ignore_class", None) is not None or loss.reduction not in (
            "sum_over_batch_size",
            "mean",
        ):
            raise UnsupportedModelError("a loss with ignore_class or another reduction")
        if compiled.get("loss_weights") is not None or compiled.get("weighted_metrics"):
            raise UnsupportedModelError("loss weights and weighted metrics")
        self.kind = output
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
        self.ops, self.layers, self.penalties, self.rates = self._chain(model)
        last = self.ops[-1]
        if last.kernel < 0 or last.activation != output:
            raise UnsupportedModelError(f"the output layer must be a Dense with {output}")

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
            raise UnsupportedModelError("only built models with one input and one output")
        if len(model.inputs[0].shape) != 2:
            raise UnsupportedModelError("only (rows, features) inputs")
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
                raise UnsupportedModelError("only chains of layers, each feeding the next")
            previous = layer.output
            if layer.dtype_policy.name != "float32" or not layer.trainable:
                raise UnsupportedModelError(f"layer {layer.name!r}: float32 and trainable only")
            if isinstance(layer, keras.layers.Dropout):
                if layer.noise_shape is not None:
                    raise UnsupportedModelError("dropout with a noise shape")
                ops.append(_Op(dropout=len(rates)))
                rates.append(float(layer.rate))
                continue
            if type(layer) is not keras.layers.Dense:
                raise UnsupportedModelError(f"layer {layer.name!r} ({type(layer).__name__})")
            activation = layer.activation.__name__
            # The output layer's activation is checked against the loss by the caller.
            if activation not in _HIDDEN and layer is not model.layers[-1]:
                raise UnsupportedModelError(f"activation {activation!r}")
            if layer.activity_regularizer is not None or layer.lora_rank:
                raise UnsupportedModelError(f"layer {layer.name!r}: activity regularizer or LoRA")
            if layer.kernel_constraint is not None or layer.bias_constraint is not None:
                raise UnsupportedModelError(f"layer {layer.name!r}: weight constraints")
            kernel = len(penalties)
            penalties.append(_penalty(layer.kernel_regularizer))
            bias = -1
            if layer.use_bias:
                bias = len(penalties)
                penalties.append(_penalty(layer.bias_regularizer))
            ops.append(_Op(activation, kernel, bias))
            layers.append(layer)
        if not layers:
            raise UnsupportedModelError("no Dense layer")
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
        raise UnsupportedModelError(f"regularizer {type(regularizer).__name__}")
    return (float(getattr(regularizer, "l1", 0.0)), float(getattr(regularizer, "l2", 0.0)))


class _Optimizer:
    """Keras' update rules for SGD, RMSprop and Adam, over stacked members."""

    def __init__(self, optimizer: Any) -> None:
        if type(optimizer) not in (
            keras.optimizers.SGD,
            keras.optimizers.RMSprop,
            keras.optimizers.Adam,
        ):
            raise UnsupportedModelError(f"optimizer {type(optimizer).__name__}")
        config = optimizer.get_config()
        if not isinstance(config["learning_rate"], float):
            raise UnsupportedModelError("a learning-rate schedule")
        if config.get("weight_decay") or config.get("use_ema") or config.get("centered"):
            raise UnsupportedModelError("weight decay, EMA or a centered RMSprop")
        if config.get("amsgrad") or config.get("gradient_accumulation_steps"):
            raise UnsupportedModelError("AMSGrad or gradient accumulation")
        if config.get("loss_scale_factor") is not None:
            raise UnsupportedModelError("loss scaling")
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

    def slots(self, flat: np.ndarray) -> np.ndarray:
        """Zeroed optimizer slots, (S, *flat.shape): SGD's velocity (with momentum),
        RMSprop's mean square (and momentum), or Adam's two moments."""
        count = {"SGD": 1 if self.momentum else 0, "RMSprop": 2 if self.momentum else 1}
        return np.zeros((count.get(self.kind, 2), *flat.shape), dtype=np.float32)


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


@dataclass(frozen=True)
class _Own:
    """What each member sets for itself, a row per member: a population's configurations
    differ in these (and in their weights) only."""

    lr: np.ndarray  # (M,) learning rates
    rates: np.ndarray  # (M, dropouts) dropout rates
    scales: np.ndarray  # (M, dropouts) 1 / (1 - rate): what a kept unit is multiplied by
    l1: np.ndarray  # (M, V) the L1 coefficient of every variable
    l2: np.ndarray  # (M, V)
    clipnorm: np.ndarray  # (M,) per-variable norm limit; inf: none
    global_clipnorm: np.ndarray  # (M,)
    clipvalue: np.ndarray  # (M,)

    @classmethod
    def of(cls, nets: Sequence[_Net]) -> _Own:
        def limits(name: str) -> np.ndarray:
            values = [getattr(net.optimizer, name) for net in nets]
            return np.array([v if v else np.inf for v in values], dtype=np.float32)

        rates = np.array([net.rates for net in nets], dtype=np.float64).reshape(len(nets), -1)
        return cls(
            lr=np.array([net.optimizer.lr for net in nets], dtype=np.float32),
            rates=rates.astype(np.float32),
            scales=(1 / (1 - rates)).astype(np.float32),
            l1=np.array([[l1 for l1, _ in net.penalties] for net in nets], dtype=np.float32),
            l2=np.array([[l2 for _, l2 in net.penalties] for net in nets], dtype=np.float32),
            clipnorm=limits("clipnorm"),
            global_clipnorm=limits("global_clipnorm"),
            clipvalue=limits("clipvalue"),
        )

    def take(self, positions: list[int]) -> _Own:
        return _Own(*(getattr(self, f.name)[positions] for f in fields(self)))


# --------------------------------------------------------------------------- training


@dataclass(frozen=True)
class _Tables:
    """What the compiled loop (:mod:`search.trainers.numpy_loop`) reads of a net: its layers,
    dropouts, variables, output, optimizer and metrics, as small arrays."""

    layers: np.ndarray  # (L, 7) int64
    dropout_widths: np.ndarray  # (D,) int64: the width of each dropout's input
    variables: np.ndarray  # (V, 2) int64
    flags: np.ndarray  # (6,) int64
    hyper: np.ndarray  # (7,) float32
    metric_codes: np.ndarray  # (K,) int64

    @classmethod
    def of(cls, net: _Net, layout: _Layout, batch_size: int) -> _Tables:
        layers, widths = [], [0] * len(net.rates)
        pending: list[int] = []  # the dropouts since the last Dense: its input's
        for op in net.ops:
            if op.kernel < 0:
                pending.append(op.dropout)
                continue
            shape = layout.shapes[op.kernel]
            for d in pending:
                widths[d] = shape[0]
            first = pending[0] if pending else 0
            layers.append(
                [
                    layout.starts[op.kernel],
                    layout.starts[op.bias] if op.bias >= 0 else -1,
                    shape[0],
                    shape[1],
                    # The output layer's activation is the loss's (OUTPUTS): linear here.
                    numpy_loop.ACTIVATIONS[op.activation] if op is not net.ops[-1] else 0,
                    first,
                    first + len(pending),
                ]
            )
            pending = []
        optimizer = net.optimizer
        low, high = _clip_range()
        return cls(
            layers=np.array(layers, dtype=np.int64),
            dropout_widths=np.array(widths, dtype=np.int64),
            variables=np.stack([layout.starts, layout.sizes], axis=1).astype(np.int64),
            flags=np.array(
                [
                    numpy_loop.OUTPUTS[net.kind],
                    _FROM_LOGITS,
                    numpy_loop.OPTIMIZERS[optimizer.kind],
                    optimizer.nesterov,
                    bool(optimizer.momentum),
                    batch_size,
                ],
                dtype=np.int64,
            ),
            hyper=np.array(
                [
                    optimizer.momentum,
                    optimizer.rho,
                    optimizer.beta_1,
                    optimizer.beta_2,
                    optimizer.epsilon,
                    low,
                    high,
                ],
                dtype=np.float32,
            ),
            metric_codes=np.array(
                [numpy_loop.METRIC_CODES[kind] for kind in net.metric_kinds], dtype=np.int64
            ),
        )


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
        # views of it: the compiled loop reads and updates a member's row as one vector.
        self.layout = _Layout.of(initial[0])
        self._place(np.stack([self.layout.flatten(arrays) for arrays in initial]))
        self.slots = net.optimizer.slots(self.flat)  # (S, M, P)
        self.step = np.zeros(len(initial), dtype=np.float32)
        self.tables = _Tables.of(net, self.layout, int(batch_size))
        self.rng = np.random.default_rng(seed)
        self.alive = list(range(len(initial)))
        self.x = np.ascontiguousarray(x, dtype=np.float32)
        y = np.asarray(y)
        # Targets as the loop reads them: class labels for a softmax, else (rows, outputs).
        self.labels = y.reshape(-1).astype(np.int64) if net.kind == "softmax" else _NO_LABELS
        self.targets = (
            _NO_TARGETS if net.kind == "softmax" else y.reshape(len(y), -1).astype(np.float32)
        )
        self.train_rows = [train for train, _ in rows]
        self.val_index, self.val_count = _padded([val for _, val in rows])
        self.own = _Own.of(nets or [net] * len(initial))

    def _place(self, flat: np.ndarray) -> None:
        """Make ``flat`` the members' variables, with their views."""
        self.flat = np.ascontiguousarray(flat)
        self.params = self.layout.views(self.flat)

    def keep(self, members: list[int]) -> None:
        """Go on with ``members`` only (the others stopped early)."""
        if members == self.alive:
            return
        positions = [self.alive.index(m) for m in members]
        self._place(self.flat[positions])
        self.slots = np.ascontiguousarray(self.slots[:, positions])
        self.step = self.step[positions]
        self.own = self.own.take(positions)
        self.val_index, self.val_count = self.val_index[positions], self.val_count[positions]
        self.alive = members

    def epoch(self) -> np.ndarray:
        """Train every living member one epoch; their logs in ``net.log_names`` order (M, k)."""
        return np.concatenate([self._next_epoch()(), self._validate(self.flat)], axis=1)

    def epochs(self, count: int) -> Iterator[np.ndarray]:
        """:meth:`epoch` ``count`` times, or until :meth:`keep` leaves no member.

        One member alone (a holdout trial) leaves a core idle: there the next epoch trains
        on it while this one is validated (on a copy of the weights it ended with) and its
        logs are read (the pruner's report, early stopping), and the draws of the one after
        are taken. The draws come from the generator in the same order, so the logs are
        :meth:`epoch`'s to the bit. An epoch trained ahead of a stop is lost with the
        trainer, as its member has ended.
        """
        if len(self.alive) != 1 or _threads() < 2 or count < 2:
            for _ in range(count):
                if not self.alive:
                    return
                yield self.epoch()
            return
        ahead: Future[np.ndarray] | None = _pool().submit(self._next_epoch())
        drawn: Callable[[], np.ndarray] | None = self._next_epoch()
        taken = 2  # the epochs drawn so far
        try:
            while ahead is not None:
                logs, ahead = ahead.result(), None
                weights = self.flat.copy()
                if drawn is not None:
                    ahead = _pool().submit(drawn)
                    drawn = self._next_epoch() if taken < count else None
                    taken += 1
                yield np.concatenate([logs, self._validate(weights)], axis=1)
                if not self.alive:
                    return
        finally:
            if ahead is not None:
                ahead.result()  # nothing trains on after the caller has stopped

    def _next_epoch(self) -> Callable[[], np.ndarray]:
        """The next epoch of the living members, its draws taken now: a call that trains it
        and returns its training logs (M, k)."""
        trains = [self.train_rows[m] for m in self.alive]
        rows, counts = _padded([rows[self.rng.permutation(len(rows))] for rows in trains])
        columns, uniforms = self._dropout_draws(rows.shape[1])
        own, tables = self.own, self.tables
        flat, slots, step = self.flat, self.slots, self.step
        logs = np.empty((len(self.alive), 1 + len(tables.metric_codes)), dtype=np.float32)

        def train(members: np.ndarray) -> None:
            numpy_loop.train_epoch(
                members,
                flat,
                slots,
                step,
                own.lr,
                own.l1,
                own.l2,
                own.clipnorm,
                own.global_clipnorm,
                own.clipvalue,
                own.rates,
                own.scales,
                self.x,
                self.targets,
                self.labels,
                rows,
                counts,
                uniforms,
                tables.layers,
                columns,
                tables.variables,
                tables.flags,
                tables.hyper,
                tables.metric_codes,
                logs,
            )

        def run() -> np.ndarray:
            _in_threads(train, len(logs), rows.size * flat.shape[1])
            return logs

        return run

    def _dropout_draws(self, length: int) -> tuple[np.ndarray, np.ndarray]:
        """This epoch's dropout uniforms, (M, rows, columns), for the dropouts that some
        member uses, and each dropout's first column (a unit is kept where its draw is at
        least the rate)."""
        used = self.own.rates.any(axis=0)
        widths = np.where(used, self.tables.dropout_widths, 0)
        columns = np.concatenate([[0], np.cumsum(widths)[:-1]]).astype(np.int64)
        shape = (len(self.alive), length if used.any() else 0, int(widths.sum()))
        return columns, self.rng.random(shape, dtype=np.float32)

    def _validate(self, flat: np.ndarray) -> np.ndarray:
        """The living members' validation logs with weights ``flat`` (M, P)."""
        names = 1 + len(self.tables.metric_codes)
        if not self.val_count.any():  # retraining on the whole split: nothing to validate on
            return np.full((len(self.alive), names), np.nan, dtype=np.float32)
        logs = np.empty((len(self.alive), names), dtype=np.float32)
        _in_threads(
            lambda members: numpy_loop.evaluate(
                members,
                flat,
                self.own.l1,
                self.own.l2,
                self.x,
                self.targets,
                self.labels,
                self.val_index,
                self.val_count,
                self.tables.layers,
                self.tables.variables,
                self.tables.flags,
                self.tables.hyper,
                self.tables.metric_codes,
                logs,
            ),
            len(self.alive),
            self.val_index.size * flat.shape[1],
        )
        return logs


_NO_LABELS = np.zeros(0, dtype=np.int64)
_NO_TARGETS = np.zeros((0, 1), dtype=np.float32)


def _in_threads(run: Callable[[np.ndarray], None], members: int, work: int) -> None:
    """``run`` over every member, the members split in groups over this process's share of
    the cores: the compiled loop holds no GIL, and each member's arithmetic is its own.
    ``work`` (rows x weights, all members) below _THREADED stays on one thread: handing
    a group to another thread costs more than it saves there (measured: the linear space).
    Call it under :func:`one_blas_thread`."""
    threads = min(members, _threads() if work >= _THREADED else 1)
    if threads == 1:
        run(np.arange(members))
        return
    groups = np.array_split(np.arange(members), threads)
    others = [_pool().submit(run, group) for group in groups[1:]]
    run(groups[0])  # this thread takes the first group
    for done in others:
        done.result()


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """One BLAS thread while members train: the matrices are small, and OpenBLAS' own threads
    spin against ours and against other processes (10x slower on a loaded machine). Held
    for a whole training (setting and restoring it took 11 us, a tenth of a small epoch)."""
    with _blas().limit(limits=1, user_api="blas"):
        yield


_THREADED = 200_000


def _threads() -> int:
    """This process's share of the cores: ``NUMBA_NUM_THREADS`` where workers and benchmark
    jobs set it, else every core."""
    return max(1, int(os.environ.get("NUMBA_NUM_THREADS") or os.cpu_count() or 1))


@functools.cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(
        max_workers=max(1, _threads() - 1), thread_name_prefix="numpy-trainer"
    )


@functools.cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()  # finding the loaded BLAS libraries takes milliseconds


def _clip_range() -> tuple[np.float32, np.float32]:
    """Where Keras' crossentropies clip probabilities off TensorFlow: [epsilon, 1 - epsilon]."""
    epsilon = keras.config.epsilon()
    return np.float32(epsilon), np.float32(1.0 - epsilon)


def _padded(groups: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of several groups padded to one length, and each group's length."""
    length = max(len(g) for g in groups)
    index = np.zeros((len(groups), length), dtype=np.int64)
    for k, group in enumerate(groups):
        index[k, : len(group)] = group
    return index, np.array([len(g) for g in groups], dtype=np.int64)


class NumpyTrainer:
    """The ``numpy`` trainer (the default): :func:`evaluate_population` and
    :func:`retrain_population`."""

    evaluate = staticmethod(evaluate_population)
    retrain = staticmethod(retrain_population)
