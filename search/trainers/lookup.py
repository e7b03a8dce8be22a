"""The lookup trainer: a tabular benchmark's trial trains nothing, it reads the table.

A configuration (what a tabular space's ``build(hp)`` returns, :mod:`search.tabular_space`)
is looked up in the task's table (:mod:`search.tasks.tabular`) for the recorded run its
trial's seed draws. Its result is that run's validation value, charged the training seconds
the run took (``seconds``: the study's simulated clock), with the real seconds of the lookup
beside them (``wall_seconds``). Its curve is one epoch: the tables keep final values only.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from search.errors import SearchError, TrialFailedError
from search.tasks.tabular import TabularTask
from search.trainers.base import Build, Job, Outcome, TrainData, TrialResult

if TYPE_CHECKING:
    import keras


class LookupTrainer:
    """The :class:`search.trainers.Trainer` of the tabular tasks (``--trainer lookup``)."""

    def evaluate(self, jobs: Sequence[Job], data: TrainData, objective: str) -> list[Outcome]:
        """Each configuration's table value for the run its seed draws (a lookup has no
        epochs to continue from: a job's checkpoint is not read)."""
        task = _tabular(data)
        outcomes: list[Outcome] = []
        for job in jobs:
            start = time.perf_counter()
            configuration: Any = job.build()[0]  # a tabular space builds a configuration
            found = task.table.lookup(configuration, job.seed)  # type: ignore[union-attr]
            curve = {objective: [found.value]}
            job.curves.append(curve)
            outcomes.append(
                TrialResult(
                    value=found.value,
                    metrics={objective: found.value},
                    epochs=1,
                    best_epoch=1,
                    params=0,
                    seconds=found.seconds,
                    curves=[curve],
                    wall_seconds=time.perf_counter() - start,
                )
            )
        return outcomes

    def retrain(
        self, build: Build, epochs: int, data: TrainData, seeds: Sequence[int]
    ) -> list[keras.Model | TrialFailedError]:
        """A table holds no model to retrain: the study scores a tabular task by lookup
        (:func:`search.study.scoring.score_top`) and never calls this."""
        raise SearchError("a tabular benchmark's configuration is looked up, not retrained")


def _tabular(data: TrainData) -> TabularTask:
    if not isinstance(data.task, TabularTask) or data.task.table is None:
        raise SearchError(
            f"--trainer lookup needs a tabular benchmark task; {data.task.spec.name!r} is not one"
        )
    return data.task
