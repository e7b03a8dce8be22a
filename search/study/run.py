"""Running one study: from the first trial to the scored leaderboard.

Data flows one way: config -> task + space + engine -> for each batch of trials the engine
asks (one, or ``population`` of them): space.build(hp) -> the trainer's ``evaluate`` -> the
engine's storage -> leaderboard CSVs, test scores and ``best.keras``.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import gc
import importlib.metadata
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras

from search.engines import (
    Asked,
    Engine,
    EngineConfig,
    TrialRecord,
    open_engine,
)
from search.engines.base import COSTS, out_of_time
from search.engines.records import FAILED, INTERRUPTED, budget_used, counted
from search.errors import SearchStoppedError, TooLargeError
from search.faults import crash_point
from search.files import read_json, remove_stale_temporaries, write_json
from search.layout import BEST_MODEL, BEST_SUMMARY, STUDY_JSON, TENSORBOARD, TRIAL_TABLE
from search.results import tensorboard
from search.results.leaderboard import ensemble_weights, trial_table, write_csv, write_study_table
from search.space import Space, builder, check_written
from search.space_lookup import space_name
from search.study.config import StudyConfig, described
from search.study.scoring import ensemble_summary, score_top
from search.study.stored import summary_counts
from search.study.workers import run_workers, uses_workers
from search.tasks.task import Task
from search.trainers import Job, Outcome, TrainData, compile_ahead, get_trainer
from search.trainers.base import mean_curve
from search.trainers.checkpoint import Checkpoint, Every
from search.trainers.checkpoint import path_of as checkpoint_path


@dataclass
class Outcomes:
    """What :func:`run` hands back: the trials, their test scores, the summary, the files."""

    folder: Path
    records: list[TrialRecord]
    scores: dict[int, dict[str, float]]
    summary: dict[str, Any]
    written: list[Path] = field(default_factory=list)
    stopped: str | None = None  # why the search stopped before its budget, if it did
    ensemble: dict[str, Any] | None = None  # the selected ensemble, as study.json keeps it


_log = logging.getLogger("search")

Callback = Callable[[Any, Any], None]
"""Called as ``callback(study, frozen_trial)`` after each finished trial, as Optuna's
``study.optimize`` calls its callbacks: an ``optuna.Study`` and an ``optuna.trial.FrozenTrial``."""


def run(
    config: StudyConfig,
    task: Task,
    space: Space,
    on_trial: Callable[[list[TrialRecord]], None] = lambda _: None,
    callbacks: tuple[Callback, ...] = (),
    on_start: Callable[[list[TrialRecord]], None] = lambda _: None,
) -> Outcomes:
    """Run (or resume) the study until it holds ``config.trials`` trials, then score it.

    ``on_start`` gets the study's records as the run starts, ``on_trial`` every record
    after each batch of trials (a progress bar has both); each of ``callbacks`` gets each
    trial that finished during this run.
    """
    folder = config.folder
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(folder)
    started = time.time()
    config_json = described(config, task)
    # A resumed study keeps its last scores and summary until new ones replace them, so
    # results/leaderboard.csv never loses the study while it runs.
    before = read_json(folder / STUDY_JSON) if (folder / STUDY_JSON).exists() else {}
    if before and "hyperparameters" not in before.get("config", {}):
        _log.info(
            "%s/%s was written before studies recorded their space: its space is not "
            "compared on this resume, and is recorded for the next one",
            config.task,
            config.study,
        )
    write_json(folder / STUDY_JSON, before | {"config": config_json, "versions": versions()})
    data = train_data(task, space, config)
    engine, objective = _engine_and_objective(config, space, data)
    engine.enqueue(list(config.enqueue))  # before the workers start: they share the queue
    _announce(config, engine.records(), on_start)
    notify = _notifier(engine, callbacks, on_trial)
    stopped = None
    try:
        if uses_workers(config):
            stopped = run_workers(config, engine, notify)
        else:
            with older_objects_frozen():
                engine.optimize(objective, config.trials, notify)
    except SearchStoppedError as error:
        stopped = str(error)
    except KeyboardInterrupt:
        # What completed is kept and shown; the earlier test scores (and ensemble) stay.
        scores = {int(k): v for k, v in before.get("scores", {}).items()}
        weights = ensemble_weights(before.get("ensemble"))
        table = trial_table(engine.records(), scores, config.directions, task.metrics, weights)
        write_csv(table, folder / TRIAL_TABLE)
        raise
    search_seconds = time.time() - started + before.get("summary", {}).get("wall_seconds", 0)
    records = engine.records()
    with older_objects_frozen():  # the top-k retrainings
        scored = score_top(config, task, space, engine, data, records)
    scores, best = scored.scores, scored.best
    written = [folder / TRIAL_TABLE, folder / STUDY_JSON]
    weights = ensemble_weights(scored.ensemble)
    table = trial_table(records, scores, config.directions, task.metrics, weights)
    write_csv(table, folder / TRIAL_TABLE)
    if best is not None:
        written += [folder / BEST_MODEL, folder / BEST_SUMMARY]
    if config.tensorboard:
        logdir = folder / TENSORBOARD
        # After scoring: the sessions carry the test metrics, rebuilt from the storage.
        costs = [name for name in config.objectives if name in COSTS]
        tensorboard.write_study(
            logdir, space, records, scores, config.objective, task.metrics, costs
        )
        if best is not None:
            tensorboard.write_graph(logdir, best)
        written.append(logdir)
    summary = _summary(config, task, records, scores, search_seconds, started)
    summary.update(ensemble_summary(scored.ensemble, task.headline))
    summary["stopped"] = stopped
    summary["ended_by"] = _ended_by(config, records, stopped)
    write_json(
        folder / STUDY_JSON,
        {
            "config": config_json,
            "versions": versions(),
            "scores": {str(k): v for k, v in scores.items()},
            "ensemble": scored.ensemble,
            "summary": summary,
        },
    )
    written.append(write_study_table(config.out))
    return Outcomes(folder, records, scores, summary, written, stopped, scored.ensemble)


def train_data(task: Task, space: Space, config: StudyConfig) -> TrainData:
    """The study's data, its labels encoded as the space's loss expects them."""
    check_written(space)
    return TrainData(task, config.settings, one_hot=space.labels == "one-hot")


def _announce(
    config: StudyConfig, records: list[TrialRecord], on_start: Callable[[list[TrialRecord]], None]
) -> None:
    """Show where a resumed study starts (the progress bar at its trials so far), and say
    so when its budget is used already."""
    used = budget_used(records)
    # An interrupted trial not run again yet may be now (it continues from its checkpoint).
    again = {record.retry_of for record in records}
    interrupted = any(
        record.state == FAILED and record.error.startswith(INTERRUPTED)
        for record in records
        if record.number not in again
    )
    if used >= config.trials and not (interrupted and config.retries):
        _log.info(
            "%s/%s: %d of %d trials already done; nothing to run (raise --trials to extend "
            "the study)",
            config.task,
            config.study,
            used,
            config.trials,
        )
    on_start(records)


def _ended_by(config: StudyConfig, records: list[TrialRecord], stopped: str | None) -> str:
    """What ended the search: its trials, its time budget, a stop (failures in a row), or
    its space: a keras-tuner oracle (but Hyperband, which ends after its rounds) that ends
    before the budget has no new configuration left to try."""
    if stopped:
        return "stopped"
    if budget_used(records) >= config.trials:
        return "trials"
    if out_of_time(config.deadline, config.charged_budget, records):
        return "time budget"
    exhausted = config.engine == "keras-tuner" and config.algorithm != "hyperband"
    return "space exhausted" if exhausted else "trials"


def _notifier(
    engine: Engine, callbacks: tuple[Callback, ...], on_trial: Callable[[list[TrialRecord]], None]
) -> Callable[[list[TrialRecord]], None]:
    """``on_trial``, then each callback for each trial that finished since the last call
    (trials finished before this run are not announced again)."""
    if not callbacks:
        return on_trial
    engine.records()  # every look tells what finished since the previous one: not those

    def notify(records: list[TrialRecord]) -> None:
        on_trial(records)
        for record in counted(records).fresh:
            study, trial = engine.optuna_study(), engine.frozen_trial(record)
            for callback in callbacks:
                callback(study, trial)

    return notify


def engine_config(config: StudyConfig) -> EngineConfig:
    """What the study's engine needs to know of it: its search, its storage, its name."""
    return EngineConfig(
        config.engine,
        config.algorithm,
        config.pruner,
        config.objective,
        config.direction,
        config.settings.seed,
        config.settings.epochs,
        config.retries,
        config.failure_limit,
        config.storage,
        f"{config.task}/{config.study}",
        deadline=config.deadline,
        charged_budget=config.charged_budget,
        # Population-based training asks for its whole population at once.
        population=config.trials if config.algorithm == "pbt" else config.population,
        folds=config.settings.cv,
        objectives=config.objectives if len(config.objectives) > 1 else (),
        directions=config.directions if len(config.objectives) > 1 else (),
    )


