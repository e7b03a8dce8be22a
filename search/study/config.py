"""A study's configuration: what it is (its identity), how it runs, and its one serialisation.

``study.json`` and a worker's stdin carry the same flat JSON form (:func:`to_json`,
:func:`from_json`); only ``study.json``'s has the storage URL's password masked.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search.engines.optuna.storage import mask
from search.errors import SearchError
from search.layout import check_name, study_folder
from search.space_lookup import space_name
from search.study.options import DEFAULT_TRIALS
from search.tasks.task import Task
from search.trainers.base import Settings

# A resumed study must keep these, or its trials would mix two different searches: its
# task and data, its space (by name and by the domains it declares), its engine, and how
# each configuration is trained and judged. The options that only extend or spread a study
# (trials, time budget, workers, cluster, storage, TensorBoard) are free.
IDENTITY = (
    "task",
    "space",
    "hyperparameters",
    "engine",
    "algorithm",
    "objective",
    "epochs",
    "patience",
    "cv",
    "executions",
    "validation_split",
    "trainer",
    "seed",
    "data",
)
_SETTINGS = {f.name for f in dataclasses.fields(Settings)}  # identity keys of the Settings
ENSEMBLE_SEED_STEP = 7919  # member k of an ensemble retrains with seed + k * this


@dataclass(frozen=True)
class StudyConfig:
    """Every option of one study, validated (the defaults are in :mod:`search.study.options`)."""

    task: str
    space: str  # a built-in name, a .py path, or a Space class's name (see search.space_lookup)
    engine: str
    algorithm: str
    pruner: str
    trials: int
    settings: Settings
    objective: str  # the first objective: it chooses each trial's best epoch
    direction: str
    study: str
    out: Path
    top_k: int
    ensemble: int  # retrainings of each top-k configuration, their predictions averaged
    tensorboard: bool
    retries: int
    max_failures: int
    storage: str | None  # an Optuna storage URL shared by workers and machines
    workers: int
    trainer: str  # a name of search.trainers.TRAINERS
    population: int  # trials asked at once; those of one structure train together
    max_params: int | None  # a model with more weights is not trained; None: no limit
    # Every objective and its direction: one, or several for a Pareto search.
    objectives: tuple[str, ...]
    directions: tuple[str, ...]
    # Configurations to try first (checked against the space): --enqueue, --warm-start.
    enqueue: tuple[dict[str, Any], ...] = ()
    task_options: dict[str, Any] = field(default_factory=dict)  # the csv task's options
    # time.time() after which no new trial starts (a wall-clock budget); None: trials only.
    deadline: float | None = None
    # A tabular task's time budget: the recorded training seconds charged to its finished
    # trials after which no new trial starts (its simulated clock); None: none.
    charged_budget: float | None = None
    # The domain of each hyperparameter the space declares (search.declared_space.domains),
    # set when the study runs: part of its identity.
    hyperparameters: dict[str, str] = field(default_factory=dict)
    # Greedy picks (with replacement) of the ensemble selected across trials; 0: the rank-1
    # trial alone. A study.json written before the option had none: 0.
    ensemble_size: int = 0
    # How often a running trial writes its checkpoint (search.trainers.checkpoint.Every);
    # a study.json written before checkpoints: the defaults.
    checkpoint_epochs: int = 1
    checkpoint_seconds: int = 5
    # A Dask scheduler's address ("local": a LocalCluster here) whose workers run the
    # study's workers; None: processes of this machine.
    cluster: str | None = None
    # --algorithm pbt: epochs between exploits (None: a tenth of the epochs) and the
    # fraction of the population that copies (search.study.pbt).
    pbt_interval: int | None = None
    pbt_quantile: float = 0.25

    @property
    def folder(self) -> Path:
        return study_folder(self.out, self.task, self.study)

    @property
    def failure_limit(self) -> int:
        """Failed trials in a row that stop the search: ``max_failures``, or the whole
        budget when that is smaller (a study whose every trial failed stops as one that
        reached the limit); 0 never stops."""
        return min(self.max_failures, self.trials) if self.max_failures else 0


def default_study_name(space: str, engine: str, algorithm: str) -> str:
    return f"{space_name(space)}-{engine}-{algorithm}"


def study_config(
    task: Task,
    space: str,
    options: dict[str, Any],
    objectives: tuple[str, ...],
    directions: tuple[str, ...],
) -> StudyConfig:
    """The config of :class:`search.Study`'s checked ``options`` (every name of
    :data:`search.study.options.OPTIONS`, ``algorithm``, ``pruner`` and ``cv`` resolved);
    ``space`` is the space's reference."""
    name = options["name"]
    if name is None:
        name = default_study_name(space, options["engine"], options["algorithm"])
    settings = {f.name: options[f.name] for f in dataclasses.fields(Settings)}
    # The options the config keeps as they are given (the objective is the first one's).
    kept = {f.name for f in dataclasses.fields(StudyConfig)} - {"objective", "out"}
    return StudyConfig(
        task=check_name("task", task.spec.name),
        space=space,
        trials=DEFAULT_TRIALS,
        settings=Settings(**settings),
        objective=objectives[0],
        direction=directions[0],
        study=check_name("study", name),
        out=Path(options["out"]),
        objectives=objectives,
        directions=directions,
        task_options=task.source[1] if task.source else {},
        **{key: value for key, value in options.items() if key in kept},
    )


