"""The ``numpy`` trainer (the default): groups of one structure trained together by the
compiled loop, every run of every configuration a member of one :class:`Lockstep`."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from search.errors import TrialFailedError, UnsupportedModelError
from search.trainers.base import TrainData, Watch, run_seed
from search.trainers.checkpoint import Saved
from search.trainers.checks import check_objective
from search.trainers.numpy.members import Lockstep
from search.trainers.numpy.net import Net
from search.trainers.numpy.threads import one_blas_thread
from search.trainers.population import Member, PopulationTrainer


class NumpyTrainer(PopulationTrainer):
    """Trains Dense/Dropout chains as ``fit`` would, without ``fit``'s overhead.

    Configurations share a group when their models differ only in what each member keeps in
    its own row: learning rate, dropout rates, L1/L2 penalties, clipping and initial weights
    (:meth:`Net.key` says what must be equal).
    """

    def unsupported(self, model: keras.Model, objective: str | None) -> str | None:
        try:
            check_objective(objective, Net(model).metric_names)
        except UnsupportedModelError as error:
            return str(error)
        return None

    def group_key(self, model: keras.Model, batch_size: int) -> tuple[Any, ...]:
        return Net(model).key(batch_size)

    resumes = True

    def train_group(
        self, members: Sequence[Member], data: TrainData, objective: str
    ) -> list[Exception | None]:
        """Every run of every member is a row: the first run starts from the member's built
        model, the others from weights drawn with the run's seed (building a Keras model
        takes longer than training it here). Members continued from a checkpoint (all of
        one group from the same epoch: see ``Member.start``) start from its rows instead."""
        settings = data.settings
        nets = [Net(member.model) for member in members]
        runs = [(e, f) for e in range(settings.executions) for f in range(len(data.folds))]
        rows = [(k, run) for k in range(len(members)) for run in range(len(runs))]
        initial = [
            nets[k].weights(members[k].model)
            if run == 0
            else nets[k].drawn(run_seed(members[k].seed, *runs[run]))
            for k, run in rows
        ]
        start = members[0].start
        lockstep = Lockstep(
            nets[0],
            initial,
            data.x,
            data.y,
            [data.folds[runs[run][1]] for _, run in rows],
            members[0].batch_size,
            # Continued draws come from a generator of their own (the bits of an
            # uninterrupted run are not reproduced).
            _seed(members) if not start else [*np.atleast_1d(_seed(members)), start],
            [nets[k] for k, _ in rows],
        )
        lockstep.snapshots = any(member.checkpoint is not None for member in members)
        watches = [
            Watch(objective, settings.patience, members[k].report if run == 0 else None)
            for k, run in rows
        ]
        if start:
            _restore(lockstep, members, rows, watches)
        for (k, _), watch in zip(rows, watches, strict=True):
            members[k].curves.append(watch.curve)
        ended: dict[int, Exception] = {}
        limit = [members[k].epochs or settings.epochs for k, _ in rows]
        began = time.perf_counter()
        with one_blas_thread():
            for epoch, logs in enumerate(lockstep.epochs(max(limit) - start), start=start):
                for row, values in zip(lockstep.alive, logs, strict=True):
                    logged = dict(zip(lockstep.net.log_names, map(float, values), strict=True))
                    watches[row].end_epoch(epoch, logged)
                    if epoch + 1 >= limit[row]:
                        watches[row].running = False
                # Every run's epoch is recorded first: an ended trial keeps its curves for
                # TensorBoard.
                for row in lockstep.alive:
                    error = watches[row].error
                    if error is not None:
                        ended.setdefault(rows[row][0], error)
                seconds = (time.perf_counter() - began) / len(members)
                _save(lockstep, members, rows, watches, ended, seconds)
                lockstep.keep(
                    [r for r in lockstep.alive if watches[r].running and rows[r][0] not in ended]
                )
        return [ended.get(k) for k in range(len(members))]

    def retrain_group(
        self, members: Sequence[Member], epochs: int, data: TrainData
    ) -> list[keras.Model | TrialFailedError]:
        """Each member a row, on every row of the training split."""
        nets = [Net(member.model) for member in members]
        everything = (np.arange(len(data.x)), np.arange(0))
        lockstep = Lockstep(
            nets[0],
            [net.weights(member.model) for net, member in zip(nets, members, strict=True)],
            data.x,
            data.y,
            [everything] * len(members),
            members[0].batch_size,
            _seed(members),
            nets,
        )
        watches = [Watch(None, 0, None) for _ in members]
        with one_blas_thread():
            for epoch, logs in enumerate(lockstep.epochs(epochs)):
                for row, values in zip(lockstep.alive, logs, strict=True):
                    logged = dict(zip(nets[0].log_names, map(float, values), strict=True))
                    watches[row].end_epoch(epoch, logged)
                lockstep.keep([row for row in lockstep.alive if watches[row].running])
        for position, row in enumerate(lockstep.alive):
            nets[row].assign(members[row].model, [p[position] for p in lockstep.params])
        return [watch.error or member.model for watch, member in zip(watches, members, strict=True)]


def _restore(
    lockstep: Lockstep,
    members: Sequence[Member],
    rows: Sequence[tuple[int, int]],
    watches: Sequence[Watch],
) -> None:
    """Each row of a continued member as its checkpoint left it: its curve replayed into
    its watch (early stopping counts it), and, for a run that was still going, its
    weights, optimizer slots and step; the other rows stop."""
    for row, (k, run) in enumerate(rows):
        saved = members[k].saved
        assert saved is not None, "a group of start > 0 holds continued members only"
        if run < len(saved.curves):
            watches[row].replay(saved.curves[run])
        state = saved.running.get(run)
        if state is None or state[0].shape != lockstep.flat[row].shape:
            watches[row].running = False
            continue
        lockstep.flat[row] = state[0]
        lockstep.slots[:, row] = state[1]
        lockstep.step[row] = state[2]
    lockstep.keep([row for row in lockstep.alive if watches[row].running])


def _save(
    lockstep: Lockstep,
    members: Sequence[Member],
    rows: Sequence[tuple[int, int]],
    watches: Sequence[Watch],
    ended: dict[int, Exception],
    seconds: float,
) -> None:
    """Write the checkpoint of each member that keeps one and is due: every run's curve,
    and the weights, optimizer slots and step of its runs still going."""
    flat, slots, step = lockstep.snapshot()
    for k, member in enumerate(members):
        if member.checkpoint is None or k in ended or not member.checkpoint.tick():
            continue
        running = {}
        for position, row in enumerate(lockstep.alive):
            owner, run = rows[row]
            if owner == k and watches[row].running:
                running[run] = [flat[position], slots[:, position], np.asarray(step[position])]
        before = member.saved.seconds if member.saved is not None else 0.0
        member.checkpoint.save(
            Saved(member.curves, running, before + seconds, member.model.count_params())
        )


def _seed(members: Sequence[Member]) -> int | list[int]:
    """What the group's generator (shuffles, dropout) is seeded with: one configuration
    alone draws from its own seed, a group from all of theirs."""
    return members[0].seed if len(members) == 1 else [member.seed for member in members]
