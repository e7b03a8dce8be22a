"""One study: a task, a space and an engine, from the first trial to the scored leaderboard.

Data flows one way: config -> task + space + engine -> for each batch of trials the engine
asks (one, or ``--population`` of them): space.build(hp) -> the trainer's
``evaluate_population`` -> the engine's storage -> leaderboard CSVs, test scores and
``best.keras``.
"""

from __future__ import annotations

import datetime
import functools
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import keras

from search import training
from search.engines import Asked, EngineConfig, SearchStoppedError, TrialRecord, open_engine
from search.errors import SearchError
from search.faults import crash_point
from search.files import read_json, remove_stale_temporaries, write_json, write_text
from search.leaderboard import rank_complete, trial_table, write_csv, write_study_table
from search.space import Space, space_class, space_name
from search.storage import mask
from search.tasks import Task
from search.worker import uses_workers

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
# A resumed study must keep these, or its trials would mix two different searches.
_IDENTITY = (
    "task",
    "space",
    "engine",
    "algorithm",
    "objective",
    "cv",
    "executions",
    "validation_split",
)


ENSEMBLE_SEED_STEP = 7919  # member k of an ensemble retrains with seed + k * this


@dataclass(frozen=True)
class StudyConfig:
    task: str
    space: str
    engine: str
    algorithm: str
    pruner: str
    trials: int
    settings: training.Settings
    objective: str
    direction: str
    study: str
    out: Path
    top_k: int = 5
    ensemble: int = 5  # retrainings of each top-k configuration, their predictions averaged
    tensorboard: bool = True
    retries: int = 0
    max_failures: int = 10
    storage: str | None = None  # an Optuna storage URL shared by workers and machines
    workers: int = 1
    task_options: dict[str, Any] = field(default_factory=dict)  # the csv task's options
    # "numpy" (search.numpy_trainer), "keras" (fit) or "compiled" (search.compiled: JAX
    # only); the fast two fall back to fit for models they cannot train.
    trainer: str = "numpy"
    # time.time() after which no new trial starts (a wall-clock budget); None: trials only.
    deadline: float | None = None
    population: int = 1  # trials asked at once; those of one structure train together


@dataclass
class StudyResult:
    folder: Path
    records: list[TrialRecord]
    scores: dict[int, dict[str, float]]
    summary: dict[str, Any]
    written: list[Path] = field(default_factory=list)
    stopped: str | None = None  # why the search stopped before its budget, if it did


def check_name(kind: str, name: str) -> str:
    """Study and task names become folders: letters, digits, ``.``, ``_``, ``-`` only."""
    if not _NAME.match(name) or ".." in name:
        raise SearchError(
            f"invalid {kind} name {name!r}: use letters, digits, '.', '_' and '-' "
            "(no '/', no '..', at most 100 characters)"
        )
    return name


def default_study_name(space: str, engine: str, algorithm: str) -> str:
    return f"{space_name(space)}-{engine}-{algorithm}"


def study_folder(out: Path, task: str, study: str) -> Path:
    return out / check_name("task", task) / check_name("study", study)


def prepare(config: StudyConfig, task: Task, fresh: bool = False) -> Space:
    """Everything that can refuse the study, before anything is written."""
    check_name("study", config.study)
    space = space_class(config.space)(task.spec)
    folder = study_folder(config.out, config.task, config.study)
    if config.storage:
        from search.storage import open_storage

        open_storage(config.storage, folder)  # connects: a bad URL fails before any write
    existing = folder / "study.json"
    if existing.exists() and not fresh:
        before = read_json(existing).get("config", {})
        now = _identity(config)
        changed = [key for key in _IDENTITY if key in before and before[key] != now[key]]
        if changed:
            key = changed[0]
            raise SearchError(
                f"study {config.study!r} of task {config.task!r} was run with {key}="
                f"{before[key]!r}, not {now[key]!r}; use another --study name or --fresh"
            )
    return space


