"""The Optuna engine: a study in a journal file (or a shared ``--storage``), a sampler, a pruner.

Trials run in an ask/tell loop rather than ``study.optimize`` so that several workers can
share one budget exactly: a worker asks for a trial only while holding the study folder's
lock and only while fewer than ``--trials`` trials are finished or running.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search import _compat
from search.engines.base import (
    FOLD_PRUNERS,
    Asked,
    EngineConfig,
    Objective,
    heartbeat,
    objective_values,
    out_of_time,
)
from search.engines.ledger import Ledger
from search.engines.optuna.algorithms import pruner, sampler, trial_sampler_seed
from search.engines.optuna.hp import OptunaHyperParameters
from search.engines.optuna.storage import FileLock, open_storage, trials_from
from search.engines.records import (
    COMPLETE,
    ENVIRONMENT,
    FAILED,
    INTERRUPTED,
    PRUNED,
    RUNNING,
    Records,
    TrialRecord,
    rerun_attempt,
    stored_fields,
    too_many_failures,
    trained_fields,
)
from search.errors import (
    SearchStoppedError,
    TooLargeError,
    TrialFailedError,
    environment_fault,
    failed,
    raised_at,
)
from search.trainers.base import TrialResult, fold_values, trial_seed
from search.trainers.checkpoint import path_of as checkpoint_path
from search.trainers.checkpoint import progress

_STATES = {
    TrialState.COMPLETE: COMPLETE,
    TrialState.PRUNED: PRUNED,
    TrialState.FAIL: FAILED,
    TrialState.RUNNING: RUNNING,
    TrialState.WAITING: RUNNING,
}
_HOST = socket.gethostname()
_ENQUEUED = "enqueued"  # the study's attribute: every configuration it was given to try first
# A trial's attributes when it runs an interrupted one again: the first attempt's number (its
# checkpoint's name) and the epochs that checkpoint held as it was queued.
_CONTINUES = "continues"
_FROM_EPOCH = "from_epoch"
# A trial's attribute where training changed its configuration: the names of its parameters.
_FINAL = "final_params"


class OptunaEngine:
    def __init__(self, config: EngineConfig, folder: Path) -> None:
        # Failed trials are logged by Optuna with a traceback; ours are recorded in the
        # leaderboard's error column instead.
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        # Heartbeats are used from our ask/tell loop, which Optuna warns about, and are
        # experimental; both warnings are noise for a user.
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed")
        self.config = config
        self.folder = folder
        # Optuna lists a study's trials in trial order; a WAITING one is a configuration
        # enqueued that no worker has asked for yet: not a trial of the study's records.
        self.ledger = Ledger[FrozenTrial](
            lambda trial: None if trial.state == TrialState.WAITING else trial_record(trial),
            lambda trial: trial.state.is_finished(),
        )
        self.storage = open_storage(config.storage, folder)
        directions = config.directions or (config.direction,)
        self.study = optuna.create_study(
            storage=self.storage,
            study_name=config.study_name,
            load_if_exists=True,
            directions=["minimize" if d == "min" else "maximize" for d in directions],
            sampler=sampler(config.algorithm, config.seed),
            pruner=pruner(config),
        )
        self.study_id = self.storage.get_study_id_from_name(config.study_name)

    def optimize(
        self, objective: Objective, n_trials: int, on_trial: Callable[[list[TrialRecord]], None]
    ) -> None:
        told = False
        while True:
            with self._claim():
                records = self._look(resumed=not told)
                reason = too_many_failures(records, self.config.max_failures)
                room = n_trials - records.used - records.running
                if room < self.config.population:
                    # An interrupted trial queued to run again takes no room of its own:
                    # the trial it continues counts toward the budget already. (Counted
                    # near the budget's end only: it reads every trial of the study.)
                    room += self._queued_again()
                done = (
                    bool(reason)
                    or room <= 0
                    or out_of_time(self.config.deadline, self.config.charged_budget, records)
                )
                trials = []
                count = 0 if done else min(room, self.config.population)
                for held in range(len(records), len(records) + count):
                    if self.config.algorithm != "qmc":
                        # Reseeded by the trials held: a seeded sampler in a new process (a
                        # resume, another worker) would otherwise propose the same
                        # configurations again. (QMC draws its points by trial number.)
                        seed = trial_sampler_seed(self.config.seed, held)
                        reseeded = sampler(self.config.algorithm, seed)
                        _compat.keep_search_space(self.study.sampler, reseeded)
                        self.study.sampler = reseeded
                    trials.append(self.study.ask())
                    trials[-1].set_user_attr("worker", f"{_HOST}:{os.getpid()}")
            # The records of the last look, outside the lock: callbacks may take their time.
            if told:
                on_trial(records)
            if reason:
                raise SearchStoppedError(reason)
            if done:
                return
            with self._heartbeat(trials):
                self._run(trials, objective)
            told = True

    def records(self) -> Records:
        first = len(self.ledger.settled)  # finished trials the ledger keeps: not read again
        return self.ledger.look(trials_from(self.storage, self.study_id, first), first)

    def hyperparameters(self, record: TrialRecord) -> OptunaHyperParameters:
        return OptunaHyperParameters(optuna.trial.FixedTrial(record.params, record.number))

    def enqueue(self, configurations: list[dict[str, Any]]) -> None:
        given = set(self.study.user_attrs.get(_ENQUEUED, []))
        for values in configurations:
            key = json.dumps(values, sort_keys=True)
            if key not in given:
                self.study.enqueue_trial(values)
                given.add(key)
        self.study.set_user_attr(_ENQUEUED, sorted(given))

    def chief(self, n_trials: int, address: str) -> None:
        """Optuna's workers share the storage: there is no server to dial."""
        return None

    def native(self) -> optuna.Study:
        return self.study

    def optuna_study(self) -> optuna.Study:
        return self.study

    def frozen_trial(self, record: TrialRecord) -> FrozenTrial:
        trial_id = self.storage.get_trial_id_from_study_id_trial_number(
            self.study_id, record.number
        )
        return self.storage.get_trial(trial_id)

    def _run(self, trials: list[optuna.Trial], objective: Objective) -> None:
        """Run ``trials`` (one objective call: they may train together) and tell each."""
        asked = [self._asked(trial) for trial in trials]
        start = time.perf_counter()

        def finish(
            trial: optuna.Trial,
            state: TrialState,
            error: str = "",
            value: float | list[float] | None = None,
            charged: float | None = None,
            earlier: float = 0.0,
        ) -> None:
            # Trials that trained together share their time equally; a trial charged to a
            # simulated clock (a lookup) keeps its real seconds beside the charged ones; a
            # trial continued from its checkpoint adds the seconds of the attempts before.
            measured = (time.perf_counter() - start) / len(trials) + earlier
            trial.set_user_attr("seconds", measured if charged is None else charged)
            if charged is not None:
                trial.set_user_attr("wall_seconds", measured)
            if error:
                trial.set_user_attr("error", error)
            self.study.tell(trial, value, state=state)

        try:
            outcomes = objective(asked)
        except KeyboardInterrupt:
            for trial in trials:
                finish(trial, TrialState.FAIL, f"{INTERRUPTED}: Ctrl-C")
            raise
        except BaseException as error:
            fault = environment_fault(error)
            if fault is None:
                for trial in trials:
                    finish(trial, TrialState.FAIL, f"{type(error).__name__}: {error}")
                raise
            for trial in trials:
                # The storage may be what failed: then the trial stays running, and the
                # next run finds its process gone (as after kill -9).
                with contextlib.suppress(Exception):
                    finish(trial, TrialState.FAIL, f"{ENVIRONMENT}: {fault}")
            raise fault from error
        for trial, outcome in zip(trials, outcomes, strict=True):
            if isinstance(outcome, optuna.TrialPruned):
                finish(trial, TrialState.PRUNED)
            elif isinstance(outcome, TooLargeError):
                # Pruned before its first epoch rather than failed: Optuna's samplers do not
                # learn from failed trials, while TPE ranks such a trial below every trained
                # one, and so learns to avoid models of that size.
                trial.set_user_attr("n_params", outcome.params)
                finish(trial, TrialState.PRUNED, str(outcome))
            elif isinstance(outcome, TrialFailedError):
                finish(trial, TrialState.FAIL, str(outcome))
            elif isinstance(outcome, Exception):
                # The user's code raised (their build or fit): failed where it raised, as
                # keras-tuner fails it; failures in a row stop the search (--max-failures).
                failed(trial.number, outcome)
                finish(trial, TrialState.FAIL, raised_at(outcome))
            else:
                # The seed was stored as the trial began, the seconds as it ends.
                for name, value in {"metrics": outcome.metrics, **trained_fields(outcome)}.items():
                    trial.set_user_attr(name, value)
                if outcome.hyperparameters is not None:
                    _set_params(self.storage, trial, *outcome.hyperparameters)
                charged = outcome.seconds if outcome.wall_seconds is not None else None
                values: float | list[float] | None = outcome.value
                if self.config.objectives:
                    values = objective_values(outcome, self.config.objectives)
                state = TrialState.COMPLETE
                if self._pruned_by_folds(trial, outcome):
                    state, values = TrialState.PRUNED, None  # its value kept as an attribute
                finish(trial, state, value=values, charged=charged, earlier=outcome.earlier)

    def _asked(self, trial: optuna.Trial) -> Asked:
        """What the objective needs of a trial: its hyperparameters, seed and report."""
        # A trial run again continues the first attempt's checkpoint, with its seed.
        first = int(trial.user_attrs.get(_CONTINUES, trial.number))
        seed = trial_seed(self.config.seed, first)
        trial.set_user_attr("seed", seed)
        # Optuna prunes single-objective studies only: no reports with several. A fold
        # pruner's steps are the folds, reported once the trial is trained
        # (_pruned_by_folds), not its epochs.
        by_epoch = not self.config.objectives and self.config.pruner not in FOLD_PRUNERS
        report = _reporter(trial) if by_epoch else None
        return Asked(OptunaHyperParameters(trial), trial.number, seed, report, continues=first)

    def _pruned_by_folds(self, trial: optuna.Trial, result: TrialResult) -> bool:
        """Report a trained trial's fold values to a fold pruner (``wilcoxon``), each at its
        fold's step, and ask it whether the trial is surely worse than the best one.

        The folds are reported after training, not as each fold ends: the numpy and compiled
        trainers train a configuration's folds together, epoch by epoch, so no fold's value
        is known before the last epoch, and one place serves every trainer. A fold's value
        is its value at the trial's best epoch (the epoch its value is read at), so their
        mean is the trial's value, and the best trial's folds are compared with this one's
        fold by fold. Such a pruning saves no training: it keeps the trial from being
        selected (top-k, ensembles) and tells the sampler it was worse. A pruned trial keeps
        its metrics, epochs and value (the ``value`` attribute; Optuna's own value of a
        pruned trial is its last step's: the last fold's).
        """
        if self.config.pruner not in FOLD_PRUNERS:
            return False
        values = fold_values(result, self.config.folds, self.config.objective)
        if values is None:
            return False
        for fold, value in enumerate(values):
            trial.report(value, fold)
        if not trial.should_prune():
            return False
        trial.set_user_attr("value", result.value)
        return True

    def _look(self, resumed: bool) -> Records:
        """The study's records, once the trials of workers that died are failed, and queued
        again while retries are left (all of them when the study ``resumed``, after that
        those that newly ended).

        A worker on this host is dead when its process is gone; one on another host when its
        heartbeat (RDB storages) is older than the grace period.
        """
        # Trials of other hosts whose heartbeat stopped (RDB storages) become FAIL without
        # an error of ours; trial_record names the reason.
        optuna.storages.fail_stale_trials(self.study)
        records = self.records()
        failed = False
        for trial in self.ledger.open:
            host, _, pid = str(trial.user_attrs.get("worker", ":")).partition(":")
            gone = host == _HOST and pid.isdigit() and not _alive(int(pid))
            if trial.state == TrialState.RUNNING and gone:
                self._fail(_compat.optuna_trial_id(trial), f"{INTERRUPTED}: process ended")
                failed = True
        if failed:
            fresh = records.fresh
            records = self.records()
            records.fresh = fresh + records.fresh
        if resumed or any(r.error.startswith(INTERRUPTED) for r in records.fresh):
            self._retry_interrupted()
        return records

    def _queued_again(self) -> int:
        """Interrupted trials queued to run again that no worker has asked for yet."""
        waiting = self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        return sum("retry_of" in trial.user_attrs for trial in waiting)

    def _fail(self, trial_id: int, error: str) -> None:
        self.storage.set_trial_user_attr(trial_id, "error", error)
        self.storage.set_trial_state_values(trial_id, TrialState.FAIL)

    def _retry_interrupted(self) -> None:
        """Queue each interrupted trial's parameters once more, to continue from its
        checkpoint (:mod:`search.trainers.checkpoint`).

        One interrupted after its checkpoint moved on (a later epoch than where its attempt
        started) runs again without using up an attempt; one interrupted again at the same
        point, as a crash of its own would be, runs again up to ``retries`` times, then stays
        failed and its checkpoint goes. One that the environment interrupted always runs
        again, without using up an attempt. ``retries`` 0: no interrupted trial runs again.
        """
        trials = self.study.get_trials(deepcopy=False)
        queued = {t.user_attrs.get("retry_of") for t in trials}
        for trial in trials:
            if trial.state != TrialState.FAIL or trial.number in queued:
                continue
            error = trial_record(trial).error
            if not error.startswith((ENVIRONMENT, INTERRUPTED)):
                continue
            attempt = int(trial.user_attrs.get("attempt", 1))
            first = int(trial.user_attrs.get(_CONTINUES, trial.number))
            path = checkpoint_path(self.folder, first)
            reached = progress(path)
            moved = reached > int(trial.user_attrs.get(_FROM_EPOCH, 0))
            environment = error.startswith(ENVIRONMENT)
            again = rerun_attempt(attempt, moved, environment, self.config.retries)
            if again is None:
                path.unlink(missing_ok=True)
                continue
            self.study.enqueue_trial(
                trial.params,
                user_attrs={
                    "retry_of": trial.number,
                    "attempt": again,
                    _CONTINUES: first,
                    _FROM_EPOCH: reached,
                },
                skip_if_exists=False,
            )

    @contextlib.contextmanager
    def _claim(self) -> Iterator[None]:
        """Workers on this machine take turns to count the trials and ask for the next one."""
        lock = FileLock(str(self.folder / ".claim.lock"))
        lock.acquire()
        try:
            yield
        finally:
            lock.release()

    @contextlib.contextmanager
    def _heartbeat(self, trials: list[optuna.Trial]) -> Iterator[None]:
        """Beat for the trials while they run (RDB storages), so others can tell they live."""
        storage = self.storage
        interval = (
            storage.get_heartbeat_interval()
            if isinstance(storage, optuna.storages.RDBStorage)
            else None
        )
        if not interval:
            yield
            return

        def beat() -> None:
            for trial in trials:
                storage.record_heartbeat(_compat.optuna_trial_id(trial))

        with heartbeat(beat, interval):
            yield


