"""A compiled trainer for the JAX backend: whole epochs of ``fit`` as one jitted program.

Keras ``fit`` spends almost all of a small model's training in Python: one dispatch per batch,
callbacks, metric objects. Here the model's ``stateless_call`` and the optimizer's
``stateless_apply`` run inside ``lax.scan`` over the batches of an epoch and over ``chunk``
epochs, so a chunk is one XLA call. Between chunks Python records the curves, fails a trial
on a non-finite loss, reports to the pruner and stops early, as ``fit`` does
after every epoch. Several configurations with the same shapes train together under
``jax.vmap`` (:func:`evaluate_population`).

What matches ``fit`` as :func:`search.trainers.keras_fit.evaluate` calls it:

- each epoch reshuffles the training rows (on the host, a numpy generator seeded by the
  run's seed, as Keras shuffles arrays with numpy);
- batches have the configuration's batch size, and the last partial batch is kept, as Keras
  keeps it: it is padded to the full size, and the padded rows get weight 0 in the loss and
  the metrics, so its loss is the mean over its real rows;
- dropout is drawn from each layer's seed-generator state, which is threaded through the
  scan with the other non-trainable variables and advances on every call;
- the loss is the compiled loss plus ``model.losses`` (regularisation), from
  ``stateless_call(..., return_losses=True)``;
- the epoch's ``loss`` is the batch-size-weighted mean over batches, its train metrics are
  the compiled metrics over the epoch's predictions, and ``val_loss`` / ``val_*`` are computed
  on the whole validation fold after the epoch, with ``training=False``;
- early stopping, the objective (best epoch of the curve averaged over folds and executions)
  and ``TrialFailedError`` on a NaN or infinite loss are those of ``evaluate``.

The random streams differ from Keras' (the dropout masks come from an integer hash of the
seed state, which compiles in a fraction of the time ``jax.random`` takes), so results match
``fit`` in distribution over seeds, not number for number. With one batch per epoch and no
dropout there is nothing random left, and the curves equal ``fit``'s up to float rounding.

The JIT cache: a program is compiled once per model *signature*, the model and optimizer
configuration with the hyperparameters that only change numbers taken out. The learning rate
(an optimizer variable), ``clipnorm``, L1/L2 coefficients and dropout rates are traced
arguments, so trials that differ only in them reuse one compiled program, and a population
stacks them on the vmapped axis. Layer sizes, activations, which layers exist, the optimizer
type and its other settings, the batch size and the data shapes are part of the signature.
Compiling a program takes seconds (XLA), against hundredths of a second to run one: the
compiled trainer pays off when signatures repeat, and a population when many share one.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import keras
import numpy as np

from search.errors import TrialFailedError, UnsupportedModelError
from search.space import compile_arguments
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
from search.trainers.keras_fit import evaluate_each, retrain, retrain_each

CHUNK = 10
"""Epochs per jitted call: the pruner, NaN checks and early stopping see results this often."""

# Layers that treat every row on its own, so padding the last batch cannot change the real
# rows' outputs (BatchNormalization mixes rows), and whose settings are all plain values the
# signature can see (Normalization with given statistics keeps them as constants, not
# variables, so two such layers would wrongly share a program).
_ROW_WISE_LAYERS: tuple[type[keras.layers.Layer], ...] = (
    keras.layers.InputLayer,
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
_PENALTIES = (keras.regularizers.L1, keras.regularizers.L2, keras.regularizers.L1L2)
_CACHE_SIZE = 32


# --------------------------------------------------------------------------- public API


def supports(model: keras.Model, objective: str | None = None) -> bool:
    """Whether the compiled trainer can train ``model`` exactly as ``fit`` would."""
    return _unsupported(model, objective) is None


def shape_key(model: keras.Model, batch_size: int) -> str:
    """The signature that decides which models share a compiled program and a population."""
    return _signature(model, batch_size)


def group_by_shape(builds: Sequence[Build]) -> list[list[int]]:
    """Indices of ``builds`` grouped by shape (supported models only), in first-seen order.

    Each build is called once to read its model's shape; models the compiled trainer does not
    support each form a group of their own.
    """
    groups: dict[str, list[int]] = {}
    for index, build in enumerate(builds):
        model, batch_size = build()
        key = _signature(model, batch_size) if supports(model) else f"unsupported-{index}"
        groups.setdefault(key, []).append(index)
    return list(groups.values())


def evaluate_compiled(
    build: Build,
    data: TrainData,
    objective: str,
    seed: int,
    report: Report | None = None,
    epochs: int | None = None,
    curves: list[dict[str, list[float]]] | None = None,
    *,
    chunk: int = CHUNK,
    fallback: bool = True,
) -> TrialResult:
    """Keras fit's ``evaluate`` with the compiled trainer: same arguments and result.

    ``curves``, an empty list if given, receives each run's curve (after every chunk of
    epochs), so a caller still has the epochs a pruned or failed trial ran. A model the
    compiled trainer does not support is trained by ``evaluate`` (Keras ``fit``) when
    ``fallback`` is true; otherwise :class:`UnsupportedModelError` is raised.
    """
    return evaluate_one(
        evaluate_population,
        build,
        data,
        objective,
        seed,
        report,
        epochs,
        curves,
        chunk=chunk,
        fallback=fallback,
    )


def evaluate_population(
    builds: Sequence[Build],
    data: TrainData,
    objective: str,
    seeds: Sequence[int],
    reports: Sequence[Report | None] | None = None,
    epochs: Sequence[int | None] | None = None,
    curves: Sequence[list[dict[str, list[float]]]] | None = None,
    *,
    chunk: int = CHUNK,
    fallback: bool = True,
) -> list[Outcome]:
    """Train many configurations, those with the same shape together in one vmapped program.

    ``seeds``, ``reports`` (one pruning callback per build, or None) and ``epochs`` (each
    build's override of the study's epochs; those of one group must agree, so the
    override is part of the grouping) go with ``builds``.
    Each entry of the result is that configuration's :class:`TrialResult`, or the exception
    that ended it: :class:`TrialFailedError` for a non-finite loss, or whatever its ``report``
    raised (a pruned trial). One member failing does not stop the others. ``curves`` (one
    empty list per build, if given) receive each member's run curves, those of ended members
    included. ``seconds`` of a member is its group's wall time (building its models
    included) divided by the group's size. Unsupported models are trained one by one with
    ``evaluate`` when ``fallback`` is true.
    """
    reports = list(reports) if reports is not None else [None] * len(builds)
    limits = list(epochs) if epochs is not None else [None] * len(builds)
    if not len(seeds) == len(reports) == len(limits) == len(builds):
        raise ValueError("one seed, report and epochs override per build")
    runs_curves: list[list[dict[str, list[float]]]] = (
        [[] for _ in builds] if curves is None else list(curves)
    )
    settings = data.settings
    runs = [(e, f) for e in range(settings.executions) for f in range(len(data.folds))]
    outcomes: list[Outcome | None] = [None] * len(builds)
    groups: dict[tuple[str, int | None], list[int]] = {}
    first: dict[int, tuple[keras.Model, int]] = {}
    built_in: dict[int, float] = {}
    singles: list[int] = []
    for index, build in enumerate(builds):
        start = time.perf_counter()
        set_seed(seeds[index])
        model, batch_size = build()
        built_in[index] = time.perf_counter() - start
        why = _unsupported(model, objective)
        if why is not None:
            if not fallback:
                raise UnsupportedModelError(why)
            singles.append(index)
            continue
        first[index] = (model, batch_size)
        groups.setdefault((_signature(model, batch_size), limits[index]), []).append(index)

    for (_, limit), members in groups.items():
        start = time.perf_counter() - sum(built_in[i] for i in members)
        ended: dict[int, Exception] = {}
        for run, (execution, fold) in enumerate(runs):
            if run == 0:
                models = [first[i] for i in members]
            else:
                models = []
                for i in members:
                    set_seed(seeds[i] + 1000 * execution + fold)
                    models.append(builds[i]())
            program = _program(*models[0])
            trained = program.train(
                [model for model, _ in models],
                _fold_arrays(data, fold),
                [seeds[i] + 1000 * execution + fold for i in members],
                limit or settings.epochs,
                settings.patience,
                objective,
                [reports[i] if run == 0 else None for i in members],
                chunk,
            )
            for i, curve, error in zip(members, trained.curves, trained.errors, strict=True):
                if i in ended:
                    continue  # still trained (the population keeps its size), not scored
                runs_curves[i].append(curve)
                if error is not None:
                    ended[i] = error
            if len(ended) == len(members):
                break
        seconds = (time.perf_counter() - start) / len(members)
        params = first[members[0]][0].count_params()
        for i in members:
            outcomes[i] = ended.get(i) or read_result(runs_curves[i], objective, params, seconds)

    fitted = evaluate_each(
        [builds[i] for i in singles],
        data,
        objective,
        [seeds[i] for i in singles],
        [reports[i] for i in singles],
        [limits[i] for i in singles],
        [runs_curves[i] for i in singles],
    )
    for i, outcome in zip(singles, fitted, strict=True):
        outcomes[i] = outcome
    return [outcome for outcome in outcomes if outcome is not None]


def retrain_compiled(build: Build, epochs: int, data: TrainData, seed: int) -> keras.Model:
    """Keras fit's ``retrain`` with the compiled trainer: the model, trained in place.

    Trains on the whole training split for exactly ``epochs`` epochs and writes the final
    weights into the model's variables. Falls back to ``retrain`` for unsupported models.
    """
    set_seed(seed)
    model, batch_size = build()
    if not supports(model):
        return retrain(build, epochs, data, seed)
    arrays = _Arrays(data.x, data.y, data.x[:0], data.y[:0])
    trained = _program(model, batch_size).train(
        [model], arrays, [seed], epochs, 0, None, [None], CHUNK
    )
    if trained.errors[0] is not None:
        raise trained.errors[0]
    trainable, non_trainable = trained.weights(0)
    for variable, value in zip(model.trainable_variables, trainable, strict=True):
        variable.assign(value)
    for variable, value in zip(model.non_trainable_variables, non_trainable, strict=True):
        variable.assign(value)
    return model


def clear_cache() -> None:
    """Forget every compiled program (and the template models they hold)."""
    _PROGRAMS.clear()


# --------------------------------------------------------------------------- checks


def _unsupported(model: keras.Model, objective: str | None = None) -> str | None:
    """Why the compiled trainer cannot train ``model`` (None when it can)."""
    if keras.backend.backend() != "jax":
        return f"the compiled trainer needs the JAX backend, not {keras.backend.backend()}"
    if getattr(model, "search_fit", None) is not None:
        return "its HyperModel trains it with a fit of its own"
    compiled = compile_arguments(model)
    optimizer = compiled.get("optimizer")
    if not isinstance(optimizer, keras.optimizers.Optimizer) or model.loss is None:
        return "the model is not compiled with a Keras optimizer and a loss"
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return "LossScaleOptimizer is not supported"
    options = optimizer.get_config()
    if options.get("use_ema") or options.get("gradient_accumulation_steps"):
        return "optimizer EMA and gradient accumulation are not supported"
    if options.get("loss_scale_factor") is not None:
        return "loss scaling is not supported"
    if compiled.get("loss_weights") is not None or compiled.get("weighted_metrics"):
        return "loss weights and weighted metrics are not supported"
    loss = model.loss
    if isinstance(loss, keras.losses.Loss):
        if loss.reduction not in ("sum_over_batch_size", "mean"):
            return f"loss reduction {loss.reduction!r} is not supported"
    elif not isinstance(loss, str):
        return "only a single Keras loss (an object or a name) is supported"
    metrics = compiled.get("metrics") or []
    if not isinstance(metrics, list) or not all(
        isinstance(m, keras.metrics.Metric) for m in metrics
    ):
        return "metrics must be a list of keras.metrics objects (not names or one per output)"
    if objective is not None:
        names = {"loss"} | {m.name for m in metrics}
        if not objective.startswith("val_") or objective[4:] not in names:
            return f"objective {objective!r} is not val_loss or a val_ compiled metric"
    if not model.built:
        return "the model is not built (start it with keras.Input)"
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        return "only models with one input and one output are supported"
    previous = model.inputs[0]
    for layer in model.layers:
        if not isinstance(layer, _ROW_WISE_LAYERS):
            return f"layer {layer.name!r} ({type(layer).__name__}) is not supported"
        if layer.activity_regularizer is not None:
            return f"layer {layer.name!r} has an activity regularizer (not supported)"
        if isinstance(layer, keras.layers.InputLayer):
            previous = layer.output
            continue
        try:
            chained = layer.input is previous
        except (AttributeError, ValueError):  # a layer called more than once
            chained = False
        if not chained:
            return "only chains of layers (each feeding the next) are supported"
        previous = layer.output
    for variable in model.trainable_variables:
        regularizer = variable.regularizer
        if regularizer is not None and type(regularizer) not in _PENALTIES:
            return f"regularizer {type(regularizer).__name__} is not supported (L1, L2, L1L2)"
    return None


def _signature(model: keras.Model, batch_size: int) -> str:
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


# --------------------------------------------------------------------------- the program


@dataclass
class _Arrays:
    """One fold's training and validation rows, as the program takes them."""

    x: Any
    y: Any
    x_val: Any
    y_val: Any


