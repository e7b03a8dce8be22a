"""Which interrupted trial runs again (``search.engines.records.rerun_attempt``, through
keras-tuner's ``again``, which reads the checkpoint; the Optuna engine keeps the same rule):
one whose checkpoint moved on
since its attempt started always (with --retries above 0), one interrupted again at the same
point up to --retries times, one the environment interrupted always; a trial given up loses
its checkpoint."""

from __future__ import annotations

from pathlib import Path

import keras_tuner
import numpy as np

from search.engines.keras_tuner.oracle import again
from search.trainers.checkpoint import Checkpoint, Every, Saved, path_of


def trial(message: str = "") -> keras_tuner.engine.trial.Trial:
    found = keras_tuner.engine.trial.Trial(keras_tuner.HyperParameters(), trial_id="03")
    found.message = message
    return found


def checkpoint(folder: Path, epochs: int) -> Path:
    path = path_of(folder, 3)
    curve = {"loss": [1.0] * epochs, "val_mse": [2.0] * epochs}
    Checkpoint(path, Every()).save(Saved([curve], {0: [np.zeros(3)]}, 1.5, 3))
    return path


def test_a_trial_whose_checkpoint_moved_on_runs_again_without_using_an_attempt(
    tmp_path: Path,
) -> None:
    checkpoint(tmp_path, 5)
    assert again(trial(), 1, tmp_path) == "run again (attempt 1, from epoch 5)"
    moved = trial("interrupted: run again (attempt 2, from epoch 3)")
    assert again(moved, 1, tmp_path) == "run again (attempt 2, from epoch 5)"


def test_a_trial_interrupted_again_at_the_same_point_is_given_up_after_retries(
    tmp_path: Path,
) -> None:
    path = checkpoint(tmp_path, 5)
    same = "interrupted: run again (attempt 1, from epoch 5)"
    assert again(trial(same), 1, tmp_path) == "run again (attempt 2, from epoch 5)"
    assert path.exists()
    assert again(trial("interrupted: run again (attempt 2, from epoch 5)"), 1, tmp_path) is None
    assert not path.exists()  # given up: the disk keeps no checkpoint of it


def test_retries_0_gives_up_every_interrupted_trial_but_the_environments(tmp_path: Path) -> None:
    checkpoint(tmp_path, 5)
    environment = trial("interrupted by the environment: disk full: /x (No space left)")
    assert again(environment, 0, tmp_path) == (
        "run again (interrupted by the environment: disk full: /x (No space left), from epoch 5)"
    )
    assert again(trial(), 0, tmp_path) is None
    assert not path_of(tmp_path, 3).exists()


def test_without_a_checkpoint_an_attempt_is_used_each_time(tmp_path: Path) -> None:
    assert again(trial(), 1, tmp_path) == "run again (attempt 2)"
    assert again(trial("interrupted: run again (attempt 2)"), 1, tmp_path) is None
