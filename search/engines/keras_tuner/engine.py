"""The keras-tuner engine: a keras-tuner oracle and a tuner whose trials run our trainer.

The tuner's ``run_trial`` calls the harness's objective instead of ``model.fit``, so both
engines train the same way; the oracle and its project folder (``oracle.json`` and one
``trial.json`` per trial) stay keras-tuner's own and are the study's storage
(:mod:`~search.engines.keras_tuner.oracle`). Several workers share a study through a chief
(:mod:`~search.engines.keras_tuner.distribute`).
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras_tuner
import optuna
from keras_tuner.engine import base_tuner
from keras_tuner.engine.trial import TrialStatus

from search import _compat
from search.engines.base import Asked, EngineConfig, Objective, out_of_time
from search.engines.keras_tuner.distribute import Chief, Client, no_beats
from search.engines.keras_tuner.oracle import oracle_for, resolve_interrupted
from search.engines.keras_tuner.records import finished, trial_record
from search.engines.ledger import Ledger
from search.engines.optuna.view import frozen_trial
from search.engines.records import (
    ENVIRONMENT,
    INTERRUPTED,
    Records,
    TrialRecord,
    counted,
    too_many_failures,
    trained_fields,
)
from search.errors import (
    EnvironmentFaultError,
    SearchBaseError,
    SearchStoppedError,
    TooLargeError,
    TrialFailedError,
    environment_fault,
    failed,
    raised_at,
)
from search.files import held, write_text
from search.space import Space
from search.trainers.base import Outcome, trial_seed

_compat.quiet_keras_tuner()

PROJECT = "keras_tuner"


class KerasTunerEngine:
    def __init__(self, config: EngineConfig, space: Space | None, folder: Path) -> None:
        self.config = config
        # keras-tuner runs a HyperModel; reading a study's trials back needs none.
        self.hypermodel = None if space is None else _HyperModel(space)
        self.folder = folder
        self.serving: Chief | None = None  # while this process is the chief of workers
        self._view: optuna.Study | None = None
        self.queue: list[dict[str, Any]] = []  # configurations the oracle proposes first
        self.ledger = Ledger[Any](lambda trial: trial_record(trial, config.objective), finished)
        # The tuner whose search this engine ran to its end, in this process: it holds what
        # its files hold, so reading the study back needs no reload of every trial's file.
        self._searched: _Tuner | None = None

    def _tuner(
        self,
        objective: Objective | None,
        n_trials: int,
        on_trial: Callable[[list[TrialRecord]], None] | None,
    ) -> _Tuner:
        oracle = oracle_for(self.config, n_trials)
        # keras-tuner prints "Reloading Tuner ..." and a per-trial display: the CLI has its own.
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                tuner = _Tuner(oracle, self.hypermodel, str(self.folder), PROJECT)
        except ValueError:  # JSONDecodeError: a file of the project folder is damaged
            damaged = _damaged_file(self.folder / PROJECT)
            if damaged is None:
                raise
            raise damaged from None
        if _compat.is_worker(tuner):
            # keras-tuner made its own client of the chief; ours adds beats and messages.
            tuner.oracle = Client(_compat.client_oracle(tuner.oracle))
        else:
            tuner.oracle.queued = list(self.queue)  # those given before are skipped
            # keras-tuner reloads the trials in the file system's order: the ledger reads
            # them in trial order (new ones are added in order).
            tuner.oracle.trials = dict(
                sorted(tuner.oracle.trials.items(), key=lambda item: int(item[0]))
            )
        tuner.oracle.verbose = 0
        tuner.objective_fn = objective
        tuner.seed = self.config.seed
        tuner.population = self.config.population
        tuner.on_trial = on_trial
        tuner.ledger = self.ledger
        return tuner

    def optimize(
        self, objective: Objective, n_trials: int, on_trial: Callable[[list[TrialRecord]], None]
    ) -> None:
        self._searched = None
        tuner = self._tuner(objective, n_trials, on_trial)
        if _compat.is_worker(tuner):
            # A worker of a chief: the chief holds the budget, the retries and the stop rule.
            with contextlib.redirect_stdout(io.StringIO()):
                tuner.search()
            return
        tuner.max_failures = self.config.max_failures
        # Hyperband has no trial budget of its own; every oracle honours max_trials.
        tuner.oracle.max_trials = n_trials
        resolve_interrupted(tuner.oracle, self.config.retries, self.folder)
        tuner.deadline = self.config.deadline
        tuner.charged_budget = self.config.charged_budget
        if out_of_time(tuner.deadline, tuner.charged_budget, self.records()):
            return
        try:
            # A tabular benchmark's study writes its oracle's files once, as it ends.
            with contextlib.redirect_stdout(io.StringIO()), held(self.folder / PROJECT):
                tuner.search()
            self._searched = tuner
        except KeyboardInterrupt:
            # The trial stays "ongoing" in the oracle, so that a resume can run it again;
            # its message says it was interrupted.
            _interrupted(tuner, f"{INTERRUPTED}: Ctrl-C")
            raise
        except Exception as error:
            fault = environment_fault(error)
            if fault is None:
                raise
            # The disk may be full still: what cannot be saved now, the next run finds
            # as a trial whose process ended.
            with contextlib.suppress(OSError):
                _interrupted(tuner, f"{ENVIRONMENT}: {fault}")
            raise fault from error
        if tuner.stop_reason:
            raise SearchStoppedError(tuner.stop_reason)

    def chief(self, n_trials: int, address: str = "127.0.0.1:0") -> Chief:
        """Serve this study's oracle to worker processes on ``address`` (port 0: a free one);
        while it serves, :meth:`records` reads the chief's oracle."""
        tuner = self._tuner(None, n_trials, None)
        self.serving = Chief(
            tuner, n_trials, self.config.retries, address, self._unserved, self.folder
        )
        return self.serving

    def _unserved(self) -> None:
        self.serving = None

    def records(self) -> Records:
        if self.serving is not None:
            # The chief writes the files as it goes: its oracle in memory is the consistent view.
            return counted(self.serving.oracle.snapshot(self.config.objective))
        if self._searched is not None:
            return self.ledger.look(list(self._searched.oracle.trials.values()))
        for attempt in range(5):
            try:
                tuner = self._tuner(None, 0, None)
                break
            except RuntimeError:
                # oracle.json named a trial whose file another process had not yet written.
                if attempt == 4:
                    raise
                time.sleep(0.2)
        if _compat.is_worker(tuner):
            # A worker host keeps no trials: they are in the chief's project folder.
            return counted([])
        return self.ledger.look(list(tuner.oracle.trials.values()))

    def hyperparameters(self, record: TrialRecord) -> Any:
        tuner = self._searched or self._tuner(None, 0, None)
        return tuner.oracle.get_trial(_trial_id(tuner, record.number)).hyperparameters

    def enqueue(self, configurations: list[dict[str, Any]]) -> None:
        self.queue = list(configurations)

    def native(self) -> Any:
        return self._tuner(None, 0, None)

    def optuna_study(self) -> optuna.Study:
        if self._view is None:
            optuna.logging.set_verbosity(optuna.logging.ERROR)
            self._view = optuna.create_study(
                study_name=self.config.study_name,
                direction="minimize" if self.config.direction == "min" else "maximize",
            )
        return self._view

    def frozen_trial(self, record: TrialRecord) -> optuna.trial.FrozenTrial:
        return frozen_trial(record)


