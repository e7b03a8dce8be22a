"""Ensemble selection across trials (Caruana et al., 2004), on fresh validation folds.

After the search, the :data:`CANDIDATES` best trials by validation are each trained again,
for their best epoch count, on every fold of a new K-fold partition of the training split
(another shuffle and other seeds than the search's; K is the study's ``cv``, or
:data:`HOLDOUT_FOLDS` where the search used one holdout), and predict that fold's rows. So
every training row gets one out-of-fold prediction per candidate, from models trained the
way the final ones are (a fixed epoch count, no early stopping on the rows they predict;
the final ones train on all the rows, for that count scaled as
:func:`search.study.scoring.retrain_epochs` says).

Two things follow from those predictions. The selection resists luck: among hundreds of
trials, the best validation value is partly the noise of one partition and one seed, and
the fresh folds re-measure the candidates with new noise before anything is chosen. Then
greedy forward selection with replacement (:func:`greedy_selection`) adds, ``size`` times,
the candidate whose addition makes the ensemble's mean prediction best on the study's
objective; a candidate's weight is the share of the picks it got. With ``size`` 1 this is
the candidate best on the fresh folds alone.

What is kept: the candidates' out-of-fold predictions, in memory only while the study is
scored (``CANDIDATES`` x rows x outputs floats: 10 x 404 x 1 for Boston, 32 KB), and in
``study.json`` the members, their weights and the ensemble's validation and test scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from search.engines.base import Engine
from search.engines.records import TrialRecord
from search.errors import TrialFailedError
from search.space import Space, builder
from search.tasks.scoring import Kind, maximised, score
from search.trainers import TrainData, Trainer, fold_rows, predict, run_seed

CANDIDATES = 10  # the best trials by validation that the fresh folds re-measure
HOLDOUT_FOLDS = 5  # the fresh folds of a study that validated on one holdout
PARTITION_SEED = 104_729  # added to the study's seed: the fresh folds' shuffle


@dataclass(frozen=True)
class Selection:
    """The selected ensemble: its members (trial numbers) and weights, the picks in order,
    its objective on the out-of-fold predictions, and each candidate's own value there."""

    members: tuple[int, ...]
    weights: tuple[float, ...]
    picks: tuple[int, ...]
    value: float
    candidates: dict[int, float]
    folds: int

    def described(self, test: dict[str, float] | None) -> dict[str, Any]:
        """The form ``study.json`` keeps, with the ensemble's test metrics."""
        return {
            "size": len(self.picks),
            "folds": self.folds,
            "members": [
                {"trial": trial, "weight": round(weight, 6)}
                for trial, weight in zip(self.members, self.weights, strict=True)
            ],
            "picks": list(self.picks),
            "validation": self.value,
            "candidates": {str(trial): value for trial, value in self.candidates.items()},
            "test": test,
        }


def greedy_selection(
    predictions: np.ndarray, truth: np.ndarray, kind: Kind, metric: str, size: int
) -> list[int]:
    """Caruana's forward selection with replacement: ``size`` picks, each the candidate
    (an index of ``predictions``, one array of predictions per candidate) whose addition
    gives the mean prediction the best ``metric`` on ``truth``; ties go to the earlier
    candidate (the better one by the search's validation)."""
    sign = -1.0 if maximised(metric) else 1.0
    total = np.zeros_like(predictions[0], dtype=np.float64)
    picks: list[int] = []
    for step in range(1, size + 1):
        values = [
            sign * score(kind, truth, (total + candidate) / step)[metric]
            for candidate in predictions
        ]
        best = int(np.argmin(values))
        picks.append(best)
        total += predictions[best]
    return picks


def weights_of(picks: Sequence[int]) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """The distinct picks in the order first picked, and each one's share of the picks."""
    members = tuple(dict.fromkeys(picks))
    return members, tuple(list(picks).count(member) / len(picks) for member in members)


def select(
    trainer: Trainer,
    space: Space,
    engine: Engine,
    data: TrainData,
    ranked: list[TrialRecord],
    objective: str,
    size: int,
) -> Selection | None:
    """The ensemble of ``size`` picks among the first :data:`CANDIDATES` of ``ranked`` (best
    first), chosen on their fresh out-of-fold predictions; None when none has them all."""
    settings = data.settings
    folds = settings.cv if settings.cv > 1 else HOLDOUT_FOLDS
    partition = fold_rows(
        len(data.x), folds, settings.validation_split, settings.seed + PARTITION_SEED
    )
    found = [
        (record, out_of_fold(trainer, space, engine, data, record, partition))
        for record in ranked[:CANDIDATES]
    ]
    # A candidate that diverged on a fold has no prediction for its rows: it is left out.
    kept = [(record, p) for record, p in found if p is not None and np.isfinite(p).all()]
    if not kept:
        return None
    predictions = np.stack([p for _, p in kept])
    kind, metric = data.task.spec.kind, objective.removeprefix("val_")
    truth = data.task.y_train
    picks = greedy_selection(predictions, truth, kind, metric, size)
    members, weights = weights_of(picks)
    mean = np.tensordot(np.asarray(weights), predictions[list(members)], axes=1)
    return Selection(
        members=tuple(kept[m][0].number for m in members),
        weights=weights,
        picks=tuple(kept[p][0].number for p in picks),
        value=score(kind, truth, mean)[metric],
        candidates={r.number: score(kind, truth, p)[metric] for r, p in kept},
        folds=folds,
    )


def out_of_fold(
    trainer: Trainer,
    space: Space,
    engine: Engine,
    data: TrainData,
    record: TrialRecord,
    partition: list[tuple[np.ndarray, np.ndarray]],
) -> np.ndarray | None:
    """One trial's configuration trained on each fold's training rows for its best epoch
    count and predicting the fold's other rows: a prediction for every training row, or
    None if a training diverged. The seeds are the configuration's next execution's (the
    search's runs never used them)."""
    build = builder(space, engine.hyperparameters(record))
    seed, executions = record.seed or 0, data.settings.executions
    predictions: np.ndarray | None = None
    for fold, (train_rows, val_rows) in enumerate(partition):
        seeds = [run_seed(seed, executions, fold)]
        model = trainer.retrain(build, record.best_epoch or 1, data.subset(train_rows), seeds)[0]
        if isinstance(model, TrialFailedError):
            return None
        predicted = predict(model, data.x[val_rows])
        if predictions is None:
            predictions = np.empty((len(data.x), *predicted.shape[1:]), dtype=np.float64)
        predictions[val_rows] = predicted
    return predictions
