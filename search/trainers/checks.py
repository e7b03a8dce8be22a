"""The model checks both fast trainers (``numpy`` and ``compiled``) make before they train a
model as Keras ``fit`` would.

Each check raises :class:`~search.errors.UnsupportedModelError`, its message saying what the
trainer does not reproduce; a trainer's ``unsupported`` turns that into its answer, and the
population driver hands such a model to ``fit``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import keras

from search.errors import UnsupportedModelError
from search.space import compile_arguments

# The regularizers whose penalty both trainers compute: an L1 and an L2 coefficient.
PENALTIES = (keras.regularizers.L1, keras.regularizers.L2, keras.regularizers.L1L2)
# The loss reductions both compute: the mean over the batch's rows.
MEAN_REDUCTIONS = ("sum_over_batch_size", "mean")


def checked_compile(model: keras.Model) -> dict[str, Any]:
    """The model's compile arguments, once neither a fit of its own nor loss weights or
    weighted metrics (which neither trainer reproduces) are in the way."""
    if getattr(model, "search_fit", None) is not None:
        raise UnsupportedModelError("its HyperModel trains it with a fit of its own")
    compiled = compile_arguments(model)
    if compiled.get("loss_weights") is not None or compiled.get("weighted_metrics"):
        raise UnsupportedModelError("loss weights and weighted metrics")
    return compiled


def check_optimizer_options(options: dict[str, Any]) -> None:
    """An optimizer's configuration, for what changes its steps outside its update rule."""
    if options.get("use_ema") or options.get("gradient_accumulation_steps"):
        raise UnsupportedModelError("optimizer EMA or gradient accumulation")
    if options.get("loss_scale_factor") is not None:
        raise UnsupportedModelError("loss scaling")


def check_reduction(loss: keras.losses.Loss) -> None:
    if loss.reduction not in MEAN_REDUCTIONS:
        raise UnsupportedModelError(f"loss reduction {loss.reduction!r}")


def check_objective(objective: str | None, metric_names: Iterable[str]) -> None:
    """The objective (None: a retraining, which has none) is the validation loss or a
    compiled metric's validation value, the curves a trainer logs."""
    if objective is None:
        return
    if not objective.startswith("val_") or objective[4:] not in {"loss", *metric_names}:
        raise UnsupportedModelError(f"objective {objective!r} is not val_loss or a val_ metric")


def chain(model: keras.Model) -> list[keras.layers.Layer]:
    """The model's layers after its input: a chain, each feeding the next, of one input and
    one output, none with an activity regularizer."""
    if not model.built:
        raise UnsupportedModelError("the model is not built (start it with keras.Input)")
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise UnsupportedModelError("only models with one input and one output")
    layers = []
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
        if layer.activity_regularizer is not None:
            raise UnsupportedModelError(f"layer {layer.name!r}: an activity regularizer")
        previous = layer.output
        layers.append(layer)
    return layers


def penalty(regularizer: Any) -> tuple[float, float]:
    """A variable's L1 and L2 coefficients ((0, 0) without a regularizer)."""
    if regularizer is None:
        return (0.0, 0.0)
    if type(regularizer) not in PENALTIES:
        raise UnsupportedModelError(f"regularizer {type(regularizer).__name__} (L1, L2, L1L2)")
    return (float(getattr(regularizer, "l1", 0.0)), float(getattr(regularizer, "l2", 0.0)))
