"""The ``compiled`` trainer: groups of one signature trained by one compiled program, a run
(fold x execution) at a time, and the caches of programs and fold arrays it keeps."""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Sequence

import keras

from search.errors import TrialFailedError
from search.trainers.base import TrainData, run_seed, set_seed
from search.trainers.compiled import checks
from search.trainers.compiled.program import Arrays, Program
from search.trainers.compiled.signature import signature
from search.trainers.population import Member, PopulationTrainer

CHUNK = 10
"""Epochs per jitted call: the pruner, NaN checks and early stopping see results this often."""

_CACHE_SIZE = 32
_PROGRAMS: OrderedDict[str, Program] = OrderedDict()
_FOLDS: weakref.WeakKeyDictionary[TrainData, dict[int, Arrays]] = weakref.WeakKeyDictionary()


class CompiledTrainer(PopulationTrainer):
    """Trains each group (models of one signature) in one vmapped program; ``chunk`` epochs
    run in one jitted call."""

    def __init__(self, chunk: int = CHUNK) -> None:
        self.chunk = chunk

    def unsupported(self, model: keras.Model, objective: str | None) -> str | None:
        return checks.unsupported(model, objective)

    def group_key(self, model: keras.Model, batch_size: int) -> str:
        return signature(model, batch_size)

    def train_group(
        self, members: Sequence[Member], data: TrainData, objective: str
    ) -> list[Exception | None]:
        """Members with one epochs override train together: a program trains its members for
        one number of epochs, so those with other overrides (Hyperband's rounds) train
        apart."""
        by_epochs: dict[int | None, list[Member]] = {}
        for member in members:
            by_epochs.setdefault(member.epochs, []).append(member)
        ended: dict[int, Exception] = {}
        for same in by_epochs.values():
            ended |= self._train_runs(same, data, objective)
        return [ended.get(member.index) for member in members]

    def _train_runs(
        self, members: list[Member], data: TrainData, objective: str
    ) -> dict[int, Exception]:
        """Every run of the members, one program call per run: the first run trains their
        built models, the others models rebuilt from the run's seed. What ended each one."""
        settings = data.settings
        runs = [(e, f) for e in range(settings.executions) for f in range(len(data.folds))]
        ended: dict[int, Exception] = {}
        for run, (execution, fold) in enumerate(runs):
            if run == 0:
                models = [(member.model, member.batch_size) for member in members]
            else:
                models = []
                for member in members:
                    set_seed(run_seed(member.seed, execution, fold))
                    models.append(member.build())
            trained = program_for(*models[0]).train(
                [model for model, _ in models],
                _fold_arrays(data, fold),
                [run_seed(member.seed, execution, fold) for member in members],
                members[0].epochs or settings.epochs,
                settings.patience,
                objective,
                [member.report if run == 0 else None for member in members],
                self.chunk,
            )
            for member, curve, error in zip(members, trained.curves, trained.errors, strict=True):
                if member.index in ended:
                    continue  # still trained (the group keeps its size), not scored
                member.curves.append(curve)
                if error is not None:
                    ended[member.index] = error
            if len(ended) == len(members):
                break
        return ended

    def retrain_group(
        self, members: Sequence[Member], epochs: int, data: TrainData
    ) -> list[keras.Model | TrialFailedError]:
        """Each member alone on the whole training split, its final weights written into
        its model: one at a time, as single programs (a vmapped one need not round the same,
        and an ensemble's members would then change with its size)."""
        arrays = Arrays(data.x, data.y, data.x[:0], data.y[:0])
        models: list[keras.Model | TrialFailedError] = []
        for member in members:
            model = member.model
            trained = program_for(model, member.batch_size).train(
                [model], arrays, [member.seed], epochs, 0, None, [None], self.chunk
            )
            error = trained.errors[0]
            if isinstance(error, TrialFailedError):
                models.append(error)
                continue
            if error is not None:
                raise error
            trainable, non_trainable = trained.weights(0)
            for variable, value in zip(model.trainable_variables, trainable, strict=True):
                variable.assign(value)
            for variable, value in zip(model.non_trainable_variables, non_trainable, strict=True):
                variable.assign(value)
            models.append(model)
        return models


def program_for(model: keras.Model, batch_size: int) -> Program:
    """The compiled program for ``model``'s signature; the first such model is its template.
    The last :data:`_CACHE_SIZE` programs are kept."""
    key = signature(model, batch_size)
    if key in _PROGRAMS:
        _PROGRAMS.move_to_end(key)
        return _PROGRAMS[key]
    program = Program(model, batch_size)
    _PROGRAMS[key] = program
    if len(_PROGRAMS) > _CACHE_SIZE:
        _PROGRAMS.popitem(last=False)
    return program


def _fold_arrays(data: TrainData, fold: int) -> Arrays:
    """A fold's rows, sliced once per study (like TrainData's cached pipelines)."""
    per_fold = _FOLDS.setdefault(data, {})
    if fold not in per_fold:
        train_rows, val_rows = data.folds[fold]
        per_fold[fold] = Arrays(
            data.x[train_rows], data.y[train_rows], data.x[val_rows], data.y[val_rows]
        )
    return per_fold[fold]