def run(
    config: StudyConfig,
    task: Task,
    space: Space,
    on_trial: Callable[[list[TrialRecord]], None] = lambda _: None,
) -> StudyResult:
    """Run (or resume) the study until it holds ``config.trials`` trials, then score it."""
    folder = study_folder(config.out, config.task, config.study)
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(folder)
    started = time.time()
    described = _identity(config) | _extra(config) | _data(task)
    # A resumed study keeps its last scores and summary until new ones replace them, so
    # results/leaderboard.csv never loses the study while it runs.
    before = read_json(folder / "study.json") if (folder / "study.json").exists() else {}
    write_json(folder / "study.json", before | {"config": described, "versions": versions()})
    data = training.TrainData(task, config.settings)
    engine, objective = _engine_and_objective(config, task, space, data, folder)
    logdir = folder / "tensorboard"
    stopped = None
    try:
        if uses_workers(config):
            from search.worker import run_workers

            stopped = run_workers(config, engine, on_trial)
        else:
            engine.optimize(objective, config.trials, on_trial)
    except SearchStoppedError as error:
        stopped = str(error)
    except KeyboardInterrupt:
        # What completed is kept and shown; the earlier test scores stay as they were.
        scores = {int(k): v for k, v in before.get("scores", {}).items()}
        records = engine.records()
        write_csv(
            trial_table(records, scores, config.direction, task.metrics),
            folder / "leaderboard.csv",
        )
        raise
    search_seconds = time.time() - started + before.get("summary", {}).get("wall_seconds", 0)
    records = engine.records()
    scores, best = _score_top(config, task, space, engine, data, records)
    written = [folder / "leaderboard.csv", folder / "study.json"]
    table = trial_table(records, scores, config.direction, task.metrics)
    write_csv(table, folder / "leaderboard.csv")
    if best is not None:
        written += [folder / "best.keras", folder / "best.txt"]
    if config.tensorboard:
        from search import tensorboard

        # After scoring: the sessions carry the test metrics, rebuilt from the storage.
        tensorboard.write_study(logdir, space, records, scores, config.objective, task.metrics)
        if best is not None:
            tensorboard.write_graph(logdir, best)
        written.append(logdir)
    summary = _summary(config, task, records, scores, search_seconds, started)
    summary["stopped"] = stopped
    write_json(
        folder / "study.json",
        {
            "config": described,
            "versions": versions(),
            "scores": {str(k): v for k, v in scores.items()},
            "summary": summary,
        },
    )
    written.append(write_study_table(config.out))
    return StudyResult(folder, records, scores, summary, written, stopped)


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
        config.max_failures,
        config.storage,
        f"{config.task}/{config.study}",
        deadline=config.deadline,
        population=config.population,
    )


def _engine_and_objective(
    config: StudyConfig, task: Task, space: Space, data: training.TrainData, folder: Path
) -> tuple[Any, Any]:
    """The study's engine over its storage, and the objective its trials run."""
    engine = open_engine(engine_config(config), space, folder)
    logdir = folder / "tensorboard"

    def objective(asked: list[Asked]) -> list[training.Outcome]:
        curves: list[list[dict[str, list[float]]]] = [[] for _ in asked]
        try:
            outcomes = _evaluate(config)(
                [_builder(space, trial.hp) for trial in asked],
                data,
                config.objective,
                [trial.seed for trial in asked],
                [trial.report for trial in asked],
                [trial.epochs for trial in asked],
                curves,
            )
        except Exception:
            # A fault outside any one trial: each trial still shows the epochs it ran.
            for trial, runs in zip(asked, curves, strict=True):
                _write_curve(config, logdir, trial.number, runs)
            raise
        for trial, outcome, runs in zip(asked, outcomes, curves, strict=True):
            if isinstance(outcome, Exception):  # a pruned or failed trial: the epochs it ran
                _write_curve(config, logdir, trial.number, runs)
                continue
            crash_point("trial")
            if _write_curve(config, logdir, trial.number, outcome.curves):
                crash_point("tensorboard")
        return outcomes

    return engine, objective


