"""The keras-tuner engine: a keras-tuner oracle and a tuner whose trials run our trainer.

The tuner's ``run_trial`` calls the harness's objective instead of ``model.fit``, so both
engines train the same way; the oracle and its project folder (``oracle.json`` and one
``trial.json`` per trial) stay keras-tuner's own and are the study's storage.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras_tuner
from keras_tuner.engine import base_tuner
from keras_tuner.src import config as keras_tuner_config

from search.engines import (
    INTERRUPTED,
    EngineConfig,
    Objective,
    SearchStoppedError,
    TrialRecord,
    too_many_failures,
)
from search.files import write_text
from search.training import TrialFailedError, trial_seed

# keras-tuner prints the traceback of every failed trial when DEBUG is on (its default);
# a diverging trial is an expected outcome here, recorded in the trial's error column.
keras_tuner_config.DEBUG = False

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
        on_trial: Callable[[list[TrialRecord]], None] | None,
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
        self, objective: Objective, n_trials: int, on_trial: Callable[[list[TrialRecord]], None]
    ) -> None:
        tuner = self._tuner(objective, n_trials, on_trial)
        tuner.max_failures = self.config.max_failures
        # Hyperband has no trial budget of its own; every oracle honours max_trials.
        tuner.oracle.max_trials = n_trials
        _resolve_interrupted(tuner.oracle, self.config.retries)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                tuner.search()
        except KeyboardInterrupt:
            # The trial stays "ongoing" in the oracle, so that a resume can run it again;
            # its message says it was interrupted.
            for trial in tuner.oracle.ongoing_trials.values():
                trial.message = f"{INTERRUPTED}: Ctrl-C"
                tuner.oracle._save_trial(trial)
            tuner.oracle.save()
            raise
        if tuner.stop_reason:
            raise SearchStoppedError(tuner.stop_reason)

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
    on_trial: Callable[[list[TrialRecord]], None] | None = None
    seed = 0
    max_failures = 0
    stop_reason: str | None = None

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
        records = [_record(t, self.oracle.objective.name) for t in self.oracle.trials.values()]
        if self.on_trial is not None:
            self.on_trial(sorted(records, key=lambda r: r.number))
        self.stop_reason = too_many_failures(records, self.max_failures)
        if self.stop_reason:
            # The oracle answers STOPPED once it holds max_trials trials.
            self.oracle.max_trials = len(self.oracle.trials)

    def save(self) -> None:
        self.oracle.save()
        write_text(Path(self._get_tuner_fname()), json.dumps(self.get_state()))

    def save_model(self, trial_id: str, model: Any, step: int = 0) -> None:
        """Models are not saved per trial: the best ones are retrained after the search."""

    def load_model(self, trial: Any) -> None:
        raise NotImplementedError("models are retrained from their hyperparameters")


def _oracle(config: EngineConfig, n_trials: int) -> keras_tuner.Oracle:
    common: dict[str, Any] = {
        "objective": keras_tuner.Objective(config.objective, config.direction),
        # keras-tuner takes seed 0 as "no seed" (``seed or random.randint(...)``): shift it.
        "seed": config.seed + 1,
        "max_retries_per_trial": 0,
        # A diverging configuration fails its trial; the search goes on.
        "max_consecutive_failed_trials": max(n_trials, 1) + 1,
    }
    if config.algorithm == "hyperband":
        return _atomic(keras_tuner.oracles.HyperbandOracle)(
            max_epochs=config.epochs, factor=3, **common
        )
    oracle = {
        "random": keras_tuner.oracles.RandomSearchOracle,
        "bayesian": keras_tuner.oracles.BayesianOptimizationOracle,
        "grid": keras_tuner.oracles.GridSearchOracle,
    }[config.algorithm]
    return _atomic(oracle)(max_trials=n_trials, **common)


def _atomic(oracle: type) -> type:
    """The oracle class with its JSON files written atomically (kill -9 leaves no half file)."""

    class Atomic(oracle):
        def save(self) -> None:
            write_text(Path(self._get_oracle_fname()), json.dumps(self.get_state()))

        def _save_trial(self, trial: Any) -> None:
            path = Path(self._get_trial_dir(trial.trial_id)) / "trial.json"
            write_text(path, json.dumps(trial.get_state()))

    Atomic.__name__ = f"Atomic{oracle.__name__}"
    return Atomic


def _resolve_interrupted(oracle: Any, retries: int) -> None:
    """Trials that were running when the last process ended: run again or mark failed.

    keras-tuner queues them to run again under the same trial id. That is kept while the
    trial has attempts left (``--retries``); otherwise the trial ends as failed.
    """
    for trial_id in list(oracle._retry_queue):
        trial = oracle.trials[trial_id]
        attempt = _attempt(trial.message)
        if attempt <= retries:
            trial.message = f"{INTERRUPTED}: run again (attempt {attempt + 1})"
        else:
            oracle._retry_queue.remove(trial_id)
            trial.status = "FAILED"
            if not (trial.message or "").startswith(f"{INTERRUPTED}: Ctrl-C"):
                trial.message = f"{INTERRUPTED}: process ended"
            oracle.end_order.append(trial_id)
        oracle._save_trial(trial)
    oracle.save()


def _attempt(message: str | None) -> int:
    found = re.search(r"attempt (\d+)", message or "")
    return int(found.group(1)) if found else 1


def _record(trial: Any, objective: str) -> TrialRecord:
    status = str(trial.status)
    metrics = trial.metrics
    values = {name: float(metrics.get_last_value(name)) for name in metrics.metrics}
    extras = {name: values.pop(name, None) for name in _EXTRAS}
    error = ""
    if trial.message and status != "COMPLETED":
        lines = [line for line in str(trial.message).strip().splitlines() if line.strip()]
        error = lines[-1].split("FailedTrialError: ")[-1] if lines else ""
    hp = trial.hyperparameters
    params = {
        name: value
        for name, value in hp.values.items()
        if not name.startswith("tuner/") and _is_active(hp, name)
    }
    state = _STATES.get(status, "failed")
    if state == "running" and error.startswith(INTERRUPTED):
        state = "failed"
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
