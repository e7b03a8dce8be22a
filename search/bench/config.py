"""A benchmark's configuration: its task and space, contenders, seeds, budget and settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from search.layout import check_name
from search.space import space_name
from search.trainers.base import Settings

DEFAULT_SEEDS = 5


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
    pruner: str = "none"  # for the optuna contenders; keras-tuner's never prune
    tensorboard: bool = True
    # 0: a run never stops on failures, so a sampler that keeps proposing diverging
    # configurations pays for them out of the same budget as every other contender.
    max_failures: int = 0
    # The same for every contender and every resumed run: the default (fast) trainer unless
    # the command or the suite says otherwise.
    trainer: str = "numpy"
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