def _write_curve(
    config: StudyConfig, logdir: Path, number: int, runs: list[dict[str, list[float]]]
) -> bool:
    """The trial's first run as its TensorBoard run, if the study writes them and it ran."""
    if not config.tensorboard or not runs or not runs[0]:
        return False
    from search.tensorboard import run_name, write_trial

    write_trial(logdir, run_name(number), runs[0])
    return True


def work(config: StudyConfig, task: Task, space: Space) -> None:
    """One worker of a study: run trials until the shared budget is used (no scoring)."""
    folder = study_folder(config.out, config.task, config.study)
    data = training.TrainData(task, config.settings)
    engine, objective = _engine_and_objective(config, task, space, data, folder)
    engine.optimize(objective, config.trials, lambda _: None)


def _builder(space: Space, hp: Any) -> training.Build:
    def build() -> tuple[keras.Model, int]:
        model = space.build(hp)
        return model, int(hp.get("batch_size")) if _has(hp, "batch_size") else 32

    return build


def _has(hp: Any, name: str) -> bool:
    try:
        hp.get(name)
    except (KeyError, ValueError):
        return False
    return True


def _score_top(
    config: StudyConfig,
    task: Task,
    space: Space,
    engine: Any,
    data: training.TrainData,
    records: list[TrialRecord],
) -> tuple[dict[int, dict[str, float]], keras.Model | None]:
    """Retrain the ``top_k`` configurations on the whole training split; score on test.

    Each is trained ``ensemble`` times for its best epoch count (from validation), from its
    trial's seed on, and its predictions are the mean of those models: one retraining's test
    score varies with its initialisation about as much as configurations differ. The rank-1
    configuration's model is saved as ``best.keras`` with the standardisation inside, so it
    takes raw feature rows.
    """
    scores: dict[int, dict[str, float]] = {}
    best_model = None
    retrain = _retrain(config)
    for record in rank_complete(records, config.direction)[: config.top_k]:
        build = _builder(space, engine.hyperparameters(record))
        seed = record.seed or 0
        seeds = [seed + ENSEMBLE_SEED_STEP * member for member in range(config.ensemble)]
        # A retraining may diverge (another seed than the trial's, or more data per epoch):
        # the ensemble averages the members that did not.
        retrained = retrain(build, record.best_epoch or 1, data, seeds)
        members = [m for m in retrained if not isinstance(m, training.TrialFailedError)]
        if not members:  # this configuration gets no test score; the next one may
            continue
        model = training.averaged(members)
        scores[record.number] = training.test_scores(model, task)
        crash_point("scoring")
        if best_model is None:
            best_model = with_standardization(model, task)
            save_model(best_model, config.out / config.task / config.study / "best.keras")
            write_text(
                config.out / config.task / config.study / "best.txt", model_summary(best_model)
            )
    return scores, best_model


def with_standardization(model: keras.Model, task: Task) -> keras.Model:
    """``model`` behind a fixed Normalization layer holding the training split's mean/std."""
    inputs = keras.Input((task.spec.n_features,), name="features")
    scaled = keras.layers.Normalization(
        mean=task.mean, variance=task.std.astype("float64") ** 2, name="standardize"
    )(inputs)
    return keras.Model(inputs, model(scaled), name="best")


def model_summary(model: keras.Model) -> str:
    """``model.summary()`` as text, nested models expanded (the best model wraps the space's)."""
    lines: list[str] = []
    # Keras draws the table with rich, which cuts it at 80 columns when not on a terminal.
    model.summary(line_length=78, expand_nested=True, print_fn=lambda text, **_: lines.append(text))
    return "\n".join(lines).rstrip() + "\n"


def save_model(model: keras.Model, path: Path) -> None:
    """Save atomically: Keras writes a temporary file that then replaces ``path``."""
    temporary = path.with_name(f".{path.stem}.tmp.keras")
    model.save(temporary)
    temporary.replace(path)