def _engine_and_objective(
    config: StudyConfig, space: Space, data: TrainData
) -> tuple[Engine, Callable[[list[Asked]], list[Outcome]]]:
    """The study's engine over its storage, and the objective its trials run."""
    # The loop compiled in a process of its own (the run command started it sooner): the
    # code a study's processes run is then always loaded from numba's cache, never
    # compiled in them, which would differ in float32's last digits (docs/results.md).
    compile_ahead(config.trainer)
    engine = open_engine(engine_config(config), space, config.folder)
    trainer = get_trainer(config.trainer)
    logdir = config.folder / TENSORBOARD

    def objective(asked: list[Asked]) -> list[Outcome]:
        if config.algorithm == "pbt":
            return _population_based(config, space, data, asked)
        too_large = _too_large(config, space, asked)
        trained = [trial for trial in asked if trial.number not in too_large]
        jobs = [
            Job(
                builder(space, trial.hp),
                trial.seed,
                trial.report,
                trial.epochs,
                checkpoint=checkpoint_of(config, trial),
            )
            for trial in trained
        ]
        try:
            outcomes = trainer.evaluate(jobs, data, config.objective)
        except Exception:
            # A fault outside any one trial: each trial still shows the epochs it ran (and
            # keeps its checkpoint, to continue from when it runs again).
            for trial, job in zip(trained, jobs, strict=True):
                _write_curve(config, logdir, trial.number, job.curves)
            raise
        for job in jobs:  # every trial ended (complete, pruned or failed)
            if job.checkpoint is not None:
                job.checkpoint.remove()
        for trial, outcome, job in zip(trained, outcomes, jobs, strict=True):
            if isinstance(outcome, Exception):  # a pruned or failed trial: the epochs it ran
                _write_curve(config, logdir, trial.number, job.curves)
                continue
            crash_point("trial")
            if _write_curve(config, logdir, trial.number, outcome.curves):
                crash_point("tensorboard")
        by_number = dict(zip((t.number for t in trained), outcomes, strict=True)) | too_large
        return [by_number[trial.number] for trial in asked]

    return engine, objective


