"""The ``numpy`` trainer (the default): groups of one structure trained together by the
compiled loop, every run of every configuration a member of one :class:`Lockstep`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from search.errors import TrialFailedError, UnsupportedModelError
from search.trainers.base import TrainData, Watch, run_seed
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

    def train_group(
        self, members: Sequence[Member], data: TrainData, objective: str
    ) -> list[Exception | None]:
        """Every run of every member is a row: the first run starts from the member's built
        model, the others from weights drawn with the run's seed (building a Keras model
        takes longer than training it here)."""
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
        lockstep = Lockstep(
            nets[0],
            initial,
            data.x,
            data.y,
            [data.folds[runs[run][1]] for _, run in rows],
            members[0].batch_size,
            _seed(members),
            [nets[k] for k, _ in rows],
        )
        watches = [
            Watch(objective, settings.patience, members[k].report if run == 0 else None)
            for k, run in rows
        ]
        for (k, _), watch in zip(rows, watches, strict=True):
            members[k].curves.append(watch.curve)
        ended: dict[int, Exception] = {}
        limit = [members[k].epochs or settings.epochs for k, _ in rows]
        with one_blas_thread():
            for epoch, logs in enumerate(lockstep.epochs(max(limit))):
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


def _seed(members: Sequence[Member]) -> int | list[int]:
    """What the group's generator (shuffles, dropout) is seeded with: one configuration
    alone draws from its own seed, a group from all of theirs."""
    return members[0].seed if len(members) == 1 else [member.seed for member in members]