@dataclass
class _Trained:
    """Each member's curve, what ended it (None if nothing did), and the final state."""

    curves: list[dict[str, list[float]]]
    errors: list[Exception | None]
    state: Any
    single: bool

    def weights(self, member: int) -> tuple[list[Any], list[Any]]:
        trainable, non_trainable = self.state[0], self.state[1]
        if self.single:
            return list(trainable), list(non_trainable)
        return [v[member] for v in trainable], [v[member] for v in non_trainable]


_PROGRAMS: OrderedDict[str, _Program] = OrderedDict()
_FOLDS: weakref.WeakKeyDictionary[TrainData, dict[int, _Arrays]] = weakref.WeakKeyDictionary()


def _program(model: keras.Model, batch_size: int) -> _Program:
    """The compiled program for ``model``'s signature; the first such model is its template."""
    key = _signature(model, batch_size)
    if key in _PROGRAMS:
        _PROGRAMS.move_to_end(key)
        return _PROGRAMS[key]
    program = _Program(model, batch_size)
    _PROGRAMS[key] = program
    if len(_PROGRAMS) > _CACHE_SIZE:
        _PROGRAMS.popitem(last=False)
    return program


def _fold_arrays(data: TrainData, fold: int) -> _Arrays:
    """A fold's rows, sliced once per study (like TrainData's cached pipelines)."""
    per_fold = _FOLDS.setdefault(data, {})
    if fold not in per_fold:
        train_rows, val_rows = data.folds[fold]
        per_fold[fold] = _Arrays(
            data.x[train_rows], data.y[train_rows], data.x[val_rows], data.y[val_rows]
        )
    return per_fold[fold]


