"""A benchmark's configuration: its task and space, contenders, seeds, budget and settings,
and how it is built from the training options (:func:`training`, :func:`bench_config`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from search.layout import check_name
from search.space_lookup import space_name
from search.study.config import check_objective
from search.study.options import DEFAULT_TRIALS, DEFAULTS, TRAINING
from search.tasks.task import Task
from search.trainers.base import Settings

DEFAULT_SEEDS = 5
# What a benchmark trains with where neither the command line nor a suite says: a study's
# defaults, but no pruner, so that every contender is compared as a sampler.
TRAINING_DEFAULTS: dict[str, Any] = {name: DEFAULTS[name] for name in TRAINING} | {"pruner": "none"}


@dataclass(frozen=True)
class BenchConfig:
    task: str
    space: str
    contenders: tuple[str, ...]
    seeds: int
    trials: int | None  # a trial budget per study, or
    time_budget: float | None  # a wall-clock budget per study in seconds
    settings: Settings  # its seed is replaced by each run's seed
    objective: str
    direction: str
    out: Path
    pruner: str = TRAINING_DEFAULTS[
        "pruner"
    ]  # for the optuna contenders; keras-tuner's never prune
    tensorboard: bool = True
    # 0: a run never stops on failures, so a sampler that keeps proposing diverging
    # configurations pays for them out of the same budget as every other contender.
    max_failures: int = 0
    # The same for every contender and every resumed run: the default (fast) trainer unless
    # the command or the suite says otherwise.
    trainer: str = TRAINING_DEFAULTS["trainer"]
    # A suite's entry keeps its studies under the suite's folder, not OUT/bench/TASK-SPACE.
    home: Path | None = None

    @property
    def folder(self) -> Path:
        return self.home if self.home is not None else bench_folder(self.out, self.task, self.space)

    @property
    def budget(self) -> dict[str, float | None]:
        return {"trials": self.trials, "time_budget": self.time_budget}


def bench_folder(out: Path, task: str, space: str) -> Path:
    return out / "bench" / f"{check_name('task', task)}-{space_name(space)}"


def training(*layers: dict[str, Any]) -> dict[str, Any]:
    """Every training option (:data:`search.study.options.TRAINING`): each of ``layers``
    over the ones before it (a suite's ``[settings]``, its entry's, the command line's), over
    :data:`TRAINING_DEFAULTS`."""
    merged = dict(TRAINING_DEFAULTS)
    for layer in layers:
        merged |= layer
    return merged


def bench_config(
    task: Task,
    name: str,
    space: str,
    contenders: tuple[str, ...],
    options: dict[str, Any],
    *,
    out: str | Path = DEFAULTS["out"],
    seeds: int = DEFAULT_SEEDS,
    trials: int | None = None,
    time_budget: float | None = None,
    tensorboard: bool = True,
    max_failures: int = 0,
    home: Path | None = None,
) -> BenchConfig:
    """The benchmark of ``space`` on ``task`` (named ``name``, as given: ``csv`` for a CSV
    file) with the training ``options`` of :func:`training`; ``trials`` per run unless a
    ``time_budget`` is given (default :data:`DEFAULT_TRIALS`)."""
    objective, direction = check_objective(options["objective"], task)
    return BenchConfig(
        task=check_name("task", name),
        space=space,
        contenders=contenders,
        seeds=seeds,
        trials=None if time_budget else (trials or DEFAULT_TRIALS),
        time_budget=time_budget,
        settings=Settings(
            epochs=options["epochs"],
            patience=options["patience"],
            cv=options["cv"] or task.default_cv,
            executions=1,
            validation_split=options["validation_split"],
            seed=0,
        ),
        objective=objective,
        direction=direction,
        out=Path(out),
        pruner=options["pruner"],
        tensorboard=tensorboard,
        max_failures=max_failures,
        trainer=options["trainer"],
        home=home,
    )
