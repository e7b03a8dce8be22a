"""The population driver both fast trainers share (search/trainers/population.py): which
configurations it groups, what it hands to ``fit``, and how it reads each outcome. A trainer
that trains nothing itself stands in for numpy and compiled, whose own training is tested in
``test_population.py``, ``test_trainers.py`` and ``test_compiled.py``."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import keras
import pytest
from trainer_cases import data_for, small_build

from search.errors import TrialFailedError
from search.tasks import load_task
from search.trainers import Job, TrainData, TrialResult
from search.trainers.population import Member, PopulationTrainer

REFUSED = 8  # the hidden width the recording trainer cannot train
# What the driver refuses goes to fit, which Keras' numpy backend lacks.
USES_FIT = pytest.mark.backend("tensorflow", "jax", why="the refused configurations go to fit")


class Recording(PopulationTrainer):
    """Groups by hidden width and batch size; each member's one run gets a curve of its own
    (val_mse 2 + index, then 1 + index), and a seed of 13 ends its member."""

    def __init__(self) -> None:
        self.groups: list[list[int]] = []

    def unsupported(self, model: keras.Model, objective: str | None) -> str | None:
        return "too narrow" if model.layers[0].units == REFUSED else None

    def group_key(self, model: keras.Model, batch_size: int) -> Hashable:
        return (model.layers[0].units, batch_size)

    def train_group(
        self, members: Sequence[Member], data: TrainData, objective: str
    ) -> list[Exception | None]:
        self.groups.append([member.index for member in members])
        for member in members:
            values = [2.0 + member.index, 1.0 + member.index]
            member.curves.append({"loss": values, "val_loss": values, "val_mse": values})
        return [TrialFailedError("diverged") if m.seed == 13 else None for m in members]

    def retrain_group(
        self, members: Sequence[Member], epochs: int, data: TrainData
    ) -> list[keras.Model | TrialFailedError]:
        self.groups.append([member.index for member in members])
        return [member.model for member in members]


@USES_FIT
def test_configurations_are_grouped_and_the_refused_go_to_fit() -> None:
    trainer = Recording()
    widths = [16, 32, 16, REFUSED, 32]
    builds = [small_build(units=width) for width in widths]
    data = data_for(load_task("boston"), epochs=2)
    jobs = [Job(build, seed) for build, seed in zip(builds, [1, 2, 3, 4, 13], strict=True)]
    outcomes = trainer.evaluate(jobs, data, "val_mse")
    assert trainer.groups == [[0, 2], [1, 4]]  # in first-seen order; the refused one apart
    for index in (0, 1, 2):
        outcome = outcomes[index]
        assert isinstance(outcome, TrialResult)
        assert outcome.value == 1.0 + index and outcome.best_epoch == 2
        assert outcome.params == builds[index]()[0].count_params() and outcome.seconds > 0
    assert isinstance(outcomes[4], TrialFailedError)
    fitted = outcomes[3]  # trained by fit: its own curves, its two epochs
    assert isinstance(fitted, TrialResult) and fitted.epochs == 2
    assert jobs[3].curves == fitted.curves and len(jobs[3].curves[0]["val_mse"]) == 2


@USES_FIT
def test_an_ensemble_retrains_as_one_group_unless_refused() -> None:
    trainer = Recording()
    data = data_for(load_task("boston"), epochs=2)
    models = trainer.retrain(small_build(), 2, data, [1, 2, 3])
    assert trainer.groups == [[0, 1, 2]] and len(models) == 3
    fitted = trainer.retrain(small_build(units=REFUSED), 1, data, [1, 2])
    assert trainer.groups == [[0, 1, 2]]  # fit retrained these, seed by seed
    assert all(isinstance(model, keras.Model) for model in fitted) and len(fitted) == 2
