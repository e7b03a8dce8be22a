"""Running a benchmark's studies: one after another, or ``jobs`` at once in processes (on a
Dask cluster: :mod:`search.bench.job`).

Each (contender, seed) of a benchmark entry is an ordinary study (see :func:`make_study`).
A study that has used its budget is skipped, an unfinished one resumes, so a benchmark or
a suite run again continues where it stopped. With ``jobs`` > 1 every study runs in one of
``jobs`` spawned processes, each holding its share of the cores; the parent only waits,
prints a line per finished study, and reads every result back from the studies' storage.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from search.bench.config import BenchConfig
from search.engines.optuna.storage import buffered
from search.engines.records import RUNNING, TrialRecord, budget_used
from search.errors import EnvironmentFaultError, SearchError
from search.files import holding_allowed, read_json, synced_at_end, write_json
from search.study.api import Study
from search.study.stored import open_stored
from search.study.workers import thread_env
from search.tasks import load_task
from search.tasks.task import Task

# With a time budget the trial count is only a safety cap.
TRIAL_CAP = 100_000
TIMELINE = "timeline.json"  # per study: when each trial ended, and the budget it ran under


@dataclass(frozen=True)
class StudyJob:
    """One study of a benchmark, as a process can rebuild it: nothing but names and numbers."""

    config: BenchConfig
    task: str
    task_options: tuple[tuple[str, Any], ...]
    contender: str
    seed: int


def study_name(contender: str, seed: int) -> str:
    engine, algorithm = contender.split(":")
    return f"{engine}-{algorithm}-seed{seed}"


def make_study(config: BenchConfig, task: Task, contender: str, seed: int) -> Study:
    """The study of ``contender`` with ``seed``, under the benchmark's own results root."""
    engine, algorithm = contender.split(":")
    return Study(
        task,
        config.space,
        engine=engine,
        algorithm=algorithm,
        pruner=config.pruner if engine == "optuna" else "none",
        objective=config.objective,
        name=study_name(contender, seed),
        out=config.folder / "studies",
        seed=seed,
        epochs=config.settings.epochs,
        patience=config.settings.patience,
        cv=config.settings.cv,
        validation_split=config.settings.validation_split,
        # Only the model that validation selects is scored on the test split, as one
        # retraining (the recorded benchmark in the README predates ensembles).
        top_k=1,
        ensemble=1,
        ensemble_size=0,
        # A tabular task's trial is a one-point lookup: writing its TensorBoard run would
        # take longer than the search (docs/benchmark-suites.md).
        tensorboard=config.tensorboard and not task.spec.table,
        max_failures=config.max_failures,
        trainer=config.trainer,
    )


def read_timeline(study: Study) -> dict[str, Any]:
    path = study.folder / TIMELINE
    return read_json(path) if path.exists() else {}


def records(study: Study) -> list[TrialRecord]:
    """Every trial of a stored study, read from its engine's storage (no trial is run)."""
    return open_stored(study.folder)[0].records()


def finished(config: BenchConfig, study: Study) -> bool:
    """Whether a run ended under this budget: its trials used up, or its time spent."""
    timeline = read_timeline(study)
    if not timeline.get("finished") or timeline.get("budget") != config.budget:
        return False
    return config.trials is None or budget_used(records(study)) >= config.trials


def run_one(config: BenchConfig, study: Study, progress: bool = True) -> str | None:
    """Run one study; record when each trial ended, counted from the study's start.

    A resumed study continues its clock where its last finished trial left it, so the time
    of a trial that was interrupted is not counted. A tabular task's clock is simulated: its
    trials' recorded training seconds (:func:`compare.run_table` adds them up), so no wall
    time is recorded, and its budget counts every trial the study holds.
    Returns why it stopped early, or None.
    """
    elapsed: dict[str, float] = dict(read_timeline(study).get("elapsed", {}))
    start = time.time() - max(elapsed.values(), default=0.0)
    simulated = bool(study.task.spec.table)
    timeout = config.time_budget if simulated else None
    if config.time_budget is not None and not simulated:
        # A budget already spent: no trial starts, and the study is scored as it stands.
        timeout = max(start + config.time_budget - time.time(), 1e-6)

    def save(done: bool) -> None:
        write_json(
            study.folder / TIMELINE,
            {"budget": config.budget, "elapsed": elapsed, "finished": done},
        )

    def on_trial(trials: list[TrialRecord]) -> None:
        if simulated:
            return  # its clock is in its trials: nothing to record until it ends
        now = time.time() - start
        for record in trials:
            if record.state != RUNNING and str(record.number) not in elapsed:
                elapsed[str(record.number)] = round(now, 3)
        save(False)

    # A tabular study's trials are lookups: its journal and keras-tuner's oracle files are
    # written once, and its files synced once, as it ends (it runs again if the machine
    # fails meanwhile).
    with (
        buffered() if simulated else contextlib.nullcontext(),
        holding_allowed() if simulated else contextlib.nullcontext(),
        synced_at_end() if simulated else contextlib.nullcontext(),
    ):
        result = study.run(
            config.trials or TRIAL_CAP, timeout=timeout, on_trial=on_trial, progress=progress
        )
    save(True)
    return result.stopped