def _summary(
    config: StudyConfig,
    task: Task,
    records: list[TrialRecord],
    scores: dict[int, dict[str, float]],
    seconds: float,
    started: float,
) -> dict[str, Any]:
    ranked = rank_complete(records, config.direction)
    best = ranked[0] if ranked else None
    baseline, baseline_value = task.best_baseline()
    finished = [r for r in records if r.state != "running"]
    return {
        "task": config.task,
        "study": config.study,
        "space": space_name(config.space),
        "engine": config.engine,
        "algorithm": config.algorithm,
        "pruner": config.pruner,
        "objective": config.objective,
        "direction": config.direction,
        "trials": len(finished),
        "complete": sum(r.state == "complete" for r in records),
        "pruned": sum(r.state == "pruned" for r in records),
        "failed": sum(r.state == "failed" for r in records),
        "best_value": best.value if best else None,
        "best_trial": best.number if best else None,
        "test_metric": task.headline,
        "test_value": scores.get(best.number, {}).get(task.headline) if best else None,
        "baseline": baseline,
        "baseline_value": baseline_value,
        "wall_seconds": round(seconds, 2),
        "trials_per_minute": round(60 * len(finished) / seconds, 2) if seconds else None,
        "date": datetime.datetime.fromtimestamp(started, datetime.UTC).isoformat(
            timespec="seconds"
        ),
        "versions": " ".join(f"{k}={v}" for k, v in versions().items()),
    }


def _identity(config: StudyConfig) -> dict[str, Any]:
    return {
        "task": config.task,
        "space": space_name(config.space),
        "engine": config.engine,
        "algorithm": config.algorithm,
        "objective": config.objective,
        "cv": config.settings.cv,
        "executions": config.settings.executions,
        "validation_split": config.settings.validation_split,
    }


def _evaluate(config: StudyConfig) -> Callable[..., list[training.Outcome]]:
    """The trainer's population ``evaluate``: numpy, compiled JAX or Keras fit one by one.

    All take (builds, data, objective, seeds, reports, epochs, curves) and hand back each
    configuration's outcome; the numpy and compiled trainers train configurations of one
    structure together.
    """
    if config.trainer == "numpy":
        from search.numpy_trainer import evaluate_population

        return evaluate_population
    if config.trainer == "compiled":
        from search.compiled import evaluate_population as evaluate_compiled

        return evaluate_compiled
    return training.evaluate_each


def _retrain(config: StudyConfig) -> Callable[..., list[keras.Model | Exception]]:
    """The trainer's ensemble retraining: (build, epochs, data, seeds) -> each member's model
    or the error of one that diverged; the numpy trainer trains the members together."""
    if config.trainer == "numpy":
        from search.numpy_trainer import retrain_population

        return retrain_population
    if config.trainer == "compiled":
        from search.compiled import retrain_compiled

        return functools.partial(training.retrain_each, retrain_one=retrain_compiled)
    return training.retrain_each


def _extra(config: StudyConfig) -> dict[str, Any]:
    settings = asdict(config.settings)
    return {
        "pruner": config.pruner,
        "trials": config.trials,
        "direction": config.direction,
        "study": config.study,
        "top_k": config.top_k,
        "ensemble": config.ensemble,
        "storage": mask(config.storage),
        "workers": config.workers,
        "trainer": config.trainer,
        "population": config.population,
        **settings,
    }


def _data(task: Task) -> dict[str, Any]:
    """What ``predict`` needs to read a file and label its output."""
    return {
        "kind": task.spec.kind,
        "features": list(task.spec.feature_names),
        "classes": list(task.class_names),
    }


@functools.cache
def versions() -> dict[str, str]:
    import keras_tuner
    import numpy
    import optuna
    import pandas

    found = {
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "keras-tuner": keras_tuner.__version__,
        "optuna": optuna.__version__,
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
    }
    try:
        import tensorflow

        found["tensorflow"] = tensorflow.__version__
    except ImportError:
        pass
    return found
