"""The population driver both fast trainers (``numpy`` and ``compiled``) share.

A trainer that trains several models at once keeps :class:`PopulationTrainer`'s small
protocol: why it cannot train a model (:meth:`~PopulationTrainer.unsupported`), which models
train together (:meth:`~PopulationTrainer.group_key`), and how one such group trains
(:meth:`~PopulationTrainer.train_group`, :meth:`~PopulationTrainer.retrain_group`). The
driver does the rest, once for both: it seeds and builds each configuration, hands a model
the trainer cannot train to Keras ``fit``, groups the others, and reads each member's result
off its curves, its group's seconds divided over the group.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from search.errors import TrialFailedError
from search.trainers.base import (
    Build,
    Job,
    Outcome,
    Report,
    TrainData,
    read_result,
    set_seed,
)
from search.trainers.checkpoint import Checkpoint, Saved
from search.trainers.keras_fit import evaluate_each, retrain_each

if TYPE_CHECKING:
    import keras


@dataclass
class Member:
    """One configuration of a group: its first model (built from its own seed) and what its
    training needs."""

    index: int  # its position among the configurations the caller passed
    build: Build
    model: keras.Model
    batch_size: int
    seed: int
    report: Report | None = None  # the pruner's callback, which sees its first run
    epochs: int | None = None  # its override of the study's epochs
    # Each run's curve, appended as the run starts and filled in place as it trains.
    curves: list[dict[str, list[float]]] = field(default_factory=list)
    built: float = 0.0  # seconds its model took to build
    checkpoint: Checkpoint | None = None  # where a trainer that resumes writes its own
    saved: Saved | None = None  # the checkpoint it continues from

    @property
    def start(self) -> int:
        """The epoch its runs continue from (0: a new trial)."""
        if self.saved is None:
            return 0
        return max((len(next(iter(c.values()), [])) for c in self.saved.curves), default=0)


class PopulationTrainer(abc.ABC):
    """A trainer of groups of configurations; :meth:`evaluate` and :meth:`retrain` keep the
    :class:`~search.trainers.base.Trainer` contract for every such trainer."""

    # Whether its train_group continues members from their checkpoints (``Member.saved``)
    # and writes them; a trainer that does not is given none, and its trials start over.
    resumes = False

    @abc.abstractmethod
    def unsupported(self, model: keras.Model, objective: str | None) -> str | None:
        """Why this trainer cannot train ``model`` as ``fit`` would, towards ``objective``
        (None: for a retraining); None when it can."""

    @abc.abstractmethod
    def group_key(self, model: keras.Model, batch_size: int) -> Hashable:
        """What decides which configurations (of models it can train) train together."""

    @abc.abstractmethod
    def train_group(
        self, members: Sequence[Member], data: TrainData, objective: str
    ) -> list[Exception | None]:
        """Train members of one key together on every fold x execution, each run's curve
        appended to its member's ``curves`` as it starts; what ended each member (a
        non-finite loss, its report's pruning), or None for one that trained to its end."""

    @abc.abstractmethod
    def retrain_group(
        self, members: Sequence[Member], epochs: int, data: TrainData
    ) -> list[keras.Model | TrialFailedError]:
        """Members of one key trained on the whole training split for ``epochs``: each
        member's model trained in place, or the error of one that diverged."""

    def evaluate(self, jobs: Sequence[Job], data: TrainData, objective: str) -> list[Outcome]:
        """Train many configurations; those of one :meth:`group_key` train together.

        Each outcome is that job's :class:`~search.trainers.base.TrialResult`, or the
        exception that ended it; one member ending does not stop the others. ``seconds`` of a
        configuration is its group's wall time, model builds included, over the group's size.
        Models this trainer cannot train are trained one by one with Keras ``fit``. A
        configuration continued from its checkpoint trains with those continued from the
        same epoch, not with new ones.
        """
        outcomes: dict[int, Outcome] = {}
        groups: dict[Hashable, list[Member]] = {}
        for index, job in enumerate(jobs):
            start = time.perf_counter()
            set_seed(job.seed)
            try:
                model, batch_size = job.build()
            except Exception as error:  # noqa: BLE001 - the user's build: this trial's failure
                outcomes[index] = error
                continue
            if self.unsupported(model, objective) is not None:
                outcomes[index] = evaluate_each([job], data, objective)[0]
                continue
            member = Member(index, job.build, model, batch_size, job.seed, job.report, job.epochs)
            member.curves, member.built = job.curves, time.perf_counter() - start
            if self.resumes and job.checkpoint is not None:
                member.checkpoint, member.saved = job.checkpoint, job.checkpoint.load()
            key = (self.group_key(model, batch_size), member.start)
            groups.setdefault(key, []).append(member)
        for members in groups.values():
            outcomes |= self._timed(members, data, objective)
        return [outcomes[index] for index in range(len(jobs))]

    def _timed(self, members: list[Member], data: TrainData, objective: str) -> dict[int, Outcome]:
        """One group trained, each member's outcome read off its curves."""
        start = time.perf_counter() - sum(member.built for member in members)
        ended = self.train_group(members, data, objective)
        seconds = (time.perf_counter() - start) / len(members)
        outcomes: dict[int, Outcome] = {}
        for member, error in zip(members, ended, strict=True):
            if error is not None:
                outcomes[member.index] = error
                continue
            earlier = member.saved.seconds if member.saved is not None else 0.0
            params = member.model.count_params()
            result = read_result(member.curves, objective, params, seconds + earlier)
            result.earlier = earlier
            outcomes[member.index] = result
        return outcomes

    def retrain(
        self, build: Build, epochs: int, data: TrainData, seeds: Sequence[int]
    ) -> list[keras.Model | TrialFailedError]:
        """One configuration retrained from each of ``seeds`` (an ensemble's members), as one
        group: each a model trained in place, or the error of one that diverged. A model this
        trainer cannot train is retrained by Keras ``fit``, seed by seed."""
        members = []
        for index, seed in enumerate(seeds):
            set_seed(seed)
            model, batch_size = build()
            if self.unsupported(model, None) is not None:
                return retrain_each(build, epochs, data, seeds)
            members.append(Member(index, build, model, batch_size, seed, epochs=epochs))
        keys = {self.group_key(member.model, member.batch_size) for member in members}
        # A build that is not a function of its hyperparameters alone: each seed alone.
        groups = [members] if len(keys) == 1 else [[member] for member in members]
        return [model for group in groups for model in self.retrain_group(group, epochs, data)]
