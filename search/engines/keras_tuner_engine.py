"""The keras-tuner engine: a keras-tuner oracle and a tuner whose trials run our trainer.

The tuner's ``run_trial`` calls the harness's objective instead of ``model.fit``, so both
engines train the same way; the oracle and its project folder (``oracle.json`` and one
``trial.json`` per trial) stay keras-tuner's own and are the study's storage.

Several workers use keras-tuner's chief/worker mode: a :class:`Chief` serves the one oracle
over gRPC, and each worker process's tuner is a client of it (``KERASTUNER_TUNER_ID``,
``KERASTUNER_ORACLE_IP``, ``KERASTUNER_ORACLE_PORT``). Workers beat while they train, and the
chief ends the trial of a worker whose process is gone or whose beats stopped.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import keras_tuner
import optuna
from keras_tuner.engine import base_tuner
from keras_tuner.src import config as keras_tuner_config
from keras_tuner.src import protos
from keras_tuner.src.distribute import oracle_chief, oracle_client
from keras_tuner.src.engine import trial as trial_module

from search.engines.base import (
    ENVIRONMENT,
    INTERRUPTED,
    Asked,
    EngineConfig,
    Objective,
    TrialRecord,
    heartbeat,
    past,
)
from search.engines.ledger import Ledger, Records, counted, too_many_failures
from search.engines.optuna_view import frozen_trial
from search.errors import (
    EnvironmentFaultError,
    SearchBaseError,
    SearchError,
    SearchStoppedError,
    TooLargeError,
    TrialFailedError,
    environment_fault,
)
from search.files import write_text
from search.space import Space
from search.trainers.base import Outcome, trial_seed

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
# A trial in one of these states never changes again (a RUNNING one may be run again).
_FINISHED = ("COMPLETED", "FAILED", "INVALID", "STOPPED")
_EXTRAS = ("epochs", "best_epoch", "n_params", "seconds", "seed")

# Chief/worker mode. The environment variables are keras-tuner's own.
TUNER_ID, ORACLE_IP, ORACLE_PORT = (
    "KERASTUNER_TUNER_ID",
    "KERASTUNER_ORACLE_IP",
    "KERASTUNER_ORACLE_PORT",
)
HEARTBEAT_SECONDS = 5.0  # a worker's beat while it trains
GRACE_SECONDS = 20.0  # the chief fails a trial whose worker has not beaten for this long
_CALL_SECONDS = 120.0  # a vanished chief ends its workers instead of blocking them for an hour
_IDLE_SECONDS = 1.0  # keras-tuner asks again at once after IDLE: wait instead of spinning
# gRPC metadata: the calling tuner, and the message of a failed trial (keras-tuner's Trial
# proto has no message field, so a diverging trial's reason would be lost on the way).
_TUNER_KEY = "search-tuner"
_ENQUEUED = "search_enqueued"  # oracle.json: the configurations proposed first so far
_MESSAGE_KEY = "search-message-bin"
_MESSAGE_CHARS = 2000


class KerasTunerEngine:
    def __init__(self, config: EngineConfig, space: Space | None, folder: Path) -> None:
        self.config = config
        # keras-tuner runs a HyperModel; reading a study's trials back needs none.
        self.hypermodel = None if space is None else _HyperModel(space)
        self.folder = folder
        self.serving: Chief | None = None  # while this process is the chief of workers
        self._view: optuna.Study | None = None
        self.queue: list[dict[str, Any]] = []  # configurations the oracle proposes first
        self.ledger = Ledger[Any](
            lambda trial: _record(trial, config.objective), lambda t: t.status in _FINISHED
        )

    def _tuner(
        self,
        objective: Objective | None,
        n_trials: int,
        on_trial: Callable[[list[TrialRecord]], None] | None,
    ) -> _Tuner:
        oracle = _oracle(self.config, n_trials)
        # keras-tuner prints "Reloading Tuner ..." and a per-trial display: the CLI has its own.
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                tuner = _Tuner(oracle, self.hypermodel, str(self.folder), PROJECT)
        except ValueError:  # JSONDecodeError: a file of the project folder is damaged
            damaged = _damaged_file(self.folder / PROJECT)
            if damaged is None:
                raise
            raise damaged from None
        if tuner._is_worker():
            # keras-tuner made its own client of the chief; ours adds beats and messages.
            tuner.oracle = _Client(tuner.oracle._oracle)
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
        tuner = self._tuner(objective, n_trials, on_trial)
        if tuner._is_worker():
            # A worker of a chief: the chief holds the budget, the retries and the stop rule.
            with contextlib.redirect_stdout(io.StringIO()):
                tuner.search()
            return
        tuner.max_failures = self.config.max_failures
        # Hyperband has no trial budget of its own; every oracle honours max_trials.
        tuner.oracle.max_trials = n_trials
        _resolve_interrupted(tuner.oracle, self.config.retries)
        tuner.deadline = self.config.deadline
        if past(tuner.deadline):
            return
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                tuner.search()
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
        """Serve this study's oracle to worker processes on ``address`` (port 0: a free one)."""
        return Chief(self, n_trials, address)

    def records(self) -> Records:
        if self.serving is not None:
            # The chief writes the files as it goes: its oracle in memory is the consistent view.
            return counted(self.serving.oracle.snapshot(self.config.objective))
        for attempt in range(5):
            try:
                tuner = self._tuner(None, 0, None)
                break
            except RuntimeError:
                # oracle.json named a trial whose file another process had not yet written.
                if attempt == 4:
                    raise
                time.sleep(0.2)
        if tuner._is_worker():
            # A worker host keeps no trials: they are in the chief's project folder.
            return counted([])
        return self.ledger.look(list(tuner.oracle.trials.values()))

    def hyperparameters(self, record: TrialRecord) -> Any:
        tuner = self._tuner(None, 0, None)
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
    population = 1
    trained: dict[str, Outcome] | None = None  # a population's outcomes, by trial id
    ledger: Ledger[Any] | None = None  # the engine's: it outlives the tuner

    def search(self, *args: Any, **kwargs: Any) -> None:
        """keras-tuner's loop; with ``population`` > 1 the oracle hands out that many trials
        at once (one tuner id each, as it would to that many workers), which the objective
        trains together before each is recorded as keras-tuner records a trial."""
        if self.population == 1 or self._is_worker():
            super().search(*args, **kwargs)
            return
        self.on_search_begin()
        stopped = False
        while not stopped:
            trials = []
            for slot in range(self.population):
                self.pre_create_trial()
                trial = self.oracle.create_trial(f"{self.tuner_id}-{slot}")
                stopped = trial.status == trial_module.TrialStatus.STOPPED
                if stopped or trial.status == trial_module.TrialStatus.IDLE:
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
                self._try_run_and_update_trial(trial)  # run_trial reads the outcome
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
            beating = self.oracle.beating if isinstance(self.oracle, _Client) else _no_beats
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
            raise outcome
        result, seed = outcome, asked.seed
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
        if self._is_worker():
            # The chief records the trial and saves the project folder; the stop rule is its.
            self.oracle.end_trial(trial)
            return
        super().on_trial_end(trial)
        assert self.ledger is not None, "the engine sets the ledger"
        records = self.ledger.look(list(self.oracle.trials.values()))
        if self.on_trial is not None:
            self.on_trial(records)
        self.stop_reason = too_many_failures(records, self.max_failures)
        if self.stop_reason or past(self.deadline):
            # The oracle answers STOPPED once it holds max_trials trials.
            self.oracle.max_trials = len(self.oracle.trials)

    def _get_tuner_fname(self) -> str:
        # One name whatever KERASTUNER_TUNER_ID says: a chief started with the variables
        # and a later run or `leaderboard` without them must find (and reload) one study.
        return os.path.join(str(self.project_dir), "tuner0.json")

    def save(self) -> None:
        if self._is_worker():
            return  # the chief's process owns the project folder
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
                    return {"status": trial_module.TrialStatus.RUNNING, "values": values}
            return dict(super().populate_space(trial_id))

        def get_state(self) -> dict[str, Any]:
            return dict(super().get_state()) | {_ENQUEUED: sorted(self.given)}

        def set_state(self, state: dict[str, Any]) -> None:
            super().set_state(state)
            self.given = set(state.get(_ENQUEUED, []))

        def save(self) -> None:
            write_text(Path(self._get_oracle_fname()), json.dumps(self.get_state()))

        def _save_trial(self, trial: Any) -> None:
            path = Path(self._get_trial_dir(trial.trial_id)) / "trial.json"
            write_text(path, json.dumps(trial.get_state()))

        @keras_tuner.synchronized
        def create_trial(self, tuner_id: str) -> Any:
            if self.serving and self._waits(tuner_id):
                return trial_module.Trial(self.get_space(), trial_id="", status="IDLE")
            return super().create_trial(tuner_id)

        def _waits(self, tuner_id: str) -> bool:
            """The budget is used but another worker's trial runs: it may yet need a rerun.

            keras-tuner would answer STOPPED, and the worker would leave before the trial of
            a worker that died could be run again.
            """
            return (
                bool(self.max_trials)
                and len(self.trials) >= self.max_trials
                and not self._retry_queue
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
        def interrupt(self, tuner_id: str, reason: str, retries: int) -> str | None:
            """End the running trial of a worker that is gone: queue it again or fail it."""
            trial = self.ongoing_trials.pop(tuner_id, None)
            self.tuner_ids.discard(tuner_id)
            if trial is None:
                return None
            self._run_times[trial.trial_id] += 1
            attempt = _attempt(trial.message)
            if attempt <= retries:
                trial.message = f"{INTERRUPTED}: {reason}; run again (attempt {attempt + 1})"
                self._retry_queue.append(trial.trial_id)
            else:
                trial.status = "FAILED"
                trial.message = f"{INTERRUPTED}: {reason}"
                self.end_order.append(trial.trial_id)
            self._save_trial(trial)
            self.save()
            return str(trial.trial_id)

        @keras_tuner.synchronized
        def snapshot(self, objective: str) -> list[TrialRecord]:
            return [_record(t, objective) for _, t in sorted(self.trials.items())]

        @keras_tuner.synchronized
        def stop_new_trials(self) -> None:
            self.max_trials = len(self.trials)

        @keras_tuner.synchronized
        def done(self) -> bool:
            """Every trial of the budget has ended and none waits for a rerun."""
            return (
                len(self.trials) >= (self.max_trials or 0)
                and not self.ongoing_trials
                and not self._retry_queue
            )

    Atomic.__name__ = f"Atomic{oracle.__name__}"
    return Atomic


class Chief:
    """The study's oracle served over gRPC to worker processes, from the harness's process.

    keras-tuner's own chief (``search()`` under ``KERASTUNER_TUNER_ID=chief``) blocks, binds
    a port given in advance and never notices a worker that died. This one binds a free port
    (or the address given), runs in a background thread pool until :meth:`close`, and the
    harness ends the trial of a dead worker with :meth:`interrupt`; a worker on another host
    that stops beating is caught by :meth:`check_heartbeats`.
    """

    def __init__(self, engine: KerasTunerEngine, n_trials: int, address: str) -> None:
        tuner = engine._tuner(None, n_trials, None)
        self.oracle = tuner.oracle
        self.oracle.max_trials = n_trials
        self.oracle.serving = True
        self.retries = engine.config.retries
        _resolve_interrupted(self.oracle, self.retries)
        # The project folder gets the tuner's file too, so that records() reloads the oracle.
        tuner.save()
        self.beats: dict[str, float] = {}
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        protos.get_service_grpc().add_OracleServicer_to_server(
            _Servicer(self.oracle, self.beats), self.server
        )
        try:
            self.port = self.server.add_insecure_port(address)
        except RuntimeError:
            self.port = 0
        if not self.port:
            raise SearchError(f"cannot serve the keras-tuner oracle on {address} (port in use?)")
        self.server.start()
        self.engine = engine
        engine.serving = self

    def worker_env(self, tuner_id: str, host: str = "127.0.0.1") -> dict[str, str]:
        """keras-tuner's environment variables for a worker of this chief."""
        return {TUNER_ID: tuner_id, ORACLE_IP: host, ORACLE_PORT: str(self.port)}

    def interrupt(self, tuner_id: str, reason: str) -> str | None:
        """Fail (or, with retries left, queue again) the trial ``tuner_id`` was running."""
        return self.oracle.interrupt(tuner_id, reason, self.retries)

    def check_heartbeats(self, grace: float = GRACE_SECONDS) -> list[str]:
        """Interrupt the trials whose workers have not beaten for ``grace`` seconds."""
        now = time.monotonic()
        late = [t for t in list(self.oracle.ongoing_trials) if now - self.beats.get(t, now) > grace]
        return [
            trial
            for trial in (self.interrupt(t, "worker stopped (no heartbeat)") for t in late)
            if trial
        ]

    def stop_new_trials(self) -> None:
        """Start no more trials (the running ones finish): the search stopped itself."""
        self.oracle.stop_new_trials()

    def done(self) -> bool:
        return bool(self.oracle.done())

    def mark_interrupted(self) -> None:
        """Ctrl-C: the running trials stay ongoing, so that a resume runs them again."""
        for trial in list(self.oracle.ongoing_trials.values()):
            trial.message = f"{INTERRUPTED}: Ctrl-C"
            self.oracle._save_trial(trial)
        self.oracle.save()

    def close(self) -> None:
        self.server.stop(grace=None).wait()
        self.engine.serving = None


class _Servicer(oracle_chief.OracleServicer):
    """keras-tuner's servicer, noting each worker's beats and keeping failure messages."""

    def __init__(self, oracle: Any, beats: dict[str, float]) -> None:
        super().__init__(oracle)
        self.beats = beats

    def _beat(self, tuner_id: str | None) -> None:
        if tuner_id:
            self.beats[tuner_id] = time.monotonic()

    def CreateTrial(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC's name
        self._beat(request.tuner_id)
        with _quiet():
            return super().CreateTrial(request, context)

    def GetTrial(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC's name
        self._beat(_metadata(context).get(_TUNER_KEY))
        with _quiet():
            return super().GetTrial(request, context)

    def UpdateTrial(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC's name
        with _quiet():
            return super().UpdateTrial(request, context)

    def GetSpace(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC's name
        with _quiet():
            return super().GetSpace(request, context)

    def GetBestTrials(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC's name
        with _quiet():
            return super().GetBestTrials(request, context)

    def EndTrial(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC's name
        metadata = _metadata(context)
        trial = trial_module.Trial.from_proto(request.trial)
        message = metadata.get(_MESSAGE_KEY, b"")
        trial.message = message.decode(errors="replace") if isinstance(message, bytes) else None
        tuner_id = metadata.get(_TUNER_KEY)
        self._beat(tuner_id)
        # A worker that was given up on (no heartbeat) may still report: its trial was
        # already failed or handed to another worker, so the late report is dropped.
        self.oracle.end_owned(tuner_id, trial)
        return protos.get_service().EndTrialResponse()


_QUIET = threading.Lock()


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """keras-tuner 1.4.8 prints every condition it serialises (``Parent.to_proto``).

    stdout is process-wide: the lock keeps the server's threads from restoring each other's
    replacement, and the harness's own thread writes only to stderr while workers run.
    """
    with _QUIET, contextlib.redirect_stdout(io.StringIO()):
        yield


def _metadata(context: Any) -> dict[str, Any]:
    return dict(context.invocation_metadata() or ())


class _Client(oracle_client.OracleClient):
    """keras-tuner's client of the chief, with our tuner id on its calls, the message of a
    failed trial, beats while a trial trains, and a deadline on every call."""

    def __init__(self, oracle: Any) -> None:
        super().__init__(oracle)
        self.metadata: tuple[tuple[str, Any], ...] = ((_TUNER_KEY, self.tuner_id),)

    def _call(self, method: str, request: Any, *extra: tuple[str, Any]) -> Any:
        return getattr(self.stub, method)(
            request, wait_for_ready=True, timeout=_CALL_SECONDS, metadata=self.metadata + extra
        )

    def create_trial(self, tuner_id: str) -> Any:
        request = protos.get_service().CreateTrialRequest(tuner_id=tuner_id)
        trial = trial_module.Trial.from_proto(self._call("CreateTrial", request).trial)
        if trial.status == trial_module.TrialStatus.IDLE:
            time.sleep(_IDLE_SECONDS)
        return trial

    def get_trial(self, trial_id: str) -> Any:
        request = protos.get_service().GetTrialRequest(trial_id=trial_id)
        return trial_module.Trial.from_proto(self._call("GetTrial", request).trial)

    def end_trial(self, trial: Any) -> None:
        message = str(trial.message or "")[-_MESSAGE_CHARS:].encode()
        request = protos.get_service().EndTrialRequest(trial=trial.to_proto())
        self._call("EndTrial", request, (_MESSAGE_KEY, message))

    @contextlib.contextmanager
    def beating(self, trial_id: str) -> Iterator[None]:
        """Beat to the chief every few seconds while the trial trains."""

        def beat() -> None:
            # A missed beat is not an error: the next one (or the grace period) decides.
            with contextlib.suppress(grpc.RpcError):
                self.get_trial(trial_id)

        with heartbeat(beat, HEARTBEAT_SECONDS):
            yield


@contextlib.contextmanager
def _no_beats(trial_id: str) -> Iterator[None]:
    yield


def chief_address() -> tuple[str, str] | None:
    """(bind address, address workers dial) when this process is a chief by environment."""
    if os.environ.get(TUNER_ID) != "chief" or ORACLE_IP not in os.environ:
        return None
    host, port = os.environ[ORACLE_IP], os.environ.get(ORACLE_PORT, "")
    # Workers on this host dial the loopback when the chief listens on every interface.
    dial = "127.0.0.1" if host in ("0.0.0.0", "::", "[::]") else host
    return f"{host}:{port}", dial


class _EnvironmentStopError(keras_tuner.errors.FatalError, SearchBaseError):
    """An environment fault inside a trial: keras-tuner lets a FatalError end its search."""


def _interrupted(tuner: _Tuner, message: str) -> None:
    """Keep the running trials "ongoing", to run again on resume, with why they stopped."""
    for trial in tuner.oracle.ongoing_trials.values():
        trial.message = message
        tuner.oracle._save_trial(trial)
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


def _resolve_interrupted(oracle: Any, retries: int) -> None:
    """Trials that were running when the last process ended: run again or mark failed.

    keras-tuner queues them to run again under the same trial id. That is kept while the
    trial has attempts left (``--retries``), or when the environment interrupted it;
    otherwise the trial ends as failed.
    """
    for trial_id in list(oracle._retry_queue):
        trial = oracle.trials[trial_id]
        attempt = _attempt(trial.message)
        if (trial.message or "").startswith(ENVIRONMENT):
            # Runs again without using up an attempt; killed in that run, it ends as below.
            trial.message = f"{INTERRUPTED}: run again ({trial.message})"
        elif attempt <= retries:
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
