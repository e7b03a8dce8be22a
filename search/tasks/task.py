"""A task: a data set's train/test split, its standardisation and its baselines.

Build one from arrays (:meth:`Task.from_arrays`), from a pandas DataFrame
(:meth:`Task.from_frame`), or load a built-in one by name (:func:`search.load_task`).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from search.errors import SearchError
from search.tasks.scoring import (
    HEADLINE,
    KINDS,
    METRICS,
    Kind,
    classification_baselines,
    maximised,
    regression_baselines,
)

if TYPE_CHECKING:
    import pandas as pd

    from search.tasks.frames import Split

# Fixed seed for every split and every synthetic data set: data must not depend on the study.
DATA_SEED = 0


@dataclass(frozen=True)
class TaskSpec:
    """What a search space needs to know to build a model for a task."""

    name: str
    kind: Kind
    n_features: int
    n_classes: int  # 1 for regression, 2 for binary, k for multiclass
    feature_names: tuple[str, ...]
    # The family of tabular benchmark whose table the task looks trials up in ("fcnet",
    # "hpobench", "nb201": search.tasks.tabular), whose space alone fits it; "" for data.
    table: str = ""
    # A regression task's training-split target mean, where the output layer's bias starts
    # (Space.output_layer); 0.0 for the other kinds.
    target_mean: float = 0.0


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
    # How a worker process loads this task again: (name, options) of load_task; None for a
    # task made from arrays or a DataFrame.
    source: tuple[str, dict[str, Any]] | None = None

    def standardize(self, x: np.ndarray) -> np.ndarray:
        """Returns `(x - mean) / std` as float32, using the train-split statistics."""
        return ((np.asarray(x, dtype=np.float32) - self.mean) / self.std).astype(np.float32)

    @property
    def objective(self) -> str:
        """The validation metric a search minimises by default."""
        return f"val_{METRICS[self.spec.kind][0]}"

    @property
    def direction(self) -> str:
        """Whether the objective is minimised or maximised (always "min" here)."""
        return "min"

    @property
    def headline(self) -> str:
        """The test metric that summarises a result on this task."""
        return HEADLINE[self.spec.kind]

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metrics `score` reports for this task's kind."""
        return METRICS[self.spec.kind]

    def best_baseline(self) -> tuple[str, float]:
        """Returns the name and headline value of the best baseline.

        Raises:
            ValueError: if the task has no baseline with a finite headline value.
        """
        higher_is_better = maximised(self.headline)
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

    @property
    def fingerprint(self) -> str:
        """A short hash of the split's data: a resumed study must see the same rows."""
        digest = hashlib.sha256()
        for array in (self.x_train, self.y_train, self.x_test, self.y_test):
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()[:16]

    @classmethod
    def from_arrays(
        cls,
        x_train: Any,
        y_train: Any,
        x_test: Any,
        y_test: Any,
        *,
        kind: str,
        name: str = "arrays",
        feature_names: tuple[str, ...] | None = None,
        class_names: tuple[str, ...] | None = None,
    ) -> Task:
        """A task from a train and a test split, as numpy arrays (or anything array-like).

        ``kind`` is ``regression``, ``binary`` or ``multiclass``; class labels are codes
        0..k-1 (``class_names`` names them). ``name`` is the task's results folder.

        Example:
            >>> import numpy as np
            >>> x = np.arange(40.0).reshape(20, 2)
            >>> task = Task.from_arrays(x[:16], x[:16, 0], x[16:], x[16:, 0], kind="regression")
            >>> task.spec.n_features, len(task.x_test)
            (2, 4)
        """
        from search.layout import check_name

        check_name("task", name)
        if kind not in KINDS:
            raise SearchError(f"unknown kind {kind!r}; valid kinds: {', '.join(KINDS)}")
        x_tr, y_tr, x_te, y_te = _checked_arrays(x_train, y_train, x_test, y_test)
        n_classes = 1 if kind == "regression" else _class_count(kind, y_tr, y_te, class_names)
        features = feature_names or tuple(f"x{i}" for i in range(x_tr.shape[1]))
        if len(features) != x_tr.shape[1]:
            raise SearchError(
                f"feature_names has {len(features)} names for {x_tr.shape[1]} features"
            )
        names = class_names or (tuple(str(c) for c in range(n_classes)) if n_classes > 1 else ())
        spec = TaskSpec(name, kind, x_tr.shape[1], n_classes, tuple(str(f) for f in features))  # type: ignore[arg-type]
        return make_task(
            spec,
            x_tr,
            y_tr.reshape(-1),
            x_te,
            y_te.reshape(-1),
            class_names=names,
            description=f"{kind}, {len(x_tr)} train / {len(x_te)} test rows x "
            f"{x_tr.shape[1]} features, from arrays",
        )

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        target: str,
        *,
        kind: str | None = None,
        test_size: float = 0.2,
        name: str = "frame",
    ) -> Task:
        """A task from a DataFrame: ``target`` is predicted from every other column.

        The kind is inferred as for a CSV file (a numeric target with at most 20 distinct
        integer values, or a text target, is a classification) unless ``kind`` is given;
        ``test_size`` of the rows are held out for test with a fixed seed (stratified for
        classes). The columns are checked as a CSV file's are.
        """
        from search.layout import check_name
        from search.tasks.frames import split_frame

        check_name("task", name)
        parts = split_frame(
            frame,
            target,
            kind,
            test_size,
            source="the DataFrame",
            origin="a DataFrame",
            seed=DATA_SEED,
        )
        return from_split(name, parts)