def run_studies(
    work: list[tuple[BenchConfig, Study]],
    jobs: int = 1,
    say: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
) -> list[str]:
    """Run every unfinished study of ``work``; returns ``study: reason`` for each that
    stopped before its budget. ``say`` gets a line per finished study when ``jobs`` > 1.
    (On a Dask cluster: :func:`search.bench.job.run_on_cluster`.)"""
    pending = [(config, study) for config, study in work if not finished(config, study)]
    if jobs == 1 or len(pending) <= 1:
        stopped = []
        for config, study in pending:
            reason = run_one(config, study)
            if reason:
                stopped.append(f"{_label(config, study)}: {reason}")
        return stopped
    return _in_processes(pending, jobs, say)


def check_jobs(jobs: int, tasks: list[Task], cluster: str | None = None) -> None:
    """Refuse ``jobs`` that cannot run: a count below 1, or a task a process (a --jobs one
    or a task on a Dask ``cluster``) cannot load."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise SearchError(f"jobs must be a positive integer, got {jobs!r}")
    why = "a cluster needs" if cluster is not None else "jobs > 1 need" if jobs > 1 else None
    if why and any(task.source is None for task in tasks):
        raise SearchError(
            f"{why} tasks that processes can load: built-in tasks or CSV files (a task "
            "made from arrays or a DataFrame cannot be sent to another process)"
        )


def _label(config: BenchConfig, study: Study) -> str:
    return f"{config.folder.name}/{study.name}"


def _in_processes(pending: list[tuple[BenchConfig, Study]], jobs: int, say: Any) -> list[str]:
    # Imported here: only a parallel run needs process pools.
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    work = [as_job(config, study) for config, study in pending]
    stopped = []
    # Spawned, not forked: a fork of a process that has loaded TensorFlow can deadlock.
    pool = ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_share_cores,
        initargs=(jobs,),
    )
    try:
        running = {pool.submit(run_job, job): label for job, label in work}
        done_count = 0
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                label = running.pop(future)
                try:
                    reason, trials, seconds = future.result()
                except BrokenProcessPool:
                    # A job process was killed (by a signal, or for memory): every trial
                    # that finished is in its study's storage, and the same command resumes.
                    # Which one is not known: the pool fails every study it was running.
                    raise EnvironmentFaultError(
                        "a job process ended abruptly (killed, or out of memory?); the "
                        "studies' finished trials are kept: run the same command again to "
                        "resume"
                    ) from None
                done_count += 1
                say(done_line(done_count, len(work), label, reason, trials, seconds))
                if reason:
                    stopped.append(f"{label}: {reason}")
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return stopped


def as_job(config: BenchConfig, study: Study) -> tuple[StudyJob, str]:
    """The study as a job another process can rebuild (its paths absolute), and its label."""
    name, options = study.task.source or (study.config.task, {})
    if options.get("data"):  # a csv task's file, from another working directory
        options = options | {"data": str(Path(options["data"]).resolve())}
    contender = f"{study.config.engine}:{study.config.algorithm}"
    home = config.home.resolve() if config.home is not None else None
    moved = replace(config, out=config.out.resolve(), home=home)
    job = StudyJob(
        moved, name, tuple(sorted(options.items())), contender, study.config.settings.seed
    )
    return job, _label(config, study)


def done_line(
    count: int, total: int, label: str, reason: str | None, trials: int, seconds: float
) -> str:
    return f"[{count}/{total}] {label}: {trials} trials in {seconds:.1f} s" + (
        f" (stopped: {reason})" if reason else ""
    )


def _share_cores(jobs: int) -> None:
    """In each job process, before Keras loads: TensorFlow, XLA and BLAS get this process's
    share of the cores (numpy is loaded already, so its BLAS is capped through threadpoolctl)."""
    env = thread_env(jobs)
    os.environ.update(env)
    from threadpoolctl import threadpool_limits

    threadpool_limits(int(env["OMP_NUM_THREADS"]))


@functools.lru_cache(maxsize=8)
def _task(name: str, options: str) -> Task:
    return load_task(name, **json.loads(options))


def run_job(job: StudyJob) -> tuple[str | None, int, float]:
    """In a job process: rebuild the study, run it; (why it stopped, its trials, seconds)."""
    task = _task(job.task, json.dumps(dict(job.task_options), sort_keys=True))
    study = make_study(job.config, task, job.contender, job.seed)
    started = time.time()
    reason = run_one(job.config, study, progress=False)
    return reason, budget_used(records(study)), time.time() - started