class _TracedPenalty(keras.regularizers.Regularizer):
    """L1/L2 with coefficients that are traced arrays: the same formula as Keras' L1L2."""

    def __init__(self, l1: Any, l2: Any) -> None:
        self.l1 = l1
        self.l2 = l2

    def __call__(self, x: Any) -> Any:
        return self.l1 * keras.ops.sum(keras.ops.abs(x)) + self.l2 * keras.ops.sum(
            keras.ops.square(x)
        )


def _hash32(x: Any) -> Any:
    """A 32-bit integer finaliser (lowbias32): every output bit depends on every input bit."""
    import jax.numpy as jnp

    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def _uniform(seed: Any, shape: tuple[int, ...]) -> Any:
    """Uniform [0, 1) floats from a uint32[2] seed, by hashing a counter under that key.

    Not ``jax.random``: threefry takes about half a second to compile per call site on this
    machine, more than the whole training of a small model; an integer hash takes almost none.
    """
    import jax.numpy as jnp

    seed = jnp.asarray(seed).astype(jnp.uint32)
    key = _hash32(seed[0] ^ _hash32(seed[1] ^ jnp.uint32(0x9E3779B9)))
    count = jnp.arange(math.prod(shape), dtype=jnp.uint32).reshape(shape)
    bits = _hash32(_hash32(count * jnp.uint32(0x9E3779B9) ^ key) ^ (key * jnp.uint32(0x85EBCA6B)))
    return (bits >> 8).astype(jnp.float32) * (1.0 / (1 << 24))


