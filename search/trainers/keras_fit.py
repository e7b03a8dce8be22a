"""The ``keras`` trainer: Keras ``fit`` on cached input pipelines, one configuration at a time.

It trains any compiled Keras model, so the fast trainers hand it the models they cannot train.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from search.errors import TrialFailedError
from search.trainers.base import (
    Build,
    Job,
    Outcome,
    Report,
    TrainData,
    TrialResult,
    Watch,
    read_result,
    run_seed,
    set_seed,
)
from search.trainers.checkpoint import Checkpoint, Saved, restore_curves, same_shapes


def evaluate(
    build: Build,
    data: TrainData,
    objective: str,
    seed: int,
    report: Report | None = None,
    epochs: int | None = None,
    curves: list[dict[str, list[float]]] | None = None,
    checkpoint: Checkpoint | None = None,
) -> TrialResult:
    """Train one configuration on every fold x execution and read off its best epoch.

    Pruning (``report``) sees the first run's curve epoch by epoch; the objective is taken
    from the mean curve over all runs, cut to the shortest run when early stopping differs.
    ``curves``, an empty list if given, receives each run's curve as it grows, so a caller
    still has the epochs a pruned or failed trial ran. With a ``checkpoint``, the runs it
    holds as finished are kept, an unfinished one continues from its weights and optimizer
    state after its last saved epoch, and the checkpoint is written as the runs go.
    """
    settings = data.settings
    start = time.perf_counter()
    curves = [] if curves is None else curves
    saved = checkpoint.load() if checkpoint is not None else None
    runs = [(e, f) for e in range(settings.executions) for f in range(len(data.folds))]
    curves.extend(restore_curves(saved, len(runs)))
    params = saved.params if saved is not None else 0
    before = saved.seconds if saved is not None else 0.0
    for index, (execution, fold) in enumerate(runs):
        state = saved.running.get(index) if saved is not None else None
        if index < len(curves) and state is None:
            continue  # a run that had finished before the interruption: kept
        kept = curves[index] if index < len(curves) else None
        watch, model, batch_size = _start_run(
            build, objective, settings.patience, kept, state, run_seed(seed, execution, fold)
        )
        watch.watch.report = report if index == 0 else None
        done = _length(watch.curve)
        params = model.count_params()
        if index < len(curves):
            curves[index] = watch.curve  # the kept epochs, replayed; filled on from there
        else:
            curves.append(watch.curve)  # filled in place, epoch by epoch
        if checkpoint is not None:
            watch.keep(checkpoint, index, curves, before - start)
        fit = getattr(model, "search_fit", None)
        limit = epochs or settings.epochs
        if fit is not None:
            # A HyperModel's own fit, called as keras-tuner calls it: arrays (it may
            # choose a batch size), the validation split, the callbacks, the epochs.
            train_rows, val_rows = data.folds[fold]
            own_fit(
                fit,
                model,
                data.x[train_rows],
                data.y[train_rows],
                {"epochs": limit, "callbacks": [watch], "initial_epoch": done},
                validation_data=(data.x[val_rows], data.y[val_rows]),
                verbose=0,
            )
            continue
        train, validation = data.pipelines(fold, batch_size)
        model.fit(
            **train,
            validation_data=validation,
            epochs=limit,
            initial_epoch=done,
            callbacks=[watch],
            verbose=0,
        )
    result = read_result(curves, objective, params, before + time.perf_counter() - start)
    result.earlier = before
    return result


def _start_run(
    build: Build,
    objective: str,
    patience: int,
    kept: dict[str, list[float]] | None,
    state: list[np.ndarray] | None,
    seed: int,
) -> tuple[_EpochWatch, keras.Model, int]:
    """One run's watch and freshly built model: a new run's, or one that continues the
    ``kept`` epochs of a checkpoint from its saved ``state`` (that run's early stopping
    counts the kept epochs). A state that no longer fits the model starts the run over."""
    done = _length(kept or {})
    # A continued run draws its shuffles and dropout from a seed of its own (its run's and
    # the epoch it continues from): the bits of an uninterrupted run are not reproduced.
    set_seed(seed + 7919 * done)
    model, batch_size = build()
    watch = _EpochWatch(objective, patience, None)
    if kept and state is not None and _restore(model, state):
        watch.watch.replay(kept)
    elif kept:
        set_seed(seed)
        model, batch_size = build()
    return watch, model, batch_size


def _length(curve: dict[str, list[float]]) -> int:
    return len(next(iter(curve.values()), []))


def _state(model: keras.Model) -> list[np.ndarray]:
    """A model's weights, then its optimizer's variables (step count and slots)."""
    optimizer = [keras.ops.convert_to_numpy(v) for v in model.optimizer.variables]
    return [*model.get_weights(), *optimizer]


def _restore(model: keras.Model, state: list[np.ndarray]) -> bool:
    """Set a freshly built model to a saved :func:`_state`; False, with a note, where it
    does not fit (the space builds another model now)."""
    optimizer = model.optimizer
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    weights = len(model.weights)
    if not (
        same_shapes(state[:weights], model.weights)
        and same_shapes(state[weights:], optimizer.variables)
    ):
        logging.getLogger("search").info(
            "a checkpoint does not fit the model the space builds now: its run starts over"
        )
        return False
    model.set_weights(state[:weights])
    for variable, value in zip(optimizer.variables, state[weights:], strict=True):
        variable.assign(value)
    return True


def evaluate_each(jobs: Sequence[Job], data: TrainData, objective: str) -> list[Outcome]:
    """:func:`evaluate` for several configurations, one after the other, each outcome kept:
    this trainer's ``evaluate``, and the population driver's path for the models the fast
    trainers cannot train."""
    outcomes: list[Outcome] = []
    for job in jobs:
        try:
            outcomes.append(
                evaluate(
                    job.build,
                    data,
                    objective,
                    job.seed,
                    job.report,
                    job.epochs,
                    job.curves,
                    job.checkpoint,
                )
            )
        except Exception as error:  # noqa: BLE001 - handed back as that configuration's outcome
            outcomes.append(error)
    return outcomes


def retrain(build: Build, epochs: int, data: TrainData, seed: int) -> keras.Model:
    """Train on the whole training split for ``epochs`` (the configuration's best epoch,
    scaled to the split)."""
    set_seed(seed)
    model, batch_size = build()
    watch = _EpochWatch(None, 0, None)
    fit = getattr(model, "search_fit", None)
    if fit is not None:  # a HyperModel's own fit (see evaluate)
        own_fit(fit, model, data.x, data.y, {"epochs": epochs, "callbacks": [watch]}, verbose=0)
        return model
    model.fit(**data.full(batch_size), epochs=epochs, callbacks=[watch], verbose=0)
    return model


def retrain_each(
    build: Build, epochs: int, data: TrainData, seeds: Sequence[int]
) -> list[keras.Model | TrialFailedError]:
    """One configuration retrained from each of ``seeds`` in turn (an ensemble's members):
    each model, or the error of one that diverged: this trainer's ``retrain``, and the
    population driver's path for the models the fast trainers cannot train."""
    models: list[keras.Model | TrialFailedError] = []
    for seed in seeds:
        try:
            models.append(retrain(build, epochs, data, seed))
        except TrialFailedError as error:
            models.append(error)
    return models


def own_fit(
    fit: Any, model: keras.Model, x: Any, y: Any, ours: dict[str, Any], **kwargs: Any
) -> None:
    """A HyperModel's own ``fit(model, x, y, **kwargs)`` (its ``hp`` bound), with the
    harness's ``epochs`` and ``callbacks`` (``ours``) handed to ``model.fit`` rather than
    to it.

    keras-tuner's guide tunes training in ``fit``, for example ``model.fit(*args,
    epochs=hp.Int("epochs", 2, 6), **kwargs)``; given the harness's ``epochs`` among
    ``kwargs`` that call would name ``epochs`` twice (a TypeError). So ``model.fit`` fills
    in what the space's ``fit`` did not pass: a value it passes itself wins (one note the
    first time), and the harness's callbacks (the epoch watch: curves, early stopping,
    pruning) are added to its own.
    """
    keras_fit = model.fit

    def fit_with_ours(*args: Any, **given: Any) -> Any:
        for name in sorted(set(given) & set(ours) - {"callbacks"}):
            _note_once(fit, name, given[name], ours[name])
        given["callbacks"] = [*(given.get("callbacks") or []), *ours["callbacks"]]
        return keras_fit(*args, **(ours | given))

    model.fit = fit_with_ours
    try:
        fit(model, x, y, **kwargs)
    finally:
        del model.fit  # the class's again: the model may be saved or trained once more


# The options each space's fit was noted to set itself, by its fit (one per study: a
# trial's fit is the space's with the trial's hp bound).
_NOTED: set[tuple[int, str]] = set()


def _note_once(fit: Any, name: str, theirs: Any, ours: Any) -> None:
    key = (id(getattr(fit, "func", fit)), name)
    if key not in _NOTED:
        _NOTED.add(key)
        logging.getLogger("search").info(
            "the space's fit passes %s=%s itself: it is used rather than the study's %s",
            name,
            theirs,
            ours,
        )


class _EpochWatch(keras.callbacks.Callback):
    """A :class:`Watch` as a ``fit`` callback: raises what ended the run, stops early, and
    writes the trial's checkpoint when one is due (see :meth:`keep`)."""

    def __init__(self, objective: str | None, patience: int, report: Report | None) -> None:
        super().__init__()
        self.watch = Watch(objective, patience, report)
        self.curve = self.watch.curve
        self._checkpoint: Checkpoint | None = None
        self._run = 0
        self._curves: list[dict[str, list[float]]] = []
        self._clock = 0.0  # the trial's seconds, less time.perf_counter()

    def keep(
        self,
        checkpoint: Checkpoint,
        run: int,
        curves: list[dict[str, list[float]]],
        clock: float,
    ) -> None:
        """Write ``checkpoint`` as epochs end: every run's ``curves``, this ``run``'s weights
        and optimizer state while it goes on, and the trial's seconds (``clock`` plus
        ``time.perf_counter()``)."""
        self._checkpoint, self._run, self._curves, self._clock = checkpoint, run, curves, clock

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.watch.end_epoch(epoch, {key: float(value) for key, value in (logs or {}).items()})
        if self.watch.error is not None:
            raise self.watch.error
        if not self.watch.running:
            self.model.stop_training = True
        if self._checkpoint is not None and self._checkpoint.tick():
            running = {self._run: _state(self.model)} if self.watch.running else {}
            self._checkpoint.save(
                Saved(
                    self._curves,
                    running,
                    self._clock + time.perf_counter(),
                    self.model.count_params(),
                )
            )


class KerasFitTrainer:
    """The ``keras`` trainer: Keras ``fit``, one configuration and one member at a time."""

    evaluate = staticmethod(evaluate_each)
    retrain = staticmethod(retrain_each)