def _population_based(
    config: StudyConfig, space: Space, data: TrainData, asked: list[Asked]
) -> list[Outcome]:
    """The study's trials trained as one population (:mod:`search.study.pbt`), each
    member's curve (the lineage it ended with) its TensorBoard run, with its numeric
    hyperparameters over the epochs as ``hp_NAME`` scalars."""
    from search.study import pbt

    outcomes, schedules = pbt.train(config, space, data, asked)
    for trial, outcome, schedule in zip(asked, outcomes, schedules, strict=True):
        runs = [] if isinstance(outcome, Exception) else outcome.curves
        curve = mean_curve(runs, config.objective) if config.tensorboard else {}
        if curve:
            hyperparameters = {f"hp_{name}": values for name, values in schedule.items()}
            tensorboard.write_trial(
                config.folder / TENSORBOARD,
                tensorboard.run_name(trial.number),
                curve | hyperparameters,
            )
    return outcomes


def checkpoint_of(config: StudyConfig, trial: Asked) -> Checkpoint | None:
    """The checkpoint ``trial`` continues from and writes (None: the study writes none),
    in the study folder's ``checkpoints/`` (:mod:`search.trainers.checkpoint`)."""
    every = Every(config.checkpoint_epochs, config.checkpoint_seconds)
    if every.off:
        return None
    return Checkpoint(checkpoint_path(config.folder, trial.checkpoint), every)