def _set_params(
    storage: optuna.storages.BaseStorage,
    trial: optuna.Trial,
    values: dict[str, Any],
    domains: dict[str, Any],
) -> None:
    """Record the configuration a trial ended with, where training changed it
    (population-based training): each value replaces the one it was asked with, and a
    parameter it no longer has (a layer it lost with the weights it copied), which Optuna
    cannot remove, is left out of its record (:data:`_FINAL`)."""
    trial.set_user_attr(_FINAL, sorted(values))
    trial_id = _compat.optuna_trial_id(trial)
    for name, value in values.items():
        domain = domains[name]
        storage.set_trial_param(trial_id, name, domain.to_internal_repr(value), domain)


def _reporter(trial: optuna.Trial) -> Callable[[int, float], None]:
    """The trial's per-epoch report: Optuna's pruner decides after each epoch."""

    def report(epoch: int, value: float) -> None:
        trial.report(value, epoch)
        if trial.should_prune():
            trial.set_user_attr("epochs", epoch)
            raise optuna.TrialPruned(f"pruned at epoch {epoch}")

    return report


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def trial_record(trial: FrozenTrial) -> TrialRecord:
    """An Optuna trial as its record; the stored fields are its user attributes."""
    attrs = trial.user_attrs
    return TrialRecord(
        number=trial.number,
        state=_STATES[trial.state],
        # A trial a fold pruner pruned after training keeps its value as an attribute.
        value=trial.values[0] if trial.state == TrialState.COMPLETE else attrs.get("value"),
        values=list(trial.values) if trial.values and len(trial.values) > 1 else None,
        params={
            name: value
            for name, value in trial.params.items()
            if name in attrs.get(_FINAL, trial.params)
        },
        metrics=dict(attrs.get("metrics", {})),
        **stored_fields(attrs),
        # Every failure of ours records its error; a FAIL without one was failed by another
        # worker because this trial's heartbeat stopped.
        error=attrs.get("error")
        or (
            f"{INTERRUPTED}: worker stopped (no heartbeat)"
            if trial.state == TrialState.FAIL
            else ""
        ),
        retry_of=attrs.get("retry_of"),
    )
