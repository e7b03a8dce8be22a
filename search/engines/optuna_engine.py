"""The Optuna engine: a journal-file study, a sampler and a pruner."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from search.engines import (
    INTERRUPTED,
    EngineConfig,
    Objective,
    SearchStoppedError,
    TrialRecord,
    budget_used,
    too_many_failures,
)
from search.engines.optuna_hp import OptunaHyperParameters
from search.errors import SearchError
from search.training import TrialFailedError, trial_seed

STORAGE_FILE = "optuna.journal"
_STATES = {
    TrialState.COMPLETE: "complete",
    TrialState.PRUNED: "pruned",
    TrialState.FAIL: "failed",
    TrialState.RUNNING: "running",
    TrialState.WAITING: "running",
}


class OptunaEngine:
    def __init__(self, config: EngineConfig, folder: Path) -> None:
        # Failed trials are logged by Optuna with a traceback; ours are recorded in the
        # leaderboard's error column instead.
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        self.config = config
        storage = optuna.storages.JournalStorage(JournalFileBackend(str(folder / STORAGE_FILE)))
        self.study = optuna.create_study(
            storage=storage,
            study_name="study",
            load_if_exists=True,
            direction="minimize" if config.direction == "min" else "maximize",
            sampler=_sampler(config.algorithm, config.seed),
            pruner=_pruner(config),
        )
        self._fail_abandoned()
        existing = len(self.study.get_trials(deepcopy=False))
        if existing:
            # A seeded sampler restarts its random stream in a new process: reseed it by the
            # trials already held, or a resumed study proposes its first configurations again.
            self.study.sampler = _sampler(config.algorithm, config.seed + existing)

    def optimize(
        self, objective: Objective, n_trials: int, on_trial: Callable[[TrialRecord], None]
    ) -> None:
        self._retry_interrupted()
        stopped: list[str] = []

        def after_trial(study: optuna.Study, trial: FrozenTrial) -> None:
            on_trial(_record(trial))
            records = self.records()
            reason = too_many_failures(records, self.config.max_failures)
            if reason or budget_used(records) >= n_trials:
                stopped.extend([reason] if reason else [])
                study.stop()

        if budget_used(self.records()) < n_trials:
            self.study.optimize(
                lambda trial: self._run(trial, objective),
                catch=(TrialFailedError,),
                callbacks=[after_trial],
            )
        if stopped:
            raise SearchStoppedError(stopped[0])

    def records(self) -> list[TrialRecord]:
        return [_record(trial) for trial in self.study.get_trials(deepcopy=False)]

    def hyperparameters(self, record: TrialRecord) -> OptunaHyperParameters:
        return OptunaHyperParameters(optuna.trial.FixedTrial(record.params, record.number))

    def _run(self, trial: optuna.Trial, objective: Objective) -> float:
        seed = trial_seed(self.config.seed, trial.number)
        trial.set_user_attr("seed", seed)
        start = time.perf_counter()

        def report(epoch: int, value: float) -> None:
            trial.report(value, epoch)
            if trial.should_prune():
                trial.set_user_attr("epochs", epoch)
                raise optuna.TrialPruned(f"pruned at epoch {epoch}")

        try:
            result = objective(OptunaHyperParameters(trial), trial.number, seed, report, None)
        except TrialFailedError as error:
            trial.set_user_attr("error", str(error))
            raise
        except KeyboardInterrupt:
            trial.set_user_attr("error", f"{INTERRUPTED}: Ctrl-C")
            raise
        finally:
            trial.set_user_attr("seconds", time.perf_counter() - start)
        trial.set_user_attr("metrics", result.metrics)
        trial.set_user_attr("epochs", result.epochs)
        trial.set_user_attr("best_epoch", result.best_epoch)
        trial.set_user_attr("n_params", result.params)
        return result.value

    def _fail_abandoned(self) -> None:
        """Trials left RUNNING by a process that died are failed, so none stays RUNNING."""
        storage = self.study._storage
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            storage.set_trial_user_attr(trial._trial_id, "error", f"{INTERRUPTED}: process ended")
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)

    def _retry_interrupted(self) -> None:
        """Queue each interrupted trial's parameters once more, up to ``retries`` times."""
        records = self.records()
        queued = {r.retry_of for r in records}
        waiting = self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        queued |= {t.user_attrs.get("retry_of") for t in waiting}
        for record in records:
            attempt = self._attempt(record)
            if (
                record.state == "failed"
                and record.error.startswith(INTERRUPTED)
                and record.number not in queued
                and attempt <= self.config.retries
            ):
                self.study.enqueue_trial(
                    record.params,
                    user_attrs={"retry_of": record.number, "attempt": attempt + 1},
                    skip_if_exists=False,
                )

    def _attempt(self, record: TrialRecord) -> int:
        trial = self.study.get_trials(deepcopy=False)[record.number]
        return int(trial.user_attrs.get("attempt", 1))


def _record(trial: FrozenTrial) -> TrialRecord:
    attrs = trial.user_attrs
    return TrialRecord(
        number=trial.number,
        state=_STATES[trial.state],
        value=trial.value if trial.state == TrialState.COMPLETE else None,
        params=dict(trial.params),
        metrics=dict(attrs.get("metrics", {})),
        epochs=attrs.get("epochs"),
        best_epoch=attrs.get("best_epoch"),
        n_params=attrs.get("n_params"),
        seconds=attrs.get("seconds"),
        seed=attrs.get("seed"),
        error=attrs.get("error", ""),
        retry_of=attrs.get("retry_of"),
    )


def _sampler(algorithm: str, seed: int) -> optuna.samplers.BaseSampler:
    if algorithm == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if algorithm == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if algorithm == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if algorithm == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
    try:
        import torch  # noqa: F401 - Optuna's GPSampler needs it
    except ImportError:
        raise SearchError(
            "algorithm 'gp' needs PyTorch: pip install '.[gp]' (or choose tpe, random, cmaes, qmc)"
        ) from None
    return optuna.samplers.GPSampler(seed=seed)


def _pruner(config: EngineConfig) -> optuna.pruners.BasePruner:
    if config.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=config.epochs // 5)
    if config.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=config.epochs)
    if config.pruner == "successive-halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.NopPruner()
