"""Worker processes: ``--workers N`` runs N of them on this machine over one study's storage.

The parent only watches the shared storage (the progress bar) and scores the study once
every worker is done. Each worker is a fresh ``python -m search.study.worker`` process whose
thread pools are sized so that N workers share the cores instead of oversubscribing them;
it reads its study (and, for keras-tuner, its chief's address) on stdin. Where the engine
has a chief (keras-tuner), the parent is also the chief: it serves the oracle and ends the
trials of dead workers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from search.engines.base import Engine, out_of_time
from search.engines.records import TrialRecord, too_many_failures
from search.study.config import StudyConfig, to_json
from search.study.launch import threads_env

if TYPE_CHECKING:
    from search.engines.base import Chief

POLL_SECONDS = 1.0
WORKER_INDEX = "SEARCH_WORKER"


def thread_env(workers: int) -> dict[str, str]:
    """Environment that caps TensorFlow, XLA, BLAS and numba threads at this worker's share."""
    return threads_env((os.cpu_count() or 1) // workers)


def uses_workers(config: StudyConfig) -> bool:
    """Whether worker processes run the trials: several of them, any on a Dask cluster, or
    keras-tuner with a chief in the environment (several hosts), where even one worker must
    be a client of it."""
    return (
        config.workers > 1
        or config.cluster is not None
        or (config.engine == "keras-tuner" and "KERASTUNER_ORACLE_IP" in os.environ)
    )


@dataclasses.dataclass
class _Worker:
    process: subprocess.Popen[str]
    log: Any  # a temporary file with the worker's stderr


# Workers started ahead of their study (see prestart), taken by the next run_workers.
_PRESTARTED: list[_Worker] = []


def prestart(workers: int) -> None:
    """Start ``workers`` worker processes now; the next :func:`run_workers` hands them work.

    A worker spends seconds of CPU importing TensorFlow before it can run a trial. Started
    before the parent's own import, the workers import alongside it instead of after it.
    A worker that never gets a study (the parent failed first) ends when its stdin closes.
    """
    _PRESTARTED[:] = _start(workers)


def _start(workers: int) -> list[_Worker]:
    env = os.environ | thread_env(workers)
    started = []
    for index in range(workers):
        # stderr goes to a file, not a pipe: a chatty worker must never block on a full pipe.
        log = tempfile.TemporaryFile("w+")  # noqa: SIM115 - run_workers closes it
        process = subprocess.Popen(
            [sys.executable, "-m", "search.study.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=log,
            # Its index, visible from outside (/proc/PID/environ): keras-tuner's tuner id of
            # this worker is worker<index>.
            env=env | {WORKER_INDEX: str(index)},
            text=True,
        )
        started.append(_Worker(process, log))
    return started


def _take(workers: int) -> list[_Worker]:
    """The prestarted workers if they fit (and none has ended), else fresh ones."""
    taken, _PRESTARTED[:] = list(_PRESTARTED), []
    if len(taken) == workers and all(w.process.poll() is None for w in taken):
        return taken
    for worker in taken:
        _stop(worker)
    return _start(workers)


def _stop(worker: _Worker) -> None:
    assert worker.process.stdin is not None
    worker.process.stdin.close()  # an empty study: the worker ends
    worker.process.wait()
    worker.log.close()


def run_workers(
    config: StudyConfig, engine: Engine, on_trial: Callable[[list[TrialRecord]], None]
) -> str | None:
    """Start ``config.workers`` workers, show progress from the storage, wait for them.

    Returns why the search stopped early (a worker's last line), or None. With a cluster,
    the workers are tasks on it (:mod:`search.study.cluster`).
    """
    if config.cluster is not None:
        # Imported here: only a study on a cluster loads Dask.
        from search.study.cluster import run_on_cluster

        return run_on_cluster(config, engine, on_trial)
    study = to_json(config, secrets=True)
    with contextlib.ExitStack() as stack:
        workers = _take(config.workers)
        for worker in workers:
            stack.callback(worker.log.close)
        if config.engine != "keras-tuner":
            payloads = [json.dumps({"config": study, "env": {}})] * len(workers)
            return _supervise(workers, payloads, engine, on_trial)
        return _supervise_with_chief(config, study, workers, engine, on_trial, stack)


def _supervise_with_chief(
    config: StudyConfig,
    study: dict[str, Any],
    workers: list[_Worker],
    engine: Engine,
    on_trial: Callable[[list[TrialRecord]], None],
    stack: contextlib.ExitStack,
) -> str | None:
    """keras-tuner's chief/worker mode: this process serves the oracle, the workers dial it.

    The chief listens on a free loopback port, or on ``KERASTUNER_ORACLE_IP:PORT`` when this
    process is the chief of several hosts (``KERASTUNER_TUNER_ID=chief``); then it also
    waits for the trials of the other hosts' workers. On a worker host
    (``KERASTUNER_TUNER_ID`` set to another name) there is no chief here: the workers dial
    the one in the environment.
    """
    # keras-tuner's names, imported here: an Optuna study's workers never load keras-tuner.
    from search.engines.keras_tuner.distribute import ORACLE_IP, TUNER_ID, chief_address

    def payloads(envs: list[dict[str, str]]) -> list[str]:
        # keras-tuner reads its variables when a tuner is made: the worker sets them first.
        return [json.dumps({"config": study, "env": env}) for env in envs]

    if os.environ.get(TUNER_ID, "chief") != "chief" and ORACLE_IP in os.environ:
        name = os.environ[TUNER_ID]
        envs = [{TUNER_ID: f"{name}-{i}"} for i in range(len(workers))]
        return _supervise(workers, payloads(envs), engine, on_trial)
    bind, dial = chief_address() or ("127.0.0.1:0", "127.0.0.1")
    chief: Chief | None = engine.chief(config.trials, bind)
    assert chief is not None, "keras-tuner's engine serves its oracle"
    stack.callback(chief.close)
    tuners = [f"worker{i}" for i in range(len(workers))]
    envs = [chief.worker_env(tuner, dial) for tuner in tuners]
    stopped: list[str] = []

    def watch(processes: list[Any], records: list[TrialRecord]) -> bool:
        # A worker that is gone (SIGKILL, a crash) leaves its trial to the chief to end.
        for tuner, process in zip(tuners, processes, strict=True):
            if process.returncode is not None:
                chief.interrupt(tuner, "process ended")
        chief.check_heartbeats()
        # A time budget: the running trials finish, no new one starts.
        if out_of_time(config.deadline, config.charged_budget, records):
            chief.stop_new_trials()
        reason = too_many_failures(records, config.failure_limit)
        if reason and not stopped:
            stopped.append(reason)
            chief.stop_new_trials()
        # Remote workers (several hosts) may still run trials when the local ones are done.
        return bool(chief_address()) and not chief.done() and not stopped

    try:
        reason = _supervise(workers, payloads(envs), engine, on_trial, watch)
    except KeyboardInterrupt:
        chief.mark_interrupted()
        raise
    return stopped[0] if stopped else reason


def _sleep_until_one_ends(processes: list[subprocess.Popen[str]], running: int) -> None:
    """Wait POLL_SECONDS, or less when a worker ends meanwhile: the study is scored (or the
    dead worker's trial ended) as soon as it is known, not at the next round."""
    deadline = time.monotonic() + POLL_SECONDS
    while time.monotonic() < deadline:
        if [process.poll() for process in processes].count(None) < running:
            return
        time.sleep(0.05)


def _supervise(
    workers: list[_Worker],
    payloads: list[str],
    engine: Engine,
    on_trial: Callable[[list[TrialRecord]], None],
    watch: Callable[[list[Any], list[TrialRecord]], bool] | None = None,
) -> str | None:
    """Hand each worker its study, show progress until all are done; ``watch`` sees each
    round (the processes, polled, and the records) and says whether to wait on when all
    are done."""
    processes = [worker.process for worker in workers]
    for process, payload in zip(processes, payloads, strict=True):
        assert process.stdin is not None
        process.stdin.write(payload)
        process.stdin.close()
    try:
        while True:
            # poll() every process each round: it also reaps a worker that was killed, whose
            # zombie would otherwise look alive to the others' dead-process check.
            running = [process.poll() for process in processes].count(None)
            records = engine.records()
            on_trial(records)
            wait_on = watch(processes, records) if watch is not None else False
            if not running and not wait_on:
                break
            _sleep_until_one_ends(processes, running)
    except KeyboardInterrupt:
        for process in processes:
            process.wait()
        raise
    on_trial(engine.records())
    reasons = []
    for process, log in ((worker.process, worker.log) for worker in workers):
        log.seek(0)
        lines = log.read().strip().splitlines()
        # A worker killed by a signal leaves its trial to the others; that is not a stop.
        if process.returncode > 0 and lines:
            reasons.append(lines[-1])
    return reasons[0] if reasons else None