def _checked_arrays(
    x_train: Any, y_train: Any, x_test: Any, y_test: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The four arrays of :meth:`Task.from_arrays` as numpy arrays, once their shapes and
    values are fit for a task: finite numeric features, one target per row."""
    arrays = [np.asarray(a) for a in (x_train, y_train, x_test, y_test)]
    for label, array in zip(("x_train", "x_test"), arrays[::2], strict=True):
        if array.ndim != 2 or not np.issubdtype(array.dtype, np.number):
            raise SearchError(
                f"{label} must be a 2-d numeric array (rows x features), got shape "
                f"{array.shape} of {array.dtype}"
            )
        if not np.isfinite(array).all():
            raise SearchError(f"{label} holds a missing or infinite value")
    x_tr, y_tr, x_te, y_te = arrays
    if x_tr.shape[1] != x_te.shape[1]:
        raise SearchError(f"x_train has {x_tr.shape[1]} features but x_test has {x_te.shape[1]}")
    for x, y, split in ((x_tr, y_tr, "train"), (x_te, y_te, "test")):
        if y.reshape(len(y), -1).shape != (len(x), 1):
            raise SearchError(
                f"y_{split} must hold one target per row of x_{split} ({len(x)}), got "
                f"shape {y.shape}"
            )
    if len(x_tr) < 2 or len(x_te) < 1:
        raise SearchError("a task needs at least 2 training rows and 1 test row")
    return x_tr, y_tr, x_te, y_te


def _class_count(
    kind: str, y_train: np.ndarray, y_test: np.ndarray, class_names: tuple[str, ...] | None
) -> int:
    """The number of classes of a classification's labels, which must be class codes
    0..k-1 (k = 2 for a binary task), one name each where ``class_names`` names them."""
    codes = np.concatenate([y_train.reshape(-1), y_test.reshape(-1)])
    if not np.issubdtype(codes.dtype, np.number) or np.any(np.mod(codes, 1) != 0):
        raise SearchError(
            f"a {kind} task's labels must be integer class codes 0..k-1; encode them "
            "first (or use Task.from_frame, which does)"
        )
    n_classes = int(codes.max()) + 1 if codes.min() >= 0 else 0
    if codes.min() < 0 or n_classes < 2 or (kind == "binary" and n_classes != 2):
        raise SearchError(
            f"a {kind} task's labels must be class codes 0..k-1 with k "
            f"{'= 2' if kind == 'binary' else '>= 2'}; got "
            f"{sorted(set(codes.tolist()))[:10]}"
        )
    if class_names is not None and len(class_names) != n_classes:
        raise SearchError(f"class_names has {len(class_names)} names for {n_classes} classes")
    return n_classes


def from_split(name: str, parts: Split) -> Task:
    """The task of a checked and split table (a DataFrame's or a CSV file's)."""
    return make_task(
        TaskSpec(name, parts.kind, len(parts.features), parts.n_classes, parts.features),
        parts.x_train,
        parts.y_train,
        parts.x_test,
        parts.y_test,
        class_names=parts.class_names,
        notes=parts.notes,
        description=parts.description,
    )


def make_task(
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
    # Features are stored as float32, and their statistics are those of the stored values: a
    # task made again from its own arrays (Task.from_arrays) then standardises identically.
    x_train64 = np.asarray(x_train, dtype=np.float32).astype(np.float64)
    x_test64 = np.asarray(x_test, dtype=np.float32).astype(np.float64)
    mean = x_train64.mean(axis=0)
    std = x_train64.std(axis=0)
    # A constant feature would divide by zero; leaving it unscaled maps it to 0.
    std[std == 0] = 1.0

    if spec.kind == "regression":
        y_tr: np.ndarray = np.asarray(y_train, dtype=np.float64)
        y_te: np.ndarray = np.asarray(y_test, dtype=np.float64)
        baselines = regression_baselines(x_train64, y_tr, x_test64, y_te)
        spec = replace(spec, target_mean=float(y_tr.mean()))
        y_tr, y_te = y_tr.astype(np.float32), y_te.astype(np.float32)
    else:
        y_tr = np.asarray(y_train, dtype=np.int64)
        y_te = np.asarray(y_test, dtype=np.int64)
        baselines = classification_baselines(
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
