"""keras-tuner's oracles as the study's storage: written atomically, with our queue and reruns.

Every oracle of a study is keras-tuner's own (random, Bayesian, Hyperband, grid) with
:class:`AtomicOracle` mixed in: its JSON files are written atomically (kill -9 leaves no half
file), it proposes the configurations given to try first, and it keeps the bookkeeping the
chief of several workers needs (which worker owns which trial, which trial runs again).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import keras_tuner
from keras_tuner.engine.trial import Trial, TrialStatus

from search import _compat
from search.engines.base import EngineConfig
from search.engines.keras_tuner.records import trial_record
from search.engines.records import ENVIRONMENT, INTERRUPTED, TrialRecord, rerun_attempt
from search.files import write_text
from search.trainers.checkpoint import path_of as checkpoint_path
from search.trainers.checkpoint import progress

_ENQUEUED = "search_enqueued"  # oracle.json: the configurations proposed first so far


def oracle_for(config: EngineConfig, n_trials: int) -> keras_tuner.Oracle:
    """The study's oracle: keras-tuner's for ``config.algorithm``, made atomic."""
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
    """keras-tuner's ``oracle`` class with :class:`AtomicOracle` mixed in."""
    return type(f"Atomic{oracle.__name__}", (AtomicOracle, oracle), {})


class AtomicOracle(keras_tuner.Oracle):
    """Mixed into a keras-tuner oracle: atomic files, a queue of configurations to propose
    first, and the chief's bookkeeping of its workers' trials."""

    serving = False  # set by the Chief: workers wait for others' trials (see _waits)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queued: list[dict[str, Any]] = []  # configurations to propose first
        self.given: set[str] = set()  # every one proposed so far (kept in oracle.json)

    def populate_space(self, trial_id: str) -> dict[str, Any]:
        while self.queued:
            values = self.queued.pop(0)
            key = json.dumps(values, sort_keys=True)
            if key not in self.given:
                self.given.add(key)
                return {"status": TrialStatus.RUNNING, "values": values}
        return dict(super().populate_space(trial_id))

    def get_state(self) -> dict[str, Any]:
        return dict(super().get_state()) | {_ENQUEUED: sorted(self.given)}

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self.given = set(state.get(_ENQUEUED, []))

    def save(self) -> None:
        write_text(_compat.oracle_file(self), json.dumps(self.get_state()))

    def _save_trial(self, trial: Any) -> None:  # keras-tuner's (see search/_compat.py)
        write_text(_compat.trial_file(self, trial.trial_id), json.dumps(trial.get_state()))

    @keras_tuner.synchronized
    def create_trial(self, tuner_id: str) -> Any:
        if self.serving and self._waits(tuner_id):
            return Trial(self.get_space(), trial_id="", status="IDLE")
        return super().create_trial(tuner_id)

    def _waits(self, tuner_id: str) -> bool:
        """The budget is used but another worker's trial runs: it may yet need a rerun.

        keras-tuner would answer STOPPED, and the worker would leave before the trial of
        a worker that died could be run again.
        """
        return (
            bool(self.max_trials)
            and len(self.trials) >= self.max_trials
            and not _compat.retry_queue(self)
            and any(other != tuner_id for other in self.ongoing_trials)
        )

    @keras_tuner.synchronized
    def end_owned(self, tuner_id: str | None, trial: Any) -> bool:
        """End ``trial`` if ``tuner_id`` still runs it (not if it was failed meanwhile)."""
        ongoing = self.ongoing_trials.get(tuner_id)
        if ongoing is None or ongoing.trial_id != trial.trial_id:
            return False
        self.end_trial(trial)
        # keras-tuner saves before it lets go of the ongoing trial; the last trial of a
        # search would stay "ongoing" in oracle.json without this save.
        self.save()
        return True

    @keras_tuner.synchronized
    def interrupt(
        self, tuner_id: str, reason: str, retries: int, folder: Path | None = None
    ) -> str | None:
        """End the running trial of a worker that is gone: queue it again or fail it
        (:func:`again`; ``folder``: the study's, where its checkpoint lies)."""
        trial = self.ongoing_trials.pop(tuner_id, None)
        self.tuner_ids.discard(tuner_id)
        if trial is None:
            return None
        _compat.count_run(self, trial.trial_id)
        tail = again(trial, retries, folder)
        if tail is not None:
            trial.message = f"{INTERRUPTED}: {reason}; {tail}"
            _compat.retry_queue(self).append(trial.trial_id)
        else:
            trial.status = "FAILED"
            trial.message = f"{INTERRUPTED}: {reason}"
            self.end_order.append(trial.trial_id)
        _compat.save_trial(self, trial)
        self.save()
        return str(trial.trial_id)

    def keep_ongoing(self, message: str) -> None:
        """Save the running trials as they are ("ongoing"), to run again on resume, with
        ``message`` saying why they stopped."""
        for trial in list(self.ongoing_trials.values()):
            # Its attempt and the epoch it started from are kept: see again().
            kept = re.findall(r"attempt \d+|from epoch \d+", trial.message or "")
            trial.message = message + (f" ({', '.join(kept)})" if kept else "")
            _compat.save_trial(self, trial)

    @keras_tuner.synchronized
    def snapshot(self, objective: str) -> list[TrialRecord]:
        return [trial_record(t, objective) for _, t in sorted(self.trials.items())]

    @keras_tuner.synchronized
    def stop_new_trials(self) -> None:
        self.max_trials = len(self.trials)

    @keras_tuner.synchronized
    def done(self) -> bool:
        """Every trial of the budget has ended and none waits for a rerun."""
        return (
            len(self.trials) >= (self.max_trials or 0)
            and not self.ongoing_trials
            and not _compat.retry_queue(self)
        )


