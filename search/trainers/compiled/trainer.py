"""The ``compiled`` trainer: groups of one signature trained by one compiled program, a run
(fold x execution) at a time, and the caches of programs and fold arrays it keeps."""

from __future__ import annotations

import logging
import time
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from functools import partial

import keras

from search.errors import TrialFailedError
from search.trainers.base import TrainData, run_seed, set_seed
from search.trainers.checkpoint import Saved, restore_curves
from search.trainers.compiled import checks
from search.trainers.compiled.program import Arrays, Program, Resume, Trained
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

    # It continues a member from its checkpoint, written between chunks when due.
    resumes = True

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
            _check_saved(member)
            by_epochs.setdefault(member.epochs, []).append(member)
        ended: dict[int, Exception] = {}
        clock = _Clock(len(members))
        for same in by_epochs.values():
            ended |= self._train_runs(same, data, objective, clock)
        return [ended.get(member.index) for member in members]

    def _train_runs(
        self, members: list[Member], data: TrainData, objective: str, clock: _Clock
    ) -> dict[int, Exception]:
        """Every run of the members, run after run: the first run trains their built
        models, the others models rebuilt from the run's seed. A member continued from its
        checkpoint keeps the runs it had finished and continues the one it was training;
        members continued from one epoch share a program call. What ended each one."""
        runs = [(e, f) for e in range(data.settings.executions) for f in range(len(data.folds))]
        ended: dict[int, Exception] = {}
        for run in range(len(runs)):
            by_start: dict[int, list[Member]] = {}
            for member in members:
                start = _run_start(member, run)
                if start is None:  # finished before the interruption: its curve kept
                    if member.index not in ended:
                        assert member.saved is not None
                        member.curves.extend(restore_curves(member.saved, run + 1)[run:])
                    continue
                by_start.setdefault(start, []).append(member)
            for start, same in by_start.items():
                self._train_run(same, data, objective, (run, *runs[run]), start, ended, clock)
            if len(ended) == len(members):
                break
        return ended

    def _train_run(
        self,
        members: list[Member],
        data: TrainData,
        objective: str,
        run: tuple[int, int, int],
        start: int,
        ended: dict[int, Exception],
        clock: _Clock,
    ) -> None:
        """One run (its index, execution and fold) of ``members``, from epoch ``start``
        (their saved state) or anew; its curves appended, what ended a member in ``ended``,
        their checkpoints written between chunks when due."""
        index, execution, fold = run
        seeds = [run_seed(member.seed, execution, fold) for member in members]
        if index == 0 or start:
            # A continued run needs only the member's hyperparameters, not new weights.
            models = [(member.model, member.batch_size) for member in members]
        else:
            models = []
            for member, seed in zip(members, seeds, strict=True):
                set_seed(seed)
                models.append(member.build())
        resume = None
        if start:
            saved = [member.saved for member in members if member.saved is not None]
            curves = [kept.curves[index] for kept in saved]
            resume = Resume(start, curves, [kept.running[index] for kept in saved])
        epochs = members[0].epochs or data.settings.epochs
        trained = program_for(*models[0]).train(
            [model for model, _ in models],
            _fold_arrays(data, fold),
            seeds,
            epochs,
            data.settings.patience,
            objective,
            [member.report if index == 0 else None for member in members],
            self.chunk,
            resume,
            partial(_save, members, (index, epochs), ended, clock),
        )
        for member, curve, error in zip(members, trained.curves, trained.errors, strict=True):
            if member.index in ended:
                continue  # still trained (the group keeps its size), not scored
            member.curves.append(curve)
            if error is not None:
                ended[member.index] = error

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


class _Clock:
    """A group's training seconds so far, over its size (what a checkpoint records)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.began = time.perf_counter()

    def seconds(self) -> float:
        return (time.perf_counter() - self.began) / self.size


def _check_saved(member: Member) -> None:
    """A member's checkpoint whose states no longer fit its program (the space builds
    another model now) is dropped, with a note: the trial starts over."""
    saved = member.saved
    if saved is None:
        return
    program = program_for(member.model, member.batch_size)
    if not all(program.fits(state) for state in saved.running.values()):
        logging.getLogger("search").info(
            "a checkpoint does not fit the model the space builds now: its trial starts over"
        )
        member.saved = None


def _run_start(member: Member, run: int) -> int | None:
    """The epoch a member's run continues from (0: a new run), or None for a run its
    checkpoint holds as finished."""
    saved = member.saved
    if saved is None or run >= len(saved.curves):
        return 0
    state = saved.running.get(run)
    if state is None:
        return None
    return len(next(iter(saved.curves[run].values()), []))


def _save(
    members: Sequence[Member],
    run: tuple[int, int],
    ended: dict[int, Exception],
    clock: _Clock,
    trained: Trained,
    epochs: int,
) -> None:
    """After a chunk: write the checkpoint of each member that keeps one and is due, its
    finished runs' curves and this run's so far, and, while the run goes on (short of its
    ``epochs``), its state. ``run``: the run's index and epochs."""
    index, limit = run
    for k, member in enumerate(members):
        checkpoint = member.checkpoint
        if checkpoint is None or member.index in ended or trained.errors[k] is not None:
            continue
        if not checkpoint.tick(epochs):
            continue
        curve = trained.curves[k]
        goes_on = trained.running[k] and trained.done < limit
        running = {index: trained.flat(k)} if goes_on else {}
        before = member.saved.seconds if member.saved is not None else 0.0
        checkpoint.save(
            Saved(
                [*member.curves, curve],
                running,
                before + clock.seconds(),
                member.model.count_params(),
            )
        )


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