def _too_large(config: StudyConfig, space: Space, asked: list[Asked]) -> dict[int, Outcome]:
    """The trials whose model has more weights than ``max_params``: built once, not trained."""
    if config.max_params is None:
        return {}
    found: dict[int, Outcome] = {}
    for trial in asked:
        params = builder(space, trial.hp)()[0].count_params()
        if params > config.max_params:
            found[trial.number] = TooLargeError(params, config.max_params)
    return found


def _write_curve(
    config: StudyConfig, logdir: Path, number: int, runs: list[dict[str, list[float]]]
) -> bool:
    """The trial's curve averaged over its folds and executions (what its result is read
    from) as its TensorBoard run, if the study writes them and an epoch ran."""
    curve = mean_curve(runs, config.objective) if config.tensorboard else {}
    if not curve:
        return False
    tensorboard.write_trial(logdir, tensorboard.run_name(number), curve)
    return True


def work(config: StudyConfig, task: Task, space: Space) -> None:
    """One worker of a study: run trials until the shared budget is used (no scoring)."""
    # A Dask worker that does not see the client's --out (a storage server, no TensorBoard)
    # keeps its own files of the study (the claim lock, checkpoints) in a folder of its own.
    config.folder.mkdir(parents=True, exist_ok=True)
    data = train_data(task, space, config)
    engine, objective = _engine_and_objective(config, space, data)
    with older_objects_frozen():
        engine.optimize(objective, config.trials, lambda _: None)


@contextlib.contextmanager
def older_objects_frozen() -> Iterator[None]:
    """Trials (and retrainings) run with the objects that existed before them out of the
    garbage collector's sight (``gc.freeze``), and back in it after.

    Keras, TensorFlow and Optuna leave millions of objects, and a full collection walks all
    of them: 190 ms here, once or twice in a short search, a quarter of a 20-trial search's
    time at the fastest settings. The trials' own objects are collected as ever; what was
    garbage before is collected after. Only the outermost of nested calls freezes.
    """
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _summary(
    config: StudyConfig,
    task: Task,
    records: list[TrialRecord],
    scores: dict[int, dict[str, float]],
    seconds: float,
    started: float,
) -> dict[str, Any]:
    counts = summary_counts(records, scores, config.directions, task.headline)
    baseline, baseline_value = task.best_baseline()
    return {
        "task": config.task,
        "study": config.study,
        "space": space_name(config.space),
        "engine": config.engine,
        "algorithm": config.algorithm,
        "pruner": config.pruner,
        "objective": config.objective,
        "direction": config.direction,
        **counts,
        "baseline": baseline,
        "baseline_value": baseline_value,
        "wall_seconds": round(seconds, 2),
        "trials_per_minute": round(60 * counts["trials"] / seconds, 2) if seconds else None,
        "date": datetime.datetime.fromtimestamp(started, datetime.UTC).isoformat(
            timespec="seconds"
        ),
        "versions": " ".join(f"{k}={v}" for k, v in versions().items()),
    }


@functools.cache
def versions() -> dict[str, str]:
    """The versions a study ran with, read off the installed packages: importing one to ask
    (keras-tuner, TensorFlow) would take up to seconds."""
    found = {"keras": keras.__version__, "backend": keras.backend.backend()}
    for name in ("keras-tuner", "optuna", "numpy", "pandas", "numba", "tensorflow"):
        for package in (name, f"{name}-cpu"):  # TensorFlow's CPU wheel has its own name
            with contextlib.suppress(importlib.metadata.PackageNotFoundError):
                found[name] = importlib.metadata.version(package)
                break
    return found