class _HyperModel(keras_tuner.HyperModel):
    """A :class:`search.Space` as the HyperModel keras-tuner's tuners expect."""

    def __init__(self, space: Space) -> None:
        super().__init__(name=space.name)
        self.space = space

    def build(self, hp: Any) -> Any:
        return self.space.build(hp)

    def declare_hyperparameters(self, hp: Any) -> None:
        self.space.declare_hyperparameters(hp)


class _Tuner(base_tuner.BaseTuner):
    objective_fn: Objective | None = None
    on_trial: Callable[[list[TrialRecord]], None] | None = None
    seed = 0
    max_failures = 0
    stop_reason: str | None = None
    deadline: float | None = None
    charged_budget: float | None = None
    population = 1
    trained: dict[str, Outcome] | None = None  # a population's outcomes, by trial id
    ledger: Ledger[Any] | None = None  # the engine's: it outlives the tuner

    def search(self, *args: Any, **kwargs: Any) -> None:
        """keras-tuner's loop; with ``population`` > 1 the oracle hands out that many trials
        at once (one tuner id each, as it would to that many workers), which the objective
        trains together before each is recorded as keras-tuner records a trial."""
        if self.population == 1 or _compat.is_worker(self):
            super().search(*args, **kwargs)
            return
        self.on_search_begin()
        stopped = False
        while not stopped:
            trials = []
            for slot in range(self.population):
                self.pre_create_trial()
                trial = self.oracle.create_trial(f"{self.tuner_id}-{slot}")
                stopped = trial.status == TrialStatus.STOPPED
                if stopped or trial.status == TrialStatus.IDLE:
                    # IDLE: Hyperband's round waits for the trials already handed out.
                    break
                trials.append(trial)
            if not trials:
                continue
            assert self.objective_fn is not None
            outcomes = self.objective_fn([self._asked(trial) for trial in trials])
            self.trained = {trial.trial_id: o for trial, o in zip(trials, outcomes, strict=True)}
            for trial in trials:
                self.on_trial_begin(trial)
                _compat.run_and_update_trial(self, trial)  # run_trial reads the outcome
                self.on_trial_end(trial)
            self.trained = None
        self.on_search_end()

    def _asked(self, trial: Any) -> Asked:
        number = int(trial.trial_id)
        # Hyperband sets the epochs of each trial; it starts from scratch rather than from
        # a checkpoint of the trial it continues, so no model files are written per trial.
        epochs = trial.hyperparameters.values.get("tuner/epochs")
        return Asked(trial.hyperparameters, number, trial_seed(self.seed, number), None, epochs)

    def run_trial(self, trial: Any, *args: Any, **kwargs: Any) -> dict[str, float]:
        assert self.objective_fn is not None
        asked = self._asked(trial)
        if self.trained is not None:
            outcome = self.trained[trial.trial_id]
        else:
            beating = self.oracle.beating if isinstance(self.oracle, Client) else no_beats
            with beating(trial.trial_id):
                try:
                    outcome = self.objective_fn([asked])[0]
                except Exception as error:
                    # keras-tuner would record any error as the configuration's failure;
                    # a failure of the environment ends the search instead.
                    fault = environment_fault(error)
                    if fault is None:
                        raise
                    raise _EnvironmentStopError(str(fault)) from fault
        if isinstance(outcome, TooLargeError):
            # Failed without training, as keras-tuner's max_model_size fails a trial.
            trial.metrics.update("n_params", outcome.params)
        if isinstance(outcome, TrialFailedError):
            raise keras_tuner.errors.FailedTrialError(str(outcome)) from None
        if isinstance(outcome, Exception):
            # The user's code raised: the trial fails where it raised (keras-tuner would
            # record the whole traceback as its message), as on the Optuna engine.
            failed(asked.number, outcome)
            raise keras_tuner.errors.FailedTrialError(raised_at(outcome)) from None
        # The stored fields are kept as metrics: keras-tuner's trial has no other place.
        return {
            **outcome.metrics,
            self.oracle.objective.name: outcome.value,
            **trained_fields(outcome),
            "seconds": outcome.seconds,
            "seed": asked.seed,
            # A trial charged to a simulated clock (a lookup) keeps its real seconds beside.
            **({} if outcome.wall_seconds is None else {"wall_seconds": outcome.wall_seconds}),
        }

    def on_trial_end(self, trial: Any) -> None:
        if _compat.is_worker(self):
            # The chief records the trial and saves the project folder; the stop rule is its.
            self.oracle.end_trial(trial)
            return
        super().on_trial_end(trial)
        assert self.ledger is not None, "the engine sets the ledger"
        records = self.ledger.look(list(self.oracle.trials.values()))
        if self.on_trial is not None:
            self.on_trial(records)
        self.stop_reason = too_many_failures(records, self.max_failures)
        if self.stop_reason or out_of_time(self.deadline, self.charged_budget, records):
            # The oracle answers STOPPED once it holds max_trials trials.
            self.oracle.max_trials = len(self.oracle.trials)

    def tuner_file(self) -> Path:
        """The tuner's file in the project folder: one name whatever KERASTUNER_TUNER_ID says,
        as a chief started with the variables and a later run or `leaderboard` without them
        must find (and reload) one study."""
        return Path(str(self.project_dir)) / "tuner0.json"

    def _get_tuner_fname(self) -> str:  # keras-tuner's (see search/_compat.py)
        return str(self.tuner_file())

    def save(self) -> None:
        if _compat.is_worker(self):
            return  # the chief's process owns the project folder
        self.oracle.save()
        write_text(self.tuner_file(), json.dumps(self.get_state()))

    def save_model(self, trial_id: str, model: Any, step: int = 0) -> None:
        """Models are not saved per trial: the best ones are retrained after the search."""

    def load_model(self, trial: Any) -> None:
        raise NotImplementedError("models are retrained from their hyperparameters")


class _EnvironmentStopError(keras_tuner.errors.FatalError, SearchBaseError):
    """An environment fault inside a trial: keras-tuner lets a FatalError end its search."""


def _interrupted(tuner: _Tuner, message: str) -> None:
    """Keep the running trials "ongoing", to run again on resume, with why they stopped."""
    tuner.oracle.keep_ongoing(message)
    # The tuner's file too: without it (no trial had ended yet) nothing reloads.
    tuner.save()


def _damaged_file(project: Path) -> EnvironmentFaultError | None:
    """The first JSON file of a keras-tuner project folder that does not decode, if any."""
    for path in sorted(project.rglob("*.json")):
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as error:
            return EnvironmentFaultError(
                f"the keras-tuner file {path} is damaged ({error}); keras-tuner cannot "
                "read the study without it: restore the file from a backup, or start the "
                "study over with --fresh (the old one is moved aside)"
            )
    return None


def _trial_id(tuner: _Tuner, number: int) -> str:
    for trial_id in tuner.oracle.trials:
        if int(trial_id) == number:
            return str(trial_id)
    raise KeyError(number)