def _traced_dropout(layer: keras.layers.Dropout, rate: Any) -> Callable[..., Any]:
    """Dropout's ``call`` with a traced rate (Keras checks ``rate > 0`` in Python).

    The mask is drawn from the layer's seed-generator state, which advances on every call
    and is threaded through the training loop with the other non-trainable variables.
    """

    def call(inputs: Any, training: bool | None = False) -> Any:
        if not training:
            return inputs
        shape = tuple(inputs.shape)
        if layer.noise_shape is not None:
            shape = tuple(
                s if n is None else n for s, n in zip(shape, layer.noise_shape, strict=True)
            )
        keep = 1.0 - rate
        # Bernoulli(keep), as jax.random.bernoulli draws it: uniform < keep. With rate 0 every
        # unit is kept and scaled by 1, so the layer is the identity as in Keras.
        kept = _uniform(layer.seed_generator.next(), shape) < keep
        return keras.ops.where(kept, inputs / keep, keras.ops.zeros_like(inputs))

    return call


def _clip_by_norm(grad: Any, clipnorm: Any) -> Any:
    """Keras' per-tensor ``clipnorm`` with a traced threshold; 0 leaves the gradient as it is."""
    import jax.numpy as jnp

    l2sum = jnp.sum(jnp.square(grad))
    positive = l2sum > 0
    norm = jnp.where(positive, jnp.sqrt(jnp.where(positive, l2sum, 1.0)), l2sum)
    clipped = grad * clipnorm / jnp.maximum(norm, jnp.where(clipnorm > 0, clipnorm, 1.0))
    return jnp.where(clipnorm > 0, clipped, grad)


