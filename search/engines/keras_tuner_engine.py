"""The keras-tuner engine: a keras-tuner oracle and a tuner whose trials run our trainer.

The tuner's ``run_trial`` calls the harness's objective instead of ``model.fit``, so both
engines train the same way; the oracle and its project folder (``oracle.json`` and one
``trial.json`` per trial) stay keras-tuner's own and are the study's storage.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras_tuner
from keras_tuner.engine import base_tuner

from search.engines import EngineConfig, Objective, TrialRecord
from search.training import TrialFailedError, trial_seed

PROJECT = "keras_tuner"
_STATES = {
    "COMPLETED": "complete",
    "FAILED": "failed",
    "INVALID": "failed",
    "RUNNING": "running",
    "IDLE": "running",
    "STOPPED": "pruned",
}
_EXTRAS = ("epochs", "best_epoch", "n_params", "seconds", "seed")


class KerasTunerEngine:
    def __init__(self, config: EngineConfig, space: Any, folder: Path) -> None:
        self.config = config
        self.space = space
        self.folder = folder

    def _tuner(
        self,
        objective: Objective | None,
        n_trials: int,
        on_trial: Callable[[TrialRecord], None] | None,
    ) -> _Tuner:
        oracle = _oracle(self.config, n_trials)
        # keras-tuner prints "Reloading Tuner ..." and a per-trial display: the CLI has its own.
        with contextlib.redirect_stdout(io.StringIO()):
            tuner = _Tuner(oracle, self.space, str(self.folder), PROJECT)
        tuner.oracle.verbose = 0
        tuner.objective_fn = objective
        tuner.seed = self.config.seed
        tuner.on_trial = on_trial
        return tuner

    def optimize(
        self, objective: Objective, n_trials: int, on_trial: Callable[[TrialRecord], None]
    ) -> None:
        tuner = self._tuner(objective, n_trials, on_trial)
        # Hyperband has no trial budget of its own; every oracle honours max_trials.
        tuner.oracle.max_trials = n_trials
        with contextlib.redirect_stdout(io.StringIO()):
            tuner.search()

    def records(self) -> list[TrialRecord]:
        tuner = self._tuner(None, 0, None)
        return [
            _record(trial, self.config.objective)
            for _, trial in sorted(tuner.oracle.trials.items())
        ]

    def hyperparameters(self, record: TrialRecord) -> Any:
        tuner = self._tuner(None, 0, None)
        return tuner.oracle.get_trial(_trial_id(tuner, record.number)).hyperparameters


class _Tuner(base_tuner.BaseTuner):
    objective_fn: Objective | None = None
    on_trial: Callable[[TrialRecord], None] | None = None
    seed = 0

    def run_trial(self, trial: Any, *args: Any, **kwargs: Any) -> dict[str, float]:
        assert self.objective_fn is not None
        number = int(trial.trial_id)
        seed = trial_seed(self.seed, number)
        # Hyperband sets the epochs of each trial; it starts from scratch rather than from
        # a checkpoint of the trial it continues, so no model files are written per trial.
        epochs = trial.hyperparameters.values.get("tuner/epochs")
        try:
            result = self.objective_fn(trial.hyperparameters, number, seed, None, epochs)
        except TrialFailedError as error:
            raise keras_tuner.errors.FailedTrialError(str(error)) from None
        return {
            **result.metrics,
            self.oracle.objective.name: result.value,
            "epochs": result.epochs,
            "best_epoch": result.best_epoch,
            "n_params": result.params,
            "seconds": result.seconds,
            "seed": seed,
        }

    def on_trial_end(self, trial: Any) -> None:
        super().on_trial_end(trial)
        if self.on_trial is not None:
            self.on_trial(
                _record(self.oracle.get_trial(trial.trial_id), self.oracle.objective.name)
            )

    def save_model(self, trial_id: str, model: Any, step: int = 0) -> None:
        """Models are not saved per trial: the best ones are retrained after the search."""

    def load_model(self, trial: Any) -> None:
        raise NotImplementedError("models are retrained from their hyperparameters")


def _oracle(config: EngineConfig, n_trials: int) -> keras_tuner.Oracle:
    common: dict[str, Any] = {
        "objective": keras_tuner.Objective(config.objective, config.direction),
        "seed": config.seed,
        "max_retries_per_trial": 0,
        # A diverging configuration fails its trial; the search goes on.
        "max_consecutive_failed_trials": max(n_trials, 1) + 1,
    }
    if config.algorithm == "random":
        return keras_tuner.oracles.RandomSearchOracle(max_trials=n_trials, **common)
    if config.algorithm == "bayesian":
        return keras_tuner.oracles.BayesianOptimizationOracle(max_trials=n_trials, **common)
    if config.algorithm == "grid":
        return keras_tuner.oracles.GridSearchOracle(max_trials=n_trials, **common)
    return keras_tuner.oracles.HyperbandOracle(max_epochs=config.epochs, factor=3, **common)


def _record(trial: Any, objective: str) -> TrialRecord:
    status = str(trial.status)
    metrics = trial.metrics
    values = {name: float(metrics.get_last_value(name)) for name in metrics.metrics}
    extras = {name: values.pop(name, None) for name in _EXTRAS}
    error = ""
    if trial.message:
        lines = [line for line in str(trial.message).strip().splitlines() if line.strip()]
        error = lines[-1].split("FailedTrialError: ")[-1] if lines else ""
    hp = trial.hyperparameters
    params = {
        name: value
        for name, value in hp.values.items()
        if not name.startswith("tuner/") and _is_active(hp, name)
    }
    state = _STATES.get(status, "failed")
    return TrialRecord(
        number=int(trial.trial_id),
        state=state,
        value=values.get(objective) if state == "complete" else None,
        params=params,
        metrics={k: v for k, v in values.items() if k.startswith("val_")},
        epochs=_int(extras["epochs"]),
        best_epoch=_int(extras["best_epoch"]),
        n_params=_int(extras["n_params"]),
        seconds=extras["seconds"],
        seed=_int(extras["seed"]),
        error=error,
    )


def _is_active(hp: Any, name: str) -> bool:
    return any(hp.is_active(item) for item in hp._hps.get(name, [])) or name not in hp._hps


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


def _trial_id(tuner: _Tuner, number: int) -> str:
    for trial_id in tuner.oracle.trials:
        if int(trial_id) == number:
            return str(trial_id)
    raise KeyError(number)
