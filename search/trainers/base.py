"""What every trainer shares: the :class:`Trainer` contract, the data, the curves' reading.

Data is prepared once per study (:class:`TrainData` caches the folds and, for ``fit``, the
input pipelines); each trial only builds its model. The objective of a configuration is the
best epoch of its validation curve, averaged over the cross-validation folds and repeated
executions.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from search import _compat
from search.errors import TrialFailedError
from search.tasks.scoring import maximised, score
from search.tasks.task import Task

if TYPE_CHECKING:
    import keras

    from search.trainers.checkpoint import Checkpoint

Report = Callable[[int, float], None]
"""Called after every epoch with (epoch, objective value); may raise to prune the trial."""


@dataclass(frozen=True)
class Settings:
    """How every trial of a study trains (the defaults are :class:`search.Study`'s)."""

    epochs: int
    patience: int
    cv: int
    executions: int
    validation_split: float
    seed: int


@dataclass
class TrialResult:
    """What one configuration achieved, read off its (averaged) validation curve."""

    value: float
    metrics: dict[str, float]
    epochs: int
    best_epoch: int
    params: int
    seconds: float
    curves: list[dict[str, list[float]]] = field(default_factory=list)
    # Set when ``seconds`` is a recorded training time charged to a simulated clock (a
    # tabular benchmark's lookup): the real seconds the trial took. None: ``seconds`` is real.
    wall_seconds: float | None = None
    # Of ``seconds``, those of the attempts before this one (a trial continued from its
    # checkpoint): an engine that times the attempt itself adds them.
    earlier: float = 0.0
    # The configuration it ended with where training changed it (population-based
    # training): each hyperparameter's value, and its domain as the engine declares it.
    hyperparameters: tuple[dict[str, Any], dict[str, Any]] | None = None


class TrainData:
    """The standardised training split, its validation folds and cached input pipelines."""

    def __init__(self, task: Task, settings: Settings, one_hot: bool = False) -> None:
        self.task = task
        self.settings = settings
        self.x = task.standardize(task.x_train)
        # A binary model outputs (n, 1); Keras 3's BinaryCrossentropy metric does not
        # broadcast a label vector of shape (n,) against it.
        self.y = task.y_train.reshape(-1, 1) if task.spec.kind == "binary" else task.y_train
        if one_hot:  # a categorical_crossentropy loss takes one row of k per label
            self.y = np.eye(task.spec.n_classes, dtype=np.float32)[task.y_train]
        self.folds = fold_rows(len(self.x), settings.cv, settings.validation_split, settings.seed)
        self._pipelines: dict[tuple[int, int], tuple[dict[str, Any], Any]] = {}

    def subset(self, rows: np.ndarray) -> TrainData:
        """The same data cut to ``rows`` (one fold's training rows): a trainer's ``retrain``
        on it trains on those rows only. Its folds are the study's, not the subset's: only
        ``retrain`` may use it."""
        part = copy.copy(self)
        part.x, part.y = self.x[rows], self.y[rows]
        part._pipelines = {}
        return part

    def pipelines(self, fold: int, batch_size: int) -> tuple[Any, Any]:
        """(train, validation) inputs for ``fit``, built on first use and reused after."""
        key = (fold, batch_size)
        if key not in self._pipelines:
            train_rows, val_rows = self.folds[fold]
            self._pipelines[key] = (
                _pipeline(self.x[train_rows], self.y[train_rows], batch_size, self.settings.seed),
                _validation(self.x[val_rows], self.y[val_rows]),
            )
        return self._pipelines[key]

    def full(self, batch_size: int) -> dict[str, Any]:
        """The whole training split, for the final retraining of the best configurations."""
        key = (-1, batch_size)
        if key not in self._pipelines:
            self._pipelines[key] = (
                _pipeline(self.x, self.y, batch_size, self.settings.seed),
                None,
            )
        return self._pipelines[key][0]


Build = Callable[[], "tuple[keras.Model, int]"]
"""Builds a fresh compiled model; returns it with the batch size its configuration chose."""


def set_seed(seed: int) -> None:
    """``keras.utils.set_random_seed``, without importing TensorFlow off its backend."""
    import keras  # here, not at the top: see averaged()

    with without_tensorflow():
        keras.utils.set_random_seed(seed)


@contextlib.contextmanager
def without_tensorflow() -> Iterator[None]:
    """Keras told, for the duration, that TensorFlow is absent, where it is not loaded and
    the backend is another.

    Keras asks whether TensorFlow is installed, importing it to know (2.7 s), before it
    seeds it in ``set_random_seed`` (for ``tf.data`` pipelines, which no trainer here uses
    off TensorFlow) and when saving or cloning a model (to recognise TensorFlow's shapes and
    types as it serializes, which no object can be while TensorFlow is not loaded). The
    flag is Keras' own, private (:func:`search._compat.tensorflow_hidden_from_keras`): if
    it moves, ``tests/system/test_packaging.py`` names it, and
    ``test_the_cli_builds_on_the_numpy_backend_...`` sees TensorFlow loaded and fails.
    """
    import keras  # here, not at the top: see averaged()

    if keras.backend.backend() == "tensorflow":
        yield
        return
    with _compat.tensorflow_hidden_from_keras():
        yield


def trial_seed(study_seed: int, number: int) -> int:
    """The seed of trial ``number``: distinct per trial, the same on every rerun."""
    return study_seed * 100_003 + number


def run_seed(seed: int, execution: int, fold: int) -> int:
    """The seed of one run of a configuration whose seed is ``seed``: its ``execution`` on
    ``fold``. The first run (0, 0) keeps the configuration's own seed."""
    return seed + 1000 * execution + fold


Outcome = TrialResult | Exception
"""A configuration's result, or what ended it: a non-finite loss, or its report's pruning."""


@dataclass
class Job:
    """One configuration a trainer is asked to train, and what goes with it."""

    build: Build
    seed: int
    report: Report | None = None  # the pruner's callback, which sees the first run's curve
    epochs: int | None = None  # its override of the study's epochs (as Hyperband sets them)
    # Receives each run's curve as it grows, so a caller still has the epochs a pruned or
    # failed trial ran.
    curves: list[dict[str, list[float]]] = field(default_factory=list)
    checkpoint: Checkpoint | None = None  # continued from and written, where a trainer can


class Trainer(Protocol):
    """How configurations are trained: ``numpy``, ``keras`` (fit) and ``compiled`` keep it.

    Every trainer gives the same seeds, folds, executions, early stopping, pruning reports,
    failure on a non-finite loss and curves; the fast ones hand a model they cannot train to
    ``fit``.
    """

    def evaluate(self, jobs: Sequence[Job], data: TrainData, objective: str) -> list[Outcome]:
        """Each job's result on every fold x execution, or what ended it; one job ending does
        not stop the others. A job's checkpoint, where the trainer keeps them, is continued
        from and written as it trains (:mod:`search.trainers.checkpoint`)."""
        ...

    def retrain(
        self, build: Build, epochs: int, data: TrainData, seeds: Sequence[int]
    ) -> list[keras.Model | TrialFailedError]:
        """One configuration trained on the whole training split for ``epochs`` from each of
        ``seeds`` (an ensemble's members): each model, or the error of one that diverged."""
        ...


def mean_curve(curves: Sequence[dict[str, list[float]]], objective: str) -> dict[str, list[float]]:
    """Every key's curve averaged over the runs that have the objective, cut to the
    shortest of them: the curve a configuration's result is read from (and TensorBoard
    shows as the trial's run). Empty when no run reached an epoch."""
    runs = [curve for curve in curves if curve.get(objective)]
    if not runs:
        return {}
    length = min(len(curve[objective]) for curve in runs)
    keys = [key for key in runs[0] if all(len(curve.get(key, ())) >= length for curve in runs)]
    return {
        key: [float(v) for v in np.mean([curve[key][:length] for curve in runs], axis=0)]
        for key in keys
    }


def best_epoch(curve: dict[str, list[float]], objective: str) -> int | None:
    """The 0-based epoch where ``objective`` is best on ``curve`` (non-finite values never
    are), or None when it has no finite value."""
    values = np.asarray(curve.get(objective, ()), dtype=float)
    if not np.isfinite(values).any():
        return None
    values = np.where(np.isfinite(values), values, np.nan)
    pick = np.nanargmax if maximised(objective) else np.nanargmin
    return int(pick(values))


def read_result(
    curves: list[dict[str, list[float]]], objective: str, params: int, seconds: float
) -> TrialResult:
    """The best epoch of the validation curve averaged over runs (cut to the shortest)."""
    mean = {k: v for k, v in mean_curve(curves, objective).items() if k.startswith("val_")}
    pick = np.argmax if maximised(objective) else np.argmin
    best = int(pick(mean[objective]))
    return TrialResult(
        value=float(mean[objective][best]),
        metrics={key: float(values[best]) for key, values in mean.items()},
        epochs=max(len(curve[objective]) for curve in curves),
        best_epoch=best + 1,
        params=params,
        seconds=seconds,
        curves=curves,
    )


def fold_values(result: TrialResult, folds: int, objective: str) -> list[float] | None:
    """Each fold's value of ``objective`` at the configuration's best epoch, averaged over
    its executions: the values whose mean is ``result.value``, in fold order. None where
    the result holds no such folds (holdout, a lookup's single value).

    Every trainer orders its runs (execution, fold), fold fastest: run ``r`` is fold
    ``r % folds``.
    """
    curves, epoch = result.curves, result.best_epoch - 1
    if folds < 2 or not curves or len(curves) % folds:
        return None
    runs: list[list[float]] = [[] for _ in range(folds)]
    for run, curve in enumerate(curves):
        values = curve.get(objective, [])
        if len(values) <= epoch:
            return None
        runs[run % folds].append(float(values[epoch]))
    return [float(np.mean(values)) for values in runs]


def averaged(models: list[keras.Model]) -> keras.Model:
    """One model whose output is the mean of ``models``' outputs (probabilities for a
    classifier); a single model is returned as it is."""
    import keras  # here, not at the top: `import search` and its bad-input errors skip Keras

    if len(models) == 1:
        return models[0]
    for k, model in enumerate(models):
        model.name = f"member_{k}"  # nested models need distinct names to be saved
    inputs = keras.Input(models[0].inputs[0].shape[1:], name="features")
    outputs = keras.layers.Average(name="mean")([model(inputs) for model in models])
    return keras.Model(inputs, outputs, name="ensemble")


def weighted(models: list[keras.Model], weights: list[float]) -> keras.Model:
    """One model whose output is the sum of ``models``' outputs times ``weights`` (which sum
    to 1): an ensemble selection's weighted mean, built of Keras' own layers (``Rescaling``,
    ``Add``) so that plain ``keras.saving.load_model`` loads it. One model is returned as it
    is."""
    import keras  # here, not at the top: see averaged()

    if len(models) == 1:
        return models[0]
    for k, model in enumerate(models):
        model.name = f"member_{k}"  # nested models need distinct names to be saved
    inputs = keras.Input(models[0].inputs[0].shape[1:], name="features")
    terms = [
        keras.layers.Rescaling(float(weight), name=f"weight_{k}")(model(inputs))
        for k, (model, weight) in enumerate(zip(models, weights, strict=True))
    ]
    return keras.Model(inputs, keras.layers.Add(name="weighted_sum")(terms), name="ensemble")


def test_scores(model: keras.Model, task: Task) -> dict[str, float]:
    """The task's test metrics for a model trained on standardised features."""

    return score(task.spec.kind, task.y_test, predict(model, task.standardize(task.x_test)))


def predict(model: keras.Model, x: np.ndarray) -> np.ndarray:
    """``model``'s outputs for the rows ``x`` as a numpy array."""
    import keras  # here, not at the top: see averaged()

    # A direct call, not predict(): predict would trace a new function for every model.
    return np.asarray(keras.ops.convert_to_numpy(model(x, training=False)))


class Watch:
    """One run's curve, its non-finite check, pruning report and early stopping.

    Every trainer feeds it each epoch's logs. It never raises: a non-finite loss or a report
    that raised (a pruned trial) is kept in ``error``, and ``running`` turns false, so a
    trainer that runs several members together can end one and go on with the others.
    """

    def __init__(self, objective: str | None, patience: int, report: Report | None) -> None:
        self.objective = objective
        self.patience = patience
        self.report = report
        self.curve: dict[str, list[float]] = {}
        self.error: Exception | None = None
        self.running = True
        # Values are compared as losses: a maximised objective counts negated.
        self._sign = -1.0 if objective is not None and maximised(objective) else 1.0
        self._best = math.inf
        self._since_best = 0

    def end_epoch(self, epoch: int, logs: dict[str, float]) -> None:
        """Take epoch ``epoch``'s logs (0-based)."""
        if not self.running:
            return
        for key, value in logs.items():
            self.curve.setdefault(key, []).append(float(value))
        loss = float(logs.get("loss", math.nan))
        if not math.isfinite(loss):
            self._stop(TrialFailedError(f"loss became {loss} at epoch {epoch + 1}"))
            return
        if self.objective is None:
            return
        value = float(logs[self.objective])
        if not math.isfinite(value):
            self._stop(TrialFailedError(f"{self.objective} became {value} at epoch {epoch + 1}"))
            return
        if self.report is not None:
            try:
                self.report(epoch + 1, value)
            except Exception as error:  # noqa: BLE001 - a pruned run: the caller decides
                self._stop(error)
                return
        if self._sign * value < self._best:
            self._best, self._since_best = self._sign * value, 0
        else:
            self._since_best += 1
            if self.patience and self._since_best >= self.patience:
                self.running = False

    def replay(self, curve: dict[str, list[float]]) -> None:
        """Take the epochs a checkpoint kept (``curve``) as if they ran now, so early
        stopping counts them; the report is not called again for them."""
        report, self.report = self.report, None
        length = min((len(values) for values in curve.values()), default=0)
        for epoch in range(length):
            self.end_epoch(epoch, {key: values[epoch] for key, values in curve.items()})
        self.report = report

    def _stop(self, error: Exception) -> None:
        self.error = error
        self.running = False


def fold_rows(
    n: int, cv: int, validation_split: float, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Holdout (cv == 1) or K-fold row indices, shuffled once with the study's seed."""
    rows = np.random.default_rng(seed).permutation(n)
    if cv == 1:
        n_val = max(1, round(n * validation_split))
        return [(np.sort(rows[n_val:]), np.sort(rows[:n_val]))]
    parts = np.array_split(rows, cv)
    return [
        (np.sort(np.concatenate(parts[:k] + parts[k + 1 :])), np.sort(parts[k])) for k in range(cv)
    ]


def _pipeline(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int) -> dict[str, Any]:
    """``fit`` arguments: a cached, reshuffled, batched tf.data pipeline on TensorFlow.

    On the TensorFlow backend numpy input makes ``fit`` rebuild its data adapter on every
    call and epoch; a cached dataset is several times faster for small tables. Other backends
    take the arrays as they are.
    """
    import keras  # here, not at the top: see averaged()

    if keras.backend.backend() != "tensorflow":
        return {"x": x, "y": y, "batch_size": batch_size, "shuffle": True}
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((x, y)).cache()
    dataset = dataset.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    # shuffle=False: the dataset reshuffles itself each epoch; fit's flag would only warn.
    return {"x": dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE), "shuffle": False}


def _validation(x: np.ndarray, y: np.ndarray) -> Any:
    """The validation rows as one batch (cached on TensorFlow, arrays elsewhere)."""
    import keras  # here, not at the top: see averaged()

    if keras.backend.backend() != "tensorflow":
        return (x, y)
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices((x, y)).batch(len(x)).cache()
