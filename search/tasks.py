"""Tasks: the data sets a search runs on, their splits, scoring and reference baselines.

Every task's data is fixed (internal seeds, never the study seed) so that all studies of a
task see the same rows and their results can be compared.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Literal, cast

import numpy as np
import pandas as pd

from search.errors import SearchError

Kind = Literal["regression", "binary", "multiclass"]
KINDS: tuple[str, ...] = ("regression", "binary", "multiclass")

# Clip for log loss so a confident wrong prediction costs a large but finite amount.
_EPS = 1e-7
# A numeric target with at most this many distinct integer values is taken as class labels.
_MAX_INFERRED_CLASSES = 20
_MIN_CSV_ROWS = 10
_DEFAULT_TEST_SIZE = 0.2
# Fixed seed for every split and every synthetic data set: data must not depend on the study.
_DATA_SEED = 0
_CSV_OPTIONS = ("data", "target", "kind", "test_size")


@dataclass(frozen=True)
class TaskSpec:
    """What a search space needs to know to build a model for a task."""

    name: str
    kind: Kind
    n_features: int
    n_classes: int  # 1 for regression, 2 for binary, k for multiclass
    feature_names: tuple[str, ...]


@dataclass
class Task:
    """A task's data split, standardisation statistics and test-split baselines.

    Features are stored raw; `standardize` applies the train-only statistics.
    """

    spec: TaskSpec
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    baselines: dict[str, dict[str, float]]
    class_names: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    description: str = ""
    # Folds of the default validation: 5 where the holdout split is too small to rank
    # configurations reliably (see the README's measurements), else one holdout split.
    default_cv: int = 1

    def standardize(self, x: np.ndarray) -> np.ndarray:
        """Returns `(x - mean) / std` as float32, using the train-split statistics."""
        return ((np.asarray(x, dtype=np.float32) - self.mean) / self.std).astype(np.float32)

    @property
    def objective(self) -> str:
        """The validation metric a search minimises."""
        return "val_mse" if self.spec.kind == "regression" else "val_logloss"

    @property
    def direction(self) -> str:
        """Whether the objective is minimised or maximised (always "min" here)."""
        return "min"

    @property
    def headline(self) -> str:
        """The test metric that summarises a result on this task."""
        return "mse" if self.spec.kind == "regression" else "accuracy"

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metrics `score` reports for this task's kind."""
        return _metrics_for(self.spec.kind)

    def best_baseline(self) -> tuple[str, float]:
        """Returns the name and headline value of the best baseline.

        Raises:
            ValueError: if the task has no baseline with a finite headline value.
        """
        higher_is_better = self.headline == "accuracy"
        best: tuple[str, float] | None = None
        for name, values in self.baselines.items():
            value = values.get(self.headline, math.nan)
            if not math.isfinite(value):
                continue
            if best is None or (value > best[1] if higher_is_better else value < best[1]):
                best = (name, value)
        if best is None:
            raise ValueError(
                f"task {self.spec.name!r} has no baseline with a finite {self.headline}"
            )
        return best


def _metrics_for(kind: Kind) -> tuple[str, ...]:
    return ("mse", "mae") if kind == "regression" else ("logloss", "accuracy")


# --------------------------------------------------------------------------- scoring


def maximised(objective: str) -> bool:
    """Whether a higher ``objective`` is better: accuracies are maximised, losses minimised."""
    return objective.endswith("accuracy")


