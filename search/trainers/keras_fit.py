"""The ``keras`` trainer: Keras ``fit`` on cached input pipelines, one configuration at a time.

It trains any compiled Keras model, so the fast trainers hand it the models they cannot train.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import keras

from search.errors import TrialFailedError
from search.trainers.base import (
    Build,
    Outcome,
    Report,
    TrainData,
    TrialResult,
    Watch,
    read_result,
    run_seed,
    set_seed,
)


def evaluate(
    build: Build,
    data: TrainData,
    objective: str,
    seed: int,
    report: Report | None = None,
    epochs: int | None = None,
    curves: list[dict[str, list[float]]] | None = None,
) -> TrialResult:
    """Train one configuration on every fold x execution and read off its best epoch.

    Pruning (``report``) sees the first run's curve epoch by epoch; the objective is taken
    from the mean curve over all runs, cut to the shortest run when early stopping differs.
    ``curves``, an empty list if given, receives each run's curve as it grows, so a caller
    still has the epochs a pruned or failed trial ran.
    """
    settings = data.settings
    start = time.perf_counter()
    curves = [] if curves is None else curves
    params = 0
    for execution in range(settings.executions):
        for fold in range(len(data.folds)):
            set_seed(run_seed(seed, execution, fold))
            model, batch_size = build()
            params = model.count_params()
            watch = _EpochWatch(objective, settings.patience, report if not curves else None)
            curves.append(watch.curve)  # filled in place, epoch by epoch
            fit = getattr(model, "search_fit", None)
            if fit is not None:
                # A HyperModel's own fit, called as keras-tuner calls it: arrays (it may
                # choose a batch size), the validation split, the callbacks, the epochs.
                train_rows, val_rows = data.folds[fold]
                own_fit(
                    fit,
                    model,
                    data.x[train_rows],
                    data.y[train_rows],
                    {"epochs": epochs or settings.epochs, "callbacks": [watch]},
                    validation_data=(data.x[val_rows], data.y[val_rows]),
                    verbose=0,
                )
                continue
            train, validation = data.pipelines(fold, batch_size)
            model.fit(
                **train,
                validation_data=validation,
                epochs=epochs or settings.epochs,
                callbacks=[watch],
                verbose=0,
            )
    return read_result(curves, objective, params, time.perf_counter() - start)


def evaluate_each(
    builds: Sequence[Build],
    data: TrainData,
    objective: str,
    seeds: Sequence[int],
    reports: Sequence[Report | None],
    epochs: Sequence[int | None],
    curves: Sequence[list[dict[str, list[float]]]] | None = None,
) -> list[Outcome]:
    """:func:`evaluate` for several configurations, one after the other, each outcome kept:
    this trainer's ``evaluate``, and the population driver's path for the models the fast
    trainers cannot train."""
    outcomes: list[Outcome] = []
    runs_curves = [[] for _ in builds] if curves is None else curves
    for build, seed, report, limit, runs in zip(
        builds, seeds, reports, epochs, runs_curves, strict=True
    ):
        try:
            outcomes.append(evaluate(build, data, objective, seed, report, limit, runs))
        except Exception as error:  # noqa: BLE001 - handed back as that configuration's outcome
            outcomes.append(error)
    return outcomes


def retrain(build: Build, epochs: int, data: TrainData, seed: int) -> keras.Model:
    """Train on the whole training split for ``epochs`` (the configuration's best epoch)."""
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
    """A :class:`Watch` as a ``fit`` callback: raises what ended the run, stops early."""

    def __init__(self, objective: str | None, patience: int, report: Report | None) -> None:
        super().__init__()
        self.watch = Watch(objective, patience, report)
        self.curve = self.watch.curve

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.watch.end_epoch(epoch, {key: float(value) for key, value in (logs or {}).items()})
        if self.watch.error is not None:
            raise self.watch.error
        if not self.watch.running:
            self.model.stop_training = True


class KerasFitTrainer:
    """The ``keras`` trainer: Keras ``fit``, one configuration and one member at a time."""

    evaluate = staticmethod(evaluate_each)
    retrain = staticmethod(retrain_each)
