"""The built-in tasks: the tutorial's data sets, four of scikit-learn's bundled ones, two
of its generators, the tabular benchmarks (:mod:`search.tasks.tabular`), and ``csv``.

Every task's data is fixed (internal seeds, never the study seed) so that all studies of a
task see the same rows and their results can be compared.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import cast

import numpy as np

from search.errors import SearchError
from search.tasks.scoring import Kind
from search.tasks.tabular import BENCHMARKS, load_tabular
from search.tasks.task import DATA_SEED, Task, TaskSpec, from_split, make_task

_CSV_OPTIONS = ("data", "target", "kind", "test_size")

_DESCRIPTIONS: dict[str, str] = {
    "boston": (
        "regression, 506 rows x 13 features (404 train / 102 test, the Keras boston_housing "
        "split), bundled CSV; caveat: column B encodes a racial statistic, kept only for "
        "comparability"
    ),
    "linear": (
        "regression, 100 rows x 1 feature (80/20), synthetic y = 5x + 10 + N(0, 5^2) "
        "from the tutorial"
    ),
    "logistic": (
        "binary, 1000 train / 100 test rows x 20 features, uniform noise with random labels "
        "(the tutorial's; no signal, chance is the best possible)"
    ),
    "mlp": (
        "multiclass (10 classes), 1000 train / 100 test rows x 20 features, uniform noise "
        "with random labels (the tutorial's; no signal)"
    ),
    "breast-cancer": (
        "binary, 569 rows x 30 features (80/20 stratified), sklearn load_breast_cancer "
        "(Wisconsin diagnostic)"
    ),
    "digits": (
        "multiclass (10 classes), 1797 rows x 64 pixel features (80/20 stratified), "
        "sklearn load_digits (8x8 handwritten digits)"
    ),
    "diabetes": (
        "regression, 442 rows x 10 features (80/20), sklearn load_diabetes "
        "(features already centred and scaled by sklearn)"
    ),
    "wine": (
        "multiclass (3 cultivars), 178 rows x 13 features (80/20 stratified), sklearn "
        "load_wine (chemical analysis of Italian wines)"
    ),
    "friedman1": (
        "regression, 1000 rows x 10 features (800/200), sklearn make_friedman1: "
        "y = 10 sin(pi x1 x2) + 20 (x3 - 0.5)^2 + 10 x4 + 5 x5 + N(0, 1), x6..x10 unused"
    ),
    "circles": (
        "binary, 1000 rows x 10 features (800/200), sklearn make_circles (noise 0.15, factor "
        "0.5) in x1, x2 and uniform noise in x3..x10: no linear signal at all"
    ),
    "csv": (
        "your own CSV file: --data FILE --target COLUMN [--kind regression|binary|multiclass] "
        "[--test-size F]"
    ),
}


def _spec(
    name: str, kind: Kind, n_features: int, n_classes: int, names: tuple[str, ...]
) -> TaskSpec:
    return TaskSpec(
        name=name, kind=kind, n_features=n_features, n_classes=n_classes, feature_names=names
    )


def _load_boston() -> Task:
    text = (files("search.tasks") / "data" / "boston_house_prices.csv").read_text(encoding="utf-8")
    lines = text.splitlines()
    columns = tuple(c.strip().strip('"') for c in lines[1].split(","))
    table = np.loadtxt(io.StringIO(text), delimiter=",", skiprows=2, dtype=np.float64)
    x, y = table[:, :-1], table[:, -1]
    # Reproduces keras.datasets.boston_housing.load_data(test_split=0.2, seed=113) exactly,
    # so results line up with the Keras tutorial's numbers.
    indices = np.arange(len(x))
    np.random.RandomState(113).shuffle(indices)
    x, y = x[indices], y[indices]
    n_train = int(len(x) * 0.8)
    spec = _spec("boston", "regression", x.shape[1], 1, columns[:-1])
    task = make_task(
        spec,
        x[:n_train],
        y[:n_train],
        x[n_train:],
        y[n_train:],
        description=_DESCRIPTIONS["boston"],
    )
    task.default_cv = 5
    return task


def _load_linear() -> Task:
    rng = np.random.default_rng(DATA_SEED)
    x = np.linspace(-10.0, 10.0, 100)
    y = 5.0 * x + 10.0 + rng.normal(0.0, 5.0, size=x.shape[0])
    order = rng.permutation(x.shape[0])
    x, y = x[order].reshape(-1, 1), y[order]
    spec = _spec("linear", "regression", 1, 1, ("x",))
    return make_task(spec, x[:80], y[:80], x[80:], y[80:], description=_DESCRIPTIONS["linear"])


def _load_noise(name: str, n_classes: int) -> Task:
    rng = np.random.default_rng(DATA_SEED)
    x_train = rng.random((1000, 20))
    y_train = rng.integers(0, n_classes, size=1000)
    x_test = rng.random((100, 20))
    y_test = rng.integers(0, n_classes, size=100)
    kind: Kind = "binary" if n_classes == 2 else "multiclass"
    names = tuple(f"x{i}" for i in range(20))
    return make_task(
        _spec(name, kind, 20, n_classes, names),
        x_train,
        y_train,
        x_test,
        y_test,
        class_names=tuple(str(c) for c in range(n_classes)),
        description=_DESCRIPTIONS[name],
    )


def _load_sklearn(name: str) -> Task:
    from sklearn import datasets
    from sklearn.model_selection import train_test_split

    loaders: dict[str, tuple[Callable[[], object], Kind]] = {
        "breast-cancer": (datasets.load_breast_cancer, "binary"),
        "digits": (datasets.load_digits, "multiclass"),
        "diabetes": (datasets.load_diabetes, "regression"),
        "wine": (datasets.load_wine, "multiclass"),
    }
    loader, kind = loaders[name]
    bunch = cast(dict[str, object], loader())
    x = np.asarray(bunch["data"], dtype=np.float64)
    y = np.asarray(bunch["target"])
    feature_names = tuple(str(f) for f in cast(list[str], bunch["feature_names"]))
    classification = kind != "regression"
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, random_state=DATA_SEED, stratify=y if classification else None
    )
    class_names: tuple[str, ...] = ()
    n_classes = 1
    if classification:
        class_names = tuple(str(c) for c in cast(list[object], bunch["target_names"]))
        n_classes = len(class_names)
    return make_task(
        _spec(name, kind, x.shape[1], n_classes, feature_names),
        x_train,
        y_train,
        x_test,
        y_test,
        class_names=class_names,
        description=_DESCRIPTIONS[name],
    )


def _load_friedman1() -> Task:
    """Friedman's #1 regression problem: a nonlinear target with interactions, where a
    linear model is far from the noise floor (MSE 1), so the search matters more than the
    noise."""
    from sklearn.datasets import make_friedman1

    x, y = make_friedman1(n_samples=1000, n_features=10, noise=1.0, random_state=DATA_SEED)
    spec = _spec("friedman1", "regression", 10, 1, tuple(f"x{i}" for i in range(1, 11)))
    return make_task(
        spec, x[:800], y[:800], x[800:], y[800:], description=_DESCRIPTIONS["friedman1"]
    )


def _load_circles() -> Task:
    """Two noisy concentric circles among eight features of noise: a linear model is at
    chance, and an MLP needs a working configuration to reach the noise's limit (about 90%
    accuracy), so the search matters more than the noise."""
    from sklearn.datasets import make_circles

    x, y = make_circles(n_samples=1000, noise=0.15, factor=0.5, random_state=DATA_SEED)
    rng = np.random.default_rng(DATA_SEED)
    x = np.hstack([x, rng.uniform(-1.0, 1.0, size=(1000, 8))])
    spec = _spec("circles", "binary", 10, 2, tuple(f"x{i}" for i in range(1, 11)))
    return make_task(
        spec,
        x[:800],
        y[:800],
        x[800:],
        y[800:],
        class_names=("outer", "inner"),
        description=_DESCRIPTIONS["circles"],
    )


_BUILTINS: dict[str, Callable[[], Task]] = {
    "boston": _load_boston,
    "linear": _load_linear,
    "logistic": lambda: _load_noise("logistic", 2),
    "mlp": lambda: _load_noise("mlp", 10),
    "breast-cancer": lambda: _load_sklearn("breast-cancer"),
    "digits": lambda: _load_sklearn("digits"),
    "diabetes": lambda: _load_sklearn("diabetes"),
    "wine": lambda: _load_sklearn("wine"),
    "friedman1": _load_friedman1,
    "circles": _load_circles,
}


def task_names() -> list[str]:
    """Returns the task names in registry order (built-ins, tabular benchmarks, "csv")."""
    return list(describe_tasks())


def describe_tasks() -> dict[str, str]:
    """Returns task name -> one-line description (kind, size, source)."""
    trained = {name: text for name, text in _DESCRIPTIONS.items() if name != "csv"}
    tabular = {name: benchmark.description for name, benchmark in BENCHMARKS.items()}
    return trained | tabular | {"csv": _DESCRIPTIONS["csv"]}


def load_task(
    name: str,
    *,
    data: str | Path | None = None,
    target: str | None = None,
    kind: str | None = None,
    test_size: float | None = None,
) -> Task:
    """Loads a task by name.

    Args:
        name: one of `task_names()`.
        data: CSV file (csv task only).
        target: the column to predict (csv task only).
        kind: force the task kind instead of inferring it (csv task only).
        test_size: fraction of rows held out for test, default 0.2 (csv task only).

    Raises:
        SearchError: for an unknown name, misplaced options or an unusable CSV file.
    """
    if name not in _DESCRIPTIONS and name not in BENCHMARKS:
        raise SearchError(f"unknown task {name!r}; valid tasks: {', '.join(task_names())}")
    if name != "csv":
        given = [
            opt
            for opt, value in zip(_CSV_OPTIONS, (data, target, kind, test_size), strict=True)
            if value is not None
        ]
        if given:
            raise SearchError(
                f"task {name!r} does not take {', '.join(_flag(g) for g in given)}; "
                f"only the csv task takes {', '.join(_flag(o) for o in _CSV_OPTIONS)}"
            )
        if name in BENCHMARKS:
            return load_tabular(name)
        task = _BUILTINS[name]()
        task.source = (name, {})
        return task
    task = _load_csv(data, target, kind, test_size)
    options = {"data": str(data), "target": target, "kind": kind, "test_size": test_size}
    task.source = (name, {k: v for k, v in options.items() if v is not None})
    return task


def _flag(option: str) -> str:
    return "--" + option.replace("_", "-")


def _load_csv(
    data: str | Path | None, target: str | None, kind: str | None, test_size: float | None
) -> Task:
    # pandas loads here, for a CSV file only: it takes about a second to import.
    from search.tasks.frames import read_csv, split_frame

    if data is None:
        raise SearchError("the csv task needs --data FILE (the CSV file to learn from)")
    path = Path(data)
    parts = split_frame(
        read_csv(path),
        target,
        kind,
        test_size,
        source=f"--data file {path}",
        origin=f"user CSV {path.name}",
        seed=DATA_SEED,
    )
    return from_split("csv", parts)
