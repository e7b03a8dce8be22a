"""Tables as tasks: the checks of a CSV file or DataFrame, kind inference and the split.

Each bad cell is located by column and data row (the first row after the header is row 1),
so a user's mistake ends in one line that says where to look.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd

from search.errors import SearchError
from search.tasks.scoring import KINDS, Kind

# A numeric target with at most this many distinct integer values is taken as class labels.
_MAX_INFERRED_CLASSES = 20
_MIN_ROWS = 10
DEFAULT_TEST_SIZE = 0.2


@dataclass(frozen=True)
class Split:
    """A checked table, split into train and test, with what was inferred about it."""

    kind: Kind
    features: tuple[str, ...]
    n_classes: int
    class_names: tuple[str, ...]
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    notes: tuple[str, ...]
    description: str


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


def read_csv(path: Path) -> pd.DataFrame:
    """A CSV file as a table of text cells, or one line saying why it cannot be read."""
    frame = _read_csv(path)
    with path.open(encoding="utf-8", newline="") as handle:
        header = next(csv.reader(handle), [])
    if header and all(_is_number(name) for name in header):
        # pandas would take the first data row for the column names ("0.0", "6.3", ...).
        raise SearchError(
            f"--data file {path} has no header row (its first line is all numbers); its "
            "first line must name the columns"
        )
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        # pandas would rename the second copy ("a.1") and carry on with both.
        raise SearchError(
            f"--data file {path} repeats column {repeated[0]!r} in its header; give every "
            "column its own name"
        )
    return frame


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def split_frame(
    frame: pd.DataFrame,
    target: str | None,
    kind: str | None,
    test_size: float | None,
    *,
    source: str,
    origin: str,
    seed: int,
) -> Split:
    """Check ``frame`` (``source`` names it in errors), infer the kind, split train/test;
    ``origin`` says where the data came from in the task's description; ``seed`` draws the
    split."""
    if kind is not None and kind not in KINDS:
        raise SearchError(f"unknown --kind {kind!r}; valid kinds: {', '.join(KINDS)}")
    fraction = DEFAULT_TEST_SIZE if test_size is None else float(test_size)
    if not 0.0 < fraction < 1.0:
        raise SearchError(f"--test-size must be a fraction with 0 < F < 1, got {test_size}")
    frame, name = _checked_table(frame, target, source)
    features = [c for c in frame.columns if c != name]
    x = frame[features].apply(pd.to_numeric).to_numpy(dtype=np.float64)
    column = _read_target(frame, name)
    chosen, notes = _kind(kind, column)
    y, class_names = _encoded(column, chosen)
    x_train, x_test, y_train, y_test, stratified = _train_test(
        x, y, fraction, len(class_names) if class_names else None, name, seed
    )
    if not stratified:
        notes.append("split not stratified: a class has a single row or a split is too small")
    description = (
        f"{chosen}, {len(frame)} rows x {len(features)} features ({len(x_train)} train / "
        f"{len(x_test)} test), {origin}, target {name!r}"
    )
    return Split(
        chosen,
        tuple(features),
        len(class_names) or 1,
        class_names,
        x_train,
        y_train,
        x_test,
        y_test,
        tuple(notes),
        description,
    )


def _checked_table(
    frame: pd.DataFrame, target: str | None, source: str
) -> tuple[pd.DataFrame, str]:
    """``frame`` with text column names, and its target, once its columns, its rows and
    its cells are fit for a task."""
    if frame.columns.duplicated().any():
        repeated = frame.columns[frame.columns.duplicated()][0]
        raise SearchError(f"{source} repeats column {repeated!r}; give every column its own name")
    frame = frame.rename(columns=str)
    columns = [str(c) for c in frame.columns]
    if target is None:
        raise SearchError(f"the csv task needs --target COLUMN; columns: {_show_columns(columns)}")
    if target not in columns:
        raise SearchError(
            f"target column {target!r} not in {source}; columns: {_show_columns(columns)}"
        )
    if len(frame) == 0:
        raise SearchError(f"{source} has a header but no data rows")
    if len(columns) < 2:
        raise SearchError(f"{source} has no feature columns besides target {target!r}")
    if len(frame) < _MIN_ROWS:
        raise SearchError(f"{source} has {len(frame)} data rows; a task needs at least {_MIN_ROWS}")
    _check_cells(frame, target)
    return frame, target


@dataclass(frozen=True)
class _Target:
    """A checked table's target column, read for its kind."""

    name: str
    cells: pd.Series  # as the table holds them, for the messages
    numbers: np.ndarray  # float64, NaN where a cell is not a number
    not_numeric: np.ndarray  # where a cell is not a number
    labels: np.ndarray  # the numbers, or the cells' text where any is not a number
    distinct: np.ndarray  # the labels' distinct values, sorted

    @property
    def numeric(self) -> bool:
        return not self.not_numeric.any()