def resolve_interrupted(oracle: Any, retries: int, folder: Path | None = None) -> None:
    """Trials that were running when the last process ended: run again or mark failed.

    keras-tuner queues them to run again under the same trial id. That is kept where
    :func:`again` says so; otherwise the trial ends as failed (and its checkpoint, in the
    study ``folder``, goes).
    """
    queue = _compat.retry_queue(oracle)
    for trial_id in list(queue):
        trial = oracle.trials[trial_id]
        tail = again(trial, retries, folder)
        if tail is not None:
            trial.message = f"{INTERRUPTED}: {tail}"
        else:
            queue.remove(trial_id)
            trial.status = "FAILED"
            if not (trial.message or "").startswith(f"{INTERRUPTED}: Ctrl-C"):
                trial.message = f"{INTERRUPTED}: process ended"
            oracle.end_order.append(trial_id)
        _compat.save_trial(oracle, trial)
    oracle.save()


def again(trial: Any, retries: int, folder: Path | None) -> str | None:
    """How an interrupted ``trial`` runs again (``run again (attempt 2, from epoch 240)``:
    it continues from its checkpoint), or None when it does not (then its checkpoint goes).

    The rule is :func:`~search.engines.records.rerun_attempt`'s; the checkpoint (in the
    study ``folder``) tells whether the trial moved on since its attempt started (the epoch
    its message names).
    """
    message = trial.message or ""
    attempt = _attempt(message)
    path = checkpoint_path(folder, int(trial.trial_id)) if folder is not None else None
    reached = progress(path) if path is not None else 0
    found = re.search(r"from epoch (\d+)", message)
    moved = reached > (int(found.group(1)) if found else 0)
    since = f", from epoch {reached}" if reached else ""
    environment = message.startswith(ENVIRONMENT)
    next_attempt = rerun_attempt(attempt, moved, environment, retries)
    if next_attempt is None:
        if path is not None:
            path.unlink(missing_ok=True)
        return None
    if environment:
        return f"run again ({message}{since})"
    return f"run again (attempt {next_attempt}{since})"


def _attempt(message: str | None) -> int:
    found = re.search(r"attempt (\d+)", message or "")
    return int(found.group(1)) if found else 1