def score(kind: Kind, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Scores predictions; the one scoring function for baselines and models alike.

    Args:
        kind: the task kind.
        y_true: targets (regression) or class codes 0..k-1 (classification), shape (n,).
        y_pred: values (regression), P(class 1) of shape (n,) or (n, 1) (binary), or class
            probabilities of shape (n, k) (multiclass).

    Returns:
        {"mse", "mae"} for regression, {"logloss", "accuracy"} otherwise. NaN predictions
        give NaN metrics rather than an error, so a diverged model is still recorded.

    Raises:
        SearchError: if `kind` is not one of KINDS.
        ValueError: if the arrays are empty or their shapes do not match.
    """
    if kind not in KINDS:
        raise SearchError(f"unknown kind {kind!r}; valid kinds: {', '.join(KINDS)}")
    truth = np.asarray(y_true)
    pred = np.asarray(y_pred, dtype=np.float64)
    if truth.ndim == 2 and truth.shape[1] == 1:
        truth = truth[:, 0]
    if truth.ndim != 1 or truth.shape[0] == 0:
        raise ValueError(f"y_true must be a non-empty 1-d array, got shape {truth.shape}")
    n = truth.shape[0]

    if kind == "multiclass":
        if pred.ndim != 2 or pred.shape[0] != n:
            raise ValueError(f"multiclass y_pred must have shape ({n}, k), got {pred.shape}")
        codes = truth.astype(np.int64)
        if codes.min() < 0 or codes.max() >= pred.shape[1]:
            raise ValueError(f"class codes must lie in 0..{pred.shape[1] - 1}")
        picked = np.clip(pred[np.arange(n), codes], _EPS, 1.0 - _EPS)
        correct = np.argmax(pred, axis=1) == codes
        return {"logloss": float(-np.mean(np.log(picked))), "accuracy": float(np.mean(correct))}

    if pred.ndim == 2 and pred.shape[1] == 1:
        pred = pred[:, 0]
    if pred.shape != (n,):
        raise ValueError(f"{kind} y_pred must have shape ({n},) or ({n}, 1), got {pred.shape}")

    if kind == "regression":
        err = pred - truth.astype(np.float64)
        return {"mse": float(np.mean(err**2)), "mae": float(np.mean(np.abs(err)))}

    ones = truth.astype(np.float64)
    p = np.clip(pred, _EPS, 1.0 - _EPS)
    logloss = -np.mean(ones * np.log(p) + (1.0 - ones) * np.log(1.0 - p))
    # Same rule as Keras' binary accuracy: class 1 only when strictly above 0.5.
    correct = (pred > 0.5) == (ones == 1.0)
    return {"logloss": float(logloss), "accuracy": float(np.mean(correct))}


# --------------------------------------------------------------------------- baselines


def _add_intercept(x: np.ndarray) -> np.ndarray:
    return np.hstack([x, np.ones((x.shape[0], 1))])


def _normal_equation(x_train: np.ndarray, y_train: np.ndarray) -> np.ndarray:
    """Least-squares coefficients (features then intercept), fitted in float64."""
    design = _add_intercept(np.asarray(x_train, dtype=np.float64))
    coef, *_ = np.linalg.lstsq(design, np.asarray(y_train, dtype=np.float64), rcond=None)
    return cast(np.ndarray, coef)


def _predict_linear(coef: np.ndarray, x: np.ndarray) -> np.ndarray:
    return cast(np.ndarray, _add_intercept(np.asarray(x, dtype=np.float64)) @ coef)


def _regression_baselines(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray
) -> dict[str, dict[str, float]]:
    coef = _normal_equation(x_train, y_train)
    mean_pred = np.full(y_test.shape[0], float(np.mean(y_train, dtype=np.float64)))
    return {
        "normal-equation": score("regression", y_test, _predict_linear(coef, x_test)),
        "train-mean": score("regression", y_test, mean_pred),
    }


def _classification_baselines(
    kind: Kind,
    n_classes: int,
    x_train_std: np.ndarray,
    y_train: np.ndarray,
    x_test_std: np.ndarray,
    y_test: np.ndarray,
) -> dict[str, dict[str, float]]:
    # sklearn is only needed here; importing it lazily keeps `import search.tasks` cheap.
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    freq = np.bincount(y_train, minlength=n_classes) / y_train.shape[0]
    prior = np.tile(freq, (y_test.shape[0], 1))

    model = LogisticRegression(max_iter=1000)
    with warnings.catch_warnings():
        # A not-quite-converged fit is still a fair reference point, and a forced --kind with
        # many classes is the user's explicit choice; either warning would only clutter the CLI.
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", UserWarning)
        model.fit(x_train_std, y_train)
    # Classes absent from the train split get probability 0, so columns stay aligned to codes.
    proba = np.zeros((y_test.shape[0], n_classes))
    proba[:, model.classes_] = model.predict_proba(x_test_std)

    if kind == "binary":
        return {
            "majority-class": score(kind, y_test, prior[:, 1]),
            "logistic-regression": score(kind, y_test, proba[:, 1]),
        }
    return {
        "majority-class": score(kind, y_test, prior),
        "logistic-regression": score(kind, y_test, proba),
    }


# --------------------------------------------------------------------------- task assembly


def _make_task(
    spec: TaskSpec,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    class_names: tuple[str, ...] = (),
    notes: tuple[str, ...] = (),
    description: str = "",
) -> Task:
    """Fits the train-only standardisation, computes baselines and casts to storage dtypes."""
    x_train64 = np.asarray(x_train, dtype=np.float64)
    x_test64 = np.asarray(x_test, dtype=np.float64)
    mean = x_train64.mean(axis=0)
    std = x_train64.std(axis=0)
    # A constant feature would divide by zero; leaving it unscaled maps it to 0.
    std[std == 0] = 1.0

    if spec.kind == "regression":
        y_tr: np.ndarray = np.asarray(y_train, dtype=np.float64)
        y_te: np.ndarray = np.asarray(y_test, dtype=np.float64)
        baselines = _regression_baselines(x_train64, y_tr, x_test64, y_te)
        y_tr, y_te = y_tr.astype(np.float32), y_te.astype(np.float32)
    else:
        y_tr = np.asarray(y_train, dtype=np.int64)
        y_te = np.asarray(y_test, dtype=np.int64)
        baselines = _classification_baselines(
            spec.kind,
            spec.n_classes,
            (x_train64 - mean) / std,
            y_tr,
            (x_test64 - mean) / std,
            y_te,
        )
    return Task(
        spec=spec,
        x_train=x_train64.astype(np.float32),
        y_train=y_tr,
        x_test=x_test64.astype(np.float32),
        y_test=y_te,
        mean=mean.astype(np.float32),
        std=std.astype(np.float32),
        baselines=baselines,
        class_names=class_names,
        notes=notes,
        description=description,
    )


# --------------------------------------------------------------------------- built-in tasks

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
    text = (files("search") / "data" / "boston_house_prices.csv").read_text(encoding="utf-8")
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
    task = _make_task(
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
    rng = np.random.default_rng(_DATA_SEED)
    x = np.linspace(-10.0, 10.0, 100)
    y = 5.0 * x + 10.0 + rng.normal(0.0, 5.0, size=x.shape[0])
    order = rng.permutation(x.shape[0])
    x, y = x[order].reshape(-1, 1), y[order]
    spec = _spec("linear", "regression", 1, 1, ("x",))
    return _make_task(spec, x[:80], y[:80], x[80:], y[80:], description=_DESCRIPTIONS["linear"])


def _load_noise(name: str, n_classes: int) -> Task:
    rng = np.random.default_rng(_DATA_SEED)
    x_train = rng.random((1000, 20))
    y_train = rng.integers(0, n_classes, size=1000)
    x_test = rng.random((100, 20))
    y_test = rng.integers(0, n_classes, size=100)
    kind: Kind = "binary" if n_classes == 2 else "multiclass"
    names = tuple(f"x{i}" for i in range(20))
    return _make_task(
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
    }
    loader, kind = loaders[name]
    bunch = cast(dict[str, object], loader())
    x = np.asarray(bunch["data"], dtype=np.float64)
    y = np.asarray(bunch["target"])
    feature_names = tuple(str(f) for f in cast(list[str], bunch["feature_names"]))
    classification = kind != "regression"
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, random_state=_DATA_SEED, stratify=y if classification else None
    )
    class_names: tuple[str, ...] = ()
    n_classes = 1
    if classification:
        class_names = tuple(str(c) for c in cast(list[object], bunch["target_names"]))
        n_classes = len(class_names)
    return _make_task(
        _spec(name, kind, x.shape[1], n_classes, feature_names),
        x_train,
        y_train,
        x_test,
        y_test,
        class_names=class_names,
        description=_DESCRIPTIONS[name],
    )


_BUILTINS: dict[str, Callable[[], Task]] = {
    "boston": _load_boston,
    "linear": _load_linear,
    "logistic": lambda: _load_noise("logistic", 2),
    "mlp": lambda: _load_noise("mlp", 10),
    "breast-cancer": lambda: _load_sklearn("breast-cancer"),
    "digits": lambda: _load_sklearn("digits"),
    "diabetes": lambda: _load_sklearn("diabetes"),
}


def task_names() -> list[str]:
    """Returns the task names in registry order (built-ins, then "csv")."""
    return list(_DESCRIPTIONS)


def describe_tasks() -> dict[str, str]:
    """Returns task name -> one-line description (kind, size, source)."""
    return dict(_DESCRIPTIONS)


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
    if name not in _DESCRIPTIONS:
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
        return _BUILTINS[name]()
    return _load_csv(data, target, kind, test_size)


def _flag(option: str) -> str:
    return "--" + option.replace("_", "-")


# --------------------------------------------------------------------------- csv task


def _show_columns(columns: list[str], limit: int = 20) -> str:
    shown = ", ".join(repr(c) for c in columns[:limit])
    more = len(columns) - limit
    return shown + (f", ... ({more} more)" if more > 0 else "")


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise SearchError(f"--data file not found: {path}")
    if not path.is_file():
        raise SearchError(f"--data is not a file: {path}")
    if path.stat().st_size == 0:
        raise SearchError(f"--data file is empty (0 bytes): {path}")
    try:
        # Everything is read as text so that each bad cell can be located by column and row.
        return pd.read_csv(path, dtype=str)
    except pd.errors.EmptyDataError:
        raise SearchError(
            f"--data file has no columns (blank or whitespace only): {path}"
        ) from None
    except pd.errors.ParserError as exc:
        detail = " ".join(str(exc).split())
        raise SearchError(f"cannot parse --data file {path} as CSV: {detail}") from None
    except UnicodeDecodeError as exc:
        raise SearchError(
            f"--data file {path} is not UTF-8 text (byte {exc.start}: {exc.reason})"
        ) from None


def _first_row(mask: np.ndarray) -> int:
    """1-based data row (the first row after the header is row 1) of the first True."""
    return int(np.flatnonzero(mask)[0]) + 1


def _numeric_column(frame: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
    """Returns the column as float64 (NaN where not numeric) and the non-numeric mask."""
    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(values) & raw.notna().to_numpy()
    return values, bad


def _check_cells(frame: pd.DataFrame, target: str) -> None:
    """Rejects missing, non-numeric (features) and infinite cells, in file column order."""
    for column in frame.columns:
        missing = frame[column].isna().to_numpy()
        if missing.any():
            raise SearchError(
                f"column {column!r} has a missing value at data row {_first_row(missing)}; "
                "fill or drop such rows first"
            )
        values, bad = _numeric_column(frame, column)
        if column == target:
            if not bad.any() and np.isinf(values).any():
                row = _first_row(np.isinf(values))
                raise SearchError(
                    f"target column {column!r} has an infinite value at data row {row}"
                )
            continue
        if bad.any():
            row = _first_row(bad)
            raise SearchError(
                f"feature column {column!r} is not numeric: data row {row} holds "
                f"{frame[column].iloc[row - 1]!r}; encode or drop the column"
            )
        if np.isinf(values).any():
            row = _first_row(np.isinf(values))
            raise SearchError(f"feature column {column!r} has an infinite value at data row {row}")


def _class_label(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _load_csv(
    data: str | Path | None, target: str | None, kind: str | None, test_size: float | None
) -> Task:
    from sklearn.model_selection import train_test_split

    if kind is not None and kind not in KINDS:
        raise SearchError(f"unknown --kind {kind!r}; valid kinds: {', '.join(KINDS)}")
    fraction = _DEFAULT_TEST_SIZE if test_size is None else float(test_size)
    if not 0.0 < fraction < 1.0:
        raise SearchError(f"--test-size must be a fraction with 0 < F < 1, got {test_size}")
    if data is None:
        raise SearchError("the csv task needs --data FILE (the CSV file to learn from)")
    path = Path(data)
    frame = _read_csv(path)
    columns = [str(c) for c in frame.columns]
    if target is None:
        raise SearchError(
            f"the csv task needs --target COLUMN; columns in {path.name}: {_show_columns(columns)}"
        )
    if target not in columns:
        raise SearchError(
            f"target column {target!r} not in {path.name}; columns: {_show_columns(columns)}"
        )
    if len(frame) == 0:
        raise SearchError(f"--data file {path} has a header but no data rows")
    if len(columns) < 2:
        raise SearchError(f"--data file {path} has no feature columns besides target {target!r}")
    if len(frame) < _MIN_CSV_ROWS:
        raise SearchError(
            f"--data file {path} has {len(frame)} data rows; the csv task needs at least "
            f"{_MIN_CSV_ROWS}"
        )
    _check_cells(frame, target)

    features = [c for c in columns if c != target]
    x = frame[features].apply(pd.to_numeric).to_numpy(dtype=np.float64)
    y_numeric, y_bad = _numeric_column(frame, target)
    numeric_target = not y_bad.any()
    labels: np.ndarray = y_numeric if numeric_target else frame[target].to_numpy(dtype=str)
    distinct = np.unique(labels)
    if distinct.shape[0] < 2:
        raise SearchError(
            f"target column {target!r} has a single value ({_class_label(distinct[0].item())}); "
            "a task needs at least 2 classes or distinct values"
        )

    notes: list[str] = []
    if kind is None:
        integral = numeric_target and bool(np.all(np.mod(y_numeric, 1.0) == 0.0))
        if not numeric_target or (integral and distinct.shape[0] <= _MAX_INFERRED_CLASSES):
            chosen: Kind = "binary" if distinct.shape[0] == 2 else "multiclass"
            why = f"target {target!r} has {distinct.shape[0]} distinct values"
        else:
            chosen = "regression"
            why = f"target {target!r} is numeric with {distinct.shape[0]} distinct values"
        notes.append(f"inferred kind: {chosen} ({why}; pass --kind to override)")
    else:
        chosen = cast(Kind, kind)
        if chosen == "regression" and not numeric_target:
            row = _first_row(y_bad)
            raise SearchError(
                f"--kind regression needs a numeric target; column {target!r} holds "
                f"{frame[target].iloc[row - 1]!r} at data row {row}"
            )
        if chosen == "binary" and distinct.shape[0] != 2:
            raise SearchError(
                f"--kind binary needs exactly 2 classes; target {target!r} has "
                f"{distinct.shape[0]} distinct values (use --kind multiclass or regression)"
            )

    classification = chosen != "regression"
    class_names: tuple[str, ...] = ()
    n_classes = 1
    y: np.ndarray = y_numeric
    if classification:
        # np.unique sorts numerically for numbers and lexically for text: codes follow that.
        distinct, y = np.unique(labels, return_inverse=True)
        class_names = tuple(_class_label(v.item()) for v in distinct)
        n_classes = len(class_names)

    n_rows = len(frame)
    n_test = math.ceil(fraction * n_rows)  # the rounding sklearn uses for a float test_size
    n_train = n_rows - n_test
    if n_train < 2:
        raise SearchError(
            f"--test-size {fraction} leaves {n_train} of {n_rows} rows for training; lower it"
        )
    stratify: np.ndarray | None = None
    if classification:
        counts = np.bincount(y, minlength=n_classes)
        # sklearn cannot stratify when a class has one row or a split is smaller than k.
        if counts.min() >= 2 and min(n_test, n_train) >= n_classes:
            stratify = y
        else:
            notes.append("split not stratified: a class has a single row or a split is too small")
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=fraction, random_state=_DATA_SEED, stratify=stratify
    )
    if classification and np.unique(y_train).shape[0] < 2:
        raise SearchError(
            f"the training split of target {target!r} holds a single class; add rows of the "
            "other classes or lower --test-size"
        )

    description = (
        f"{chosen}, {n_rows} rows x {len(features)} features ({n_train} train / {n_test} test), "
        f"user CSV {path.name}, target {target!r}"
    )
    return _make_task(
        _spec("csv", chosen, len(features), n_classes, tuple(features)),
        x_train,
        y_train,
        x_test,
        y_test,
        class_names=class_names,
        notes=tuple(notes),
        description=description,
    )


def read_features(path: str | Path, feature_names: tuple[str, ...]) -> np.ndarray:
    """The named feature columns of a CSV file, checked as a training file is (for predict).

    Other columns (an id, the target) are ignored; a missing feature column is an error.
    """
    frame = _read_csv(Path(path))
    missing = [name for name in feature_names if name not in frame.columns]
    if missing:
        raise SearchError(
            f"--data file lacks feature column {missing[0]!r}; the model needs "
            f"{_show_columns(list(feature_names))}"
        )
    if frame.empty:
        raise SearchError(f"--data file {path} has a header but no rows")
    frame = frame[list(feature_names)]
    _check_cells(frame, target="")
    return frame.apply(pd.to_numeric).to_numpy(dtype=np.float32)