def _read_target(frame: pd.DataFrame, target: str) -> _Target:
    """The target column of a checked table; it must hold at least two distinct values."""
    numbers, not_numeric = _numeric_column(frame, target)
    labels: np.ndarray = numbers if not not_numeric.any() else frame[target].to_numpy(dtype=str)
    distinct = np.unique(labels)
    if distinct.shape[0] < 2:
        raise SearchError(
            f"target column {target!r} has a single value ({_class_label(distinct[0].item())}); "
            "a task needs at least 2 classes or distinct values"
        )
    return _Target(target, frame[target], numbers, not_numeric, labels, distinct)


def _kind(kind: str | None, target: _Target) -> tuple[Kind, list[str]]:
    """The task's kind, ``kind`` checked against the target or inferred from it, and the
    note that says how an inferred kind was chosen."""
    count = target.distinct.shape[0]
    if kind is None:
        integral = target.numeric and bool(np.all(np.mod(target.numbers, 1.0) == 0.0))
        if not target.numeric or (integral and count <= _MAX_INFERRED_CLASSES):
            chosen: Kind = "binary" if count == 2 else "multiclass"
            why = f"target {target.name!r} has {count} distinct values"
        else:
            chosen = "regression"
            why = f"target {target.name!r} is numeric with {count} distinct values"
        return chosen, [f"inferred kind: {chosen} ({why}; pass --kind to override)"]
    chosen = cast(Kind, kind)
    if chosen == "regression" and not target.numeric:
        row = _first_row(target.not_numeric)
        raise SearchError(
            f"--kind regression needs a numeric target; column {target.name!r} holds "
            f"{target.cells.iloc[row - 1]!r} at data row {row}"
        )
    if chosen == "binary" and count != 2:
        raise SearchError(
            f"--kind binary needs exactly 2 classes; target {target.name!r} has "
            f"{count} distinct values (use --kind multiclass or regression)"
        )
    return chosen, []


def _encoded(target: _Target, kind: Kind) -> tuple[np.ndarray, tuple[str, ...]]:
    """The target as the task holds it: the numbers for a regression, else class codes
    0..k-1, with the classes' names (none for a regression)."""
    if kind == "regression":
        return target.numbers, ()
    # np.unique sorts numerically for numbers and lexically for text: codes follow that.
    distinct, codes = np.unique(target.labels, return_inverse=True)
    return codes, tuple(_class_label(v.item()) for v in distinct)


def _train_test(
    x: np.ndarray, y: np.ndarray, fraction: float, n_classes: int | None, target: str, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]:
    """``x_train, x_test, y_train, y_test`` with ``fraction`` of the rows held out for test,
    stratified by class (``n_classes``; None for a regression) where that is possible, and
    whether it was."""
    from sklearn.model_selection import train_test_split

    n_rows = len(x)
    n_test = math.ceil(fraction * n_rows)  # the rounding sklearn uses for a float test_size
    n_train = n_rows - n_test
    if n_train < 2:
        raise SearchError(
            f"--test-size {fraction} leaves {n_train} of {n_rows} rows for training; lower it"
        )
    stratify: np.ndarray | None = None
    if n_classes is not None:
        counts = np.bincount(y, minlength=n_classes)
        # sklearn cannot stratify when a class has one row or a split is smaller than k.
        if counts.min() >= 2 and min(n_test, n_train) >= n_classes:
            stratify = y
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=fraction, random_state=seed, stratify=stratify
    )
    if n_classes is not None and np.unique(y_train).shape[0] < 2:
        raise SearchError(
            f"the training split of target {target!r} holds a single class; add rows of the "
            "other classes or lower --test-size"
        )
    return x_train, x_test, y_train, y_test, n_classes is None or stratify is not None


def read_features(path: str | Path, feature_names: tuple[str, ...]) -> np.ndarray:
    """The named feature columns of a CSV file, checked as a training file is (for predict).

    Other columns (an id, the target) are ignored; a missing feature column is an error.
    """
    frame = read_csv(Path(path))
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