def to_json(config: StudyConfig, secrets: bool = False) -> dict[str, Any]:
    """The flat JSON form: the settings' fields beside the others. ``secrets``: keep the
    storage URL's password (a worker's stdin), else mask it (``study.json``)."""
    data = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    data.update(dataclasses.asdict(data.pop("settings")))
    data["out"] = str(config.out)
    data["space"] = space_name(config.space)
    data["space_source"] = config.space
    if not secrets:
        data["storage"] = mask(config.storage)
    return data


def from_json(data: dict[str, Any]) -> StudyConfig:
    """The config of :func:`to_json`'s form (other keys, such as the data's, are ignored)."""
    names = {f.name for f in dataclasses.fields(StudyConfig)}
    settings = {f.name: data[f.name] for f in dataclasses.fields(Settings)}
    values = {k: v for k, v in data.items() if k in names}
    values["space"] = data.get("space_source", data["space"])
    values["enqueue"] = tuple(data.get("enqueue", ()))
    return StudyConfig(**values | {"settings": Settings(**settings), "out": Path(data["out"])})


def identity(config: StudyConfig, task: Task) -> dict[str, Any]:
    """What a resumed study must keep (:data:`IDENTITY`): the task and its data, the space
    and its hyperparameters' domains, the search, and how each configuration trains."""
    return {
        "task": config.task,
        "space": space_name(config.space),
        "hyperparameters": config.hyperparameters,
        "engine": config.engine,
        "algorithm": config.algorithm,
        "objective": ",".join(config.objectives),
        **{key: getattr(config.settings, key) for key in IDENTITY if key in _SETTINGS},
        "trainer": config.trainer,
        "data": task.fingerprint,
    }


def recorded_identity(before: dict[str, Any]) -> dict[str, Any]:
    """The identity a stored study's config (``study.json``'s) records; a key that a study
    written by an older version lacks is left out (not checked)."""
    found = {key: before[key] for key in IDENTITY if key in before}
    if before.get("objectives"):
        found["objective"] = ",".join(before["objectives"])
    return found


def fingerprint(values: dict[str, Any]) -> str:
    """A short hash of an identity: equal identities, equal fingerprints."""
    text = json.dumps(values, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_resume(config: StudyConfig, task: Task, before: dict[str, Any]) -> None:
    """Refuse to resume a study (``before``: its recorded config) as another search: one
    line naming the first thing that changed, and the two ways out."""
    now = identity(config, task)
    if before.get("fingerprint") == fingerprint(now):
        return
    recorded = recorded_identity(before)
    changed = [key for key in IDENTITY if key in recorded and recorded[key] != now[key]]
    if changed:
        raise SearchError(
            f"study {config.task}/{config.study} was run {_change(changed[0], recorded, now)}: "
            "pass --fresh to start over or --study NAME for a new study"
        )


def _change(key: str, before: dict[str, Any], now: dict[str, Any]) -> str:
    """What changed of ``key``, as the middle of :func:`check_resume`'s message."""
    if key == "data":
        return "on other data (the task's rows or columns differ)"
    if key == "hyperparameters":
        return f"with another space {space_name(now['space'])!r}: " + _domain_change(
            before[key], now[key]
        )
    flag = f"--{key.replace('_', '-')}"
    return f"with {flag} {before[key]}; this run asks {flag} {now[key]}"


def _domain_change(before: dict[str, str], now: dict[str, str]) -> str:
    """How two spaces' hyperparameters differ, in words: the first whose domain changed,
    else the first no longer declared, else the first new one."""
    for name, domain in before.items():
        if name in now and now[name] != domain:
            return f"{name!r} was {domain}; this run declares {now[name]}"
    for name, domain in before.items():
        if name not in now:
            return f"it declared {name!r} ({domain}), which this run's space does not"
    name = next(name for name in now if name not in before)
    return f"this run declares {name!r} ({now[name]}), which it did not"


def check_objective(name: str | None, task: Task) -> tuple[str, str]:
    """The objective (the task's default when None) and its direction."""
    objectives, directions = check_objectives(name, task)
    if len(objectives) > 1:
        raise SearchError(f"one objective here, not {len(objectives)}: {name!r}")
    return objectives[0], directions[0]


def check_objectives(
    names: str | Sequence[str] | None, task: Task
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The objectives ("val_mse" or "val_mse,params", or a list) and their directions: the
    task's default when None; costs (weights, seconds) may follow the first, a validation
    metric (it chooses each trial's best epoch)."""
    from search.engines.base import COSTS
    from search.tasks.scoring import maximised

    if names is None:
        return (task.objective,), (task.direction,)
    given = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
    valid = [f"val_{metric}" for metric in task.metrics]
    for name in given:
        if name not in valid and name not in COSTS:
            raise SearchError(
                f"unknown objective {name!r} for a {task.spec.kind} task; choose "
                f"one of {', '.join(valid)} (and, after one of them, {', '.join(COSTS)})"
            )
    if given[0] not in valid:
        raise SearchError(
            f"the first objective must be a validation metric ({', '.join(valid)}): it "
            f"chooses each trial's best epoch; {given[0]!r} may follow it"
        )
    if len(set(given)) != len(given):
        raise SearchError(f"objective {names!r} names one metric twice")
    directions = tuple("max" if maximised(name) else "min" for name in given)
    return tuple(given), directions


def described(config: StudyConfig, task: Task) -> dict[str, Any]:
    """``study.json``'s config: the study's options and what ``predict`` needs of the data."""
    return to_json(config) | {
        "fingerprint": fingerprint(identity(config, task)),
        "data": task.fingerprint,
        "kind": task.spec.kind,
        "features": list(task.spec.feature_names),
        "classes": list(task.class_names),
    }