class _Hyper(NamedTuple):
    """One member's traced hyperparameters (the learning rate is in the optimizer state)."""

    penalties: Any  # (n_penalised, 2): l1, l2 per regularised variable
    rates: Any  # (n_dropout,)
    clipnorm: Any  # () 0 when off


class _Program:
    """A template model, its optimizer and the jitted chunk of epochs (single and vmapped)."""

    def __init__(self, template: keras.Model, batch_size: int) -> None:
        import jax

        self.template = template
        self.batch_size = int(batch_size)
        optimizer = template.optimizer
        if not optimizer.built:
            optimizer.build(template.trainable_variables)
        self.optimizer = optimizer
        # Optimizer slots start the same for every model of this signature; only the learning
        # rate differs, so it is the one value swapped in per member.
        self.optimizer_init = [v.value for v in optimizer.variables]
        rate = optimizer.learning_rate
        self.lr_index = next((i for i, v in enumerate(optimizer.variables) if v is rate), None)
        self.penalised = [
            i for i, v in enumerate(template.trainable_variables) if v.regularizer is not None
        ]
        layers = template.layers
        self.dropouts = [
            i for i, layer in enumerate(layers) if isinstance(layer, keras.layers.Dropout)
        ]
        loss = template.loss
        self.loss_fn: Callable[[Any, Any], Any] = (
            loss.call if isinstance(loss, keras.losses.Loss) else keras.losses.get(loss)
        )
        # Fresh copies: their variables are this program's initial metric state.
        self.metrics = [
            type(m).from_config(m.get_config())
            for m in compile_arguments(template).get("metrics") or []
        ]
        self.metric_init = [[v.value for v in metric.variables] for metric in self.metrics]
        self.names = (
            ["loss"]
            + [m.name for m in self.metrics]
            + ["val_loss"]
            + [f"val_{m.name}" for m in self.metrics]
        )
        self.output_dim = int(template.outputs[0].shape[-1] or 1)
        # One member runs unbatched; a population is vmapped over every state and
        # hyperparameter array, and shares the data.
        self._single = jax.jit(self._chunk, static_argnums=(5,))
        self._population = jax.jit(
            jax.vmap(self._chunk, in_axes=(0, 0, None, 0, None, None)), static_argnums=(5,)
        )

    # ----------------------------------------------------------------- per member

    def hyperparameters(self, model: keras.Model) -> _Hyper:
        """One model's traced hyperparameters, as float32 arrays."""
        variables = model.trainable_variables
        penalties = [
            [float(getattr(variables[i].regularizer, name, 0.0) or 0.0) for name in ("l1", "l2")]
            for i in self.penalised
        ]
        return _Hyper(
            np.array(penalties, dtype=np.float32).reshape(len(self.penalised), 2),
            np.array([model.layers[i].rate for i in self.dropouts], dtype=np.float32),
            np.float32(model.optimizer.clipnorm or 0.0),
        )

    def initial_state(self, model: keras.Model) -> tuple[Any, ...]:
        optimizer = list(self.optimizer_init)
        if self.lr_index is not None:
            optimizer[self.lr_index] = np.float32(model.optimizer.learning_rate.numpy())
        return (
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
            optimizer,
        )

    # ----------------------------------------------------------------- tracing

    @contextlib.contextmanager
    def _traced(self, hyper: _Hyper) -> Iterator[None]:
        """Put the traced hyperparameters into the template while it is traced."""
        variables = self.template.trainable_variables
        layers = self.template.layers
        saved_penalties = [variables[i].regularizer for i in self.penalised]
        saved_clipnorm = self.optimizer.clipnorm
        try:
            for k, i in enumerate(self.penalised):
                variables[i].regularizer = _TracedPenalty(
                    hyper.penalties[k, 0], hyper.penalties[k, 1]
                )
            for k, i in enumerate(self.dropouts):
                object.__setattr__(layers[i], "call", _traced_dropout(layers[i], hyper.rates[k]))
            # Clipping moves out of the optimizer, to a traced threshold (see _epoch).
            self.optimizer.clipnorm = None
            yield
        finally:
            self.optimizer.clipnorm = saved_clipnorm
            for k, i in enumerate(self.penalised):
                variables[i].regularizer = saved_penalties[k]
            for i in self.dropouts:
                if "call" in vars(layers[i]):
                    object.__delattr__(layers[i], "call")

    def _forward(self, trainable: Any, non_trainable: Any, x: Any, training: bool) -> Any:
        y_pred, non_trainable, losses = self.template.stateless_call(
            trainable, non_trainable, x, training=training, return_losses=True
        )
        extra = sum((keras.ops.sum(loss) for loss in losses), keras.ops.zeros(()))
        return y_pred, non_trainable, extra

    def _mean_loss(self, y: Any, y_pred: Any, weight: Any) -> Any:
        """The compiled loss averaged over the rows with weight 1 (Keras' batch mean)."""
        import jax.numpy as jnp

        values = self.loss_fn(y, y_pred)
        values = jnp.reshape(values, (values.shape[0], -1))
        return jnp.sum(values * weight[:, None]) / (jnp.sum(weight) * values.shape[1])

    def _epoch(self, state: Any, hyper: _Hyper, data: Any, order: Any) -> tuple[Any, Any]:
        """One epoch over the rows in ``order`` (padded to whole batches), then validation."""
        import jax
        import jax.numpy as jnp

        x, y, x_val, y_val = data
        n = x.shape[0]
        steps = order.shape[0] // self.batch_size
        weight = (jnp.arange(order.shape[0]) < n).astype("float32")
        batches = (
            order.reshape(steps, self.batch_size),
            weight.reshape(steps, self.batch_size),
        )

        def step(carry: Any, batch: Any) -> tuple[Any, None]:
            trainable, non_trainable, opt, loss_sum, metric_vars = carry
            rows, w = batch
            xb, yb = x[rows], y[rows]

            def loss_of(trainable: Any, non_trainable: Any) -> Any:
                y_pred, non_trainable, extra = self._forward(trainable, non_trainable, xb, True)
                return self._mean_loss(yb, y_pred, w) + extra, (y_pred, non_trainable)

            (loss, (y_pred, non_trainable)), grads = jax.value_and_grad(loss_of, has_aux=True)(
                trainable, non_trainable
            )
            grads = [_clip_by_norm(g, hyper.clipnorm) for g in grads]
            trainable, opt = self.optimizer.stateless_apply(opt, grads, trainable)
            metric_vars = [
                metric.stateless_update_state(v, yb, y_pred, sample_weight=w)
                for metric, v in zip(self.metrics, metric_vars, strict=True)
            ]
            # Keras' loss tracker weights each batch's loss by its number of rows.
            return (trainable, non_trainable, opt, loss_sum + loss * jnp.sum(w), metric_vars), None

        trainable, non_trainable, opt = state
        carry = (trainable, non_trainable, opt, jnp.zeros(()), self.metric_init)
        (trainable, non_trainable, opt, loss_sum, metric_vars), _ = jax.lax.scan(
            step, carry, batches
        )
        logs = [loss_sum / n]
        logs += [m.stateless_result(v) for m, v in zip(self.metrics, metric_vars, strict=True)]
        if x_val.shape[0] == 0:  # retraining on the whole split: nothing to validate on
            logs += [jnp.full((), jnp.nan)] * (1 + len(self.metrics))
        else:
            y_pred, _, extra = self._forward(trainable, non_trainable, x_val, False)
            logs.append(self._mean_loss(y_val, y_pred, jnp.ones(x_val.shape[0])) + extra)
            for metric, init in zip(self.metrics, self.metric_init, strict=True):
                updated = metric.stateless_update_state(init, y_val, y_pred)
                logs.append(metric.stateless_result(updated))
        values = jnp.stack([jnp.asarray(v, "float32").reshape(()) for v in logs])
        return (trainable, non_trainable, opt), values

    def _chunk(
        self, state: Any, hyper: _Hyper, data: Any, orders: Any, left: Any, length: int
    ) -> Any:
        """``length`` epochs; epochs from ``left`` on leave the state as it is (padding)."""
        import jax
        import jax.numpy as jnp

        with self._traced(hyper):

            def epoch(state: Any, xs: Any) -> tuple[Any, Any]:
                index, order = xs
                new, values = self._epoch(state, hyper, data, order)
                active = index < left
                kept = jax.tree.map(lambda a, b: jnp.where(active, a, b), new, state)
                return kept, values

            return jax.lax.scan(epoch, state, (jnp.arange(length), orders))

    # ----------------------------------------------------------------- training

    def _targets(self, y: np.ndarray) -> Any:
        """Targets shaped for the loss: (n, 1) floats for one output unit, class codes else."""
        y = np.asarray(y)
        if y.ndim == 1 and self.output_dim == 1:
            return y.astype(np.float32)[:, None]
        if y.ndim == 1:
            return y.astype(np.int32)
        return y.astype(np.float32)

    def train(
        self,
        models: Sequence[keras.Model],
        arrays: _Arrays,
        seeds: Sequence[int],
        epochs: int,
        patience: int,
        objective: str | None,
        reports: Sequence[Report | None],
        chunk: int,
    ) -> _Trained:
        """Train ``models`` (one per seed) together; watch each member between chunks."""
        import jax
        import jax.numpy as jnp

        single = len(models) == 1
        states = [self.initial_state(model) for model in models]
        hypers = [self.hyperparameters(model) for model in models]
        if single:
            state, hyper = states[0], hypers[0]
            run = self._single
        else:
            # Stacked on the host: jnp.stack would compile a small program per variable shape.
            state = jax.tree.map(lambda *leaves: np.stack([np.asarray(v) for v in leaves]), *states)
            hyper = jax.tree.map(lambda *leaves: np.stack(leaves), *hypers)
            run = self._population
        data = (
            jnp.asarray(arrays.x, "float32"),
            jnp.asarray(self._targets(arrays.y)),
            jnp.asarray(arrays.x_val, "float32"),
            jnp.asarray(self._targets(arrays.y_val)),
        )
        n = len(arrays.x)
        padded = -(-n // self.batch_size) * self.batch_size
        # Shuffled on the host, as Keras shuffles arrays: numpy, one generator per member.
        generators = [np.random.default_rng(seed) for seed in seeds]
        length = max(1, min(chunk, epochs))
        watches = [Watch(objective, patience, r) for r in reports]
        done = 0
        while done < epochs and any(w.running for w in watches):
            left = min(length, epochs - done)
            orders = np.zeros((len(models), length, padded), dtype=np.int32)
            for member, generator in enumerate(generators):
                for epoch in range(length):
                    orders[member, epoch, :n] = generator.permutation(n)
            state, values = run(state, hyper, data, orders[0] if single else orders, left, length)
            values = np.asarray(values).reshape(len(models), length, -1)
            for member, watch in enumerate(watches):
                for offset, row in enumerate(values[member, :left]):
                    watch.end_epoch(done + offset, dict(zip(self.names, row, strict=True)))
            done += left
        return _Trained([w.curve for w in watches], [w.error for w in watches], state, single)


class CompiledTrainer:
    """The ``compiled`` trainer (JAX backend): :func:`evaluate_population`, and
    :func:`retrain_compiled` member by member."""

    evaluate = staticmethod(evaluate_population)

    @staticmethod
    def retrain(
        build: Build, epochs: int, data: TrainData, seeds: Sequence[int]
    ) -> list[keras.Model | TrialFailedError]:
        return retrain_each(build, epochs, data, seeds, retrain_compiled)
