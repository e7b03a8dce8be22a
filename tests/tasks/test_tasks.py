"""Tests for search.tasks: built-in data, the csv task's checks, baselines and scoring."""

from __future__ import annotations

import math
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest

from search.errors import SearchError
from search.tasks import KINDS, Task, TaskSpec, describe_tasks, load_task, score, task_names
from search.tasks.scoring import _normal_equation, _predict_linear
from search.tasks.tabular import BENCHMARKS

BUILTINS = [
    "boston",
    "linear",
    "logistic",
    "mlp",
    "breast-cancer",
    "digits",
    "diabetes",
    "wine",
    "friedman1",
    "circles",
]
EXPECTED = {
    # name: (kind, n_classes, n_features, n_train, n_test)
    "boston": ("regression", 1, 13, 404, 102),
    "linear": ("regression", 1, 1, 80, 20),
    "logistic": ("binary", 2, 20, 1000, 100),
    "mlp": ("multiclass", 10, 20, 1000, 100),
    "breast-cancer": ("binary", 2, 30, 455, 114),
    "digits": ("multiclass", 10, 64, 1437, 360),
    "diabetes": ("regression", 1, 10, 353, 89),
    "wine": ("multiclass", 3, 13, 142, 36),
    "friedman1": ("regression", 1, 10, 800, 200),
    "circles": ("binary", 2, 10, 800, 200),
}


@pytest.fixture(scope="module")
def boston() -> Task:
    return load_task("boston")


# --------------------------------------------------------------------------- registry


def test_task_names_in_registry_order() -> None:
    assert task_names() == [*BUILTINS, *BENCHMARKS, "csv"]
    descriptions = describe_tasks()
    assert list(descriptions) == task_names()
    assert all(d and "\n" not in d for d in descriptions.values())


def test_unknown_task_lists_valid_names() -> None:
    with pytest.raises(SearchError, match=r"unknown task 'nope'.*boston, linear.*csv"):
        load_task("nope")


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"data": "x.csv"}, "--data"),
        ({"target": "y"}, "--target"),
        ({"kind": "binary"}, "--kind"),
        ({"test_size": 0.3}, "--test-size"),
    ],
)
def test_builtin_rejects_csv_options(kwargs: dict[str, object], flag: str) -> None:
    with pytest.raises(SearchError, match=rf"does not take {flag}; only the csv task takes"):
        load_task("boston", **kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- boston


def test_boston_matches_keras_split(boston: Task) -> None:
    expected_first = [1.23247, 0, 8.14, 0, 0.538, 6.142, 91.7, 3.9769, 4, 307, 21, 396.9, 18.72]
    np.testing.assert_allclose(boston.x_train[0], expected_first, rtol=1e-6)
    np.testing.assert_allclose(boston.y_train[:5], [15.2, 42.3, 50.0, 21.1, 17.7], rtol=1e-6)
    assert boston.spec.feature_names[0] == "CRIM"
    assert boston.spec.feature_names[-1] == "LSTAT"
    assert "B" in boston.description


def test_boston_train_and_test_are_the_whole_file_without_overlap(boston: Task) -> None:
    path = files("search.tasks") / "data" / "boston_house_prices.csv"
    table = np.loadtxt(str(path), delimiter=",", skiprows=2, dtype=np.float32)
    rows = {tuple(r) for r in table}
    assert len(rows) == 506
    train = {tuple(r) + (y,) for r, y in zip(boston.x_train, boston.y_train, strict=True)}
    test = {tuple(r) + (y,) for r, y in zip(boston.x_test, boston.y_test, strict=True)}
    assert len(train) == 404 and len(test) == 102
    assert not train & test
    assert train | test == rows


def test_boston_baselines(boston: Task) -> None:
    coef = _normal_equation(boston.x_train, boston.y_train)
    train_pred = _predict_linear(coef, boston.x_train)
    train_mse = score("regression", boston.y_train, train_pred)["mse"]
    assert round(train_mse, 4) == 22.0048
    assert round(boston.baselines["normal-equation"]["mse"], 4) == 23.1956
    assert round(boston.baselines["train-mean"]["mse"], 2) == 83.71
    assert boston.best_baseline() == ("normal-equation", boston.baselines["normal-equation"]["mse"])


# --------------------------------------------------------------------------- every built-in


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_task_shapes_and_baselines(name: str) -> None:
    task = load_task(name)
    kind, n_classes, n_features, n_train, n_test = EXPECTED[name]
    spec = task.spec
    assert (spec.name, spec.kind, spec.n_classes, spec.n_features) == (
        name,
        kind,
        n_classes,
        n_features,
    )
    assert len(spec.feature_names) == n_features
    assert task.x_train.shape == (n_train, n_features) and task.x_train.dtype == np.float32
    assert task.x_test.shape == (n_test, n_features) and task.x_test.dtype == np.float32
    assert task.y_train.shape == (n_train,) and task.y_test.shape == (n_test,)
    assert task.mean.dtype == np.float32 and task.std.dtype == np.float32
    assert task.description

    z = task.standardize(task.x_train)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-4)
    non_constant = task.x_train.std(axis=0) > 0
    np.testing.assert_allclose(z.std(axis=0)[non_constant], 1.0, atol=1e-3)

    if kind == "regression":
        assert task.y_train.dtype == np.float32
        assert (task.objective, task.headline) == ("val_mse", "mse")
        assert set(task.baselines) == {"normal-equation", "train-mean"}
        assert task.class_names == ()
    else:
        assert task.y_train.dtype == np.int64
        assert set(np.unique(task.y_train)) == set(range(n_classes))
        assert (task.objective, task.headline) == ("val_logloss", "accuracy")
        assert set(task.baselines) == {"majority-class", "logistic-regression"}
        assert len(task.class_names) == n_classes
    assert task.direction == "min"
    for values in task.baselines.values():
        assert set(values) == set(task.metrics)
        assert all(math.isfinite(v) for v in values.values())


def test_builtin_tasks_are_deterministic() -> None:
    a, b = load_task("logistic"), load_task("logistic")
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)


def test_noise_tasks_baselines_are_near_chance() -> None:
    logistic = load_task("logistic")
    for values in logistic.baselines.values():
        assert 0.3 <= values["accuracy"] <= 0.7
        assert values["logloss"] > 0.6
    mlp = load_task("mlp")
    for values in mlp.baselines.values():
        assert values["accuracy"] <= 0.25
        assert values["logloss"] > 2.0


def test_real_classification_baselines_beat_majority() -> None:
    for name in ("breast-cancer", "digits"):
        task = load_task(name)
        assert task.best_baseline()[0] == "logistic-regression"
        assert task.baselines["logistic-regression"]["accuracy"] > 0.9


# --------------------------------------------------------------------------- score


def test_score_regression() -> None:
    result = score("regression", np.array([1.0, 2.0, 3.0]), np.array([[1.0], [3.0], [5.0]]))
    # errors 0, 1, 2 -> mse (0 + 1 + 4) / 3, mae (0 + 1 + 2) / 3
    assert result == pytest.approx({"mse": 5 / 3, "mae": 1.0})


def test_score_binary() -> None:
    y = np.array([1, 0, 1, 0])
    p = np.array([0.9, 0.2, 0.4, 0.5])
    # 0.5 is not above the threshold, so it predicts 0: correct, correct, wrong, correct.
    expected = -(math.log(0.9) + math.log(0.8) + math.log(0.4) + math.log(0.5)) / 4
    assert score("binary", y, p) == pytest.approx({"logloss": expected, "accuracy": 0.75})
    assert score("binary", y, p.reshape(-1, 1)) == score("binary", y, p)


def test_score_binary_clips_certain_mistakes() -> None:
    result = score("binary", np.array([1]), np.array([0.0]))
    assert result["logloss"] == pytest.approx(-math.log(1e-7))
    assert result["accuracy"] == 0.0


def test_score_multiclass() -> None:
    y = np.array([0, 2, 1])
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.5, 0.4, 0.1]])
    expected = -(math.log(0.7) + math.log(0.6) + math.log(0.4)) / 3
    assert score("multiclass", y, p) == pytest.approx({"logloss": expected, "accuracy": 2 / 3})


def test_score_rejects_bad_input() -> None:
    with pytest.raises(SearchError, match="valid kinds: regression, binary, multiclass"):
        score("ordinal", np.array([1.0]), np.array([1.0]))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shape"):
        score("multiclass", np.array([0, 1]), np.array([0.5, 0.5]))
    with pytest.raises(ValueError, match="shape"):
        score("regression", np.array([1.0, 2.0]), np.array([1.0]))


# --------------------------------------------------------------------------- csv task


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _table(header: str, rows: list[str]) -> str:
    return "\n".join([header, *rows]) + "\n"


def test_csv_infers_multiclass_from_text_target(tmp_path: Path) -> None:
    species = ["setosa", "versicolor", "virginica"]
    rows = [f"{i},{i % 7 * 0.5},{species[i % 3]}" for i in range(30)]
    path = _write(tmp_path / "iris.csv", _table("a,b,species", rows))
    task = load_task("csv", data=path, target="species")
    assert task.spec == TaskSpec("csv", "multiclass", 2, 3, ("a", "b"))
    assert task.class_names == ("setosa", "versicolor", "virginica")
    note = "inferred kind: multiclass (target 'species' has 3 distinct values; pass --kind to "
    assert task.notes == (note + "override)",)
    assert task.x_train.shape == (24, 2) and task.x_test.shape == (6, 2)
    # Stratified: every class keeps 2 of its 10 rows in the test split.
    assert np.bincount(task.y_test).tolist() == [2, 2, 2]
    assert "iris.csv" in task.description


def test_csv_infers_binary_and_sorts_numeric_labels_numerically(tmp_path: Path) -> None:
    rows = [f"{i},{10 if i % 2 else 2}" for i in range(20)]
    task = load_task("csv", data=_write(tmp_path / "b.csv", _table("x,y", rows)), target="y")
    assert task.spec.kind == "binary" and task.spec.n_classes == 2
    assert task.class_names == ("2", "10")
    assert task.notes[0].startswith("inferred kind: binary (target 'y' has 2 distinct values")


def test_csv_infers_regression_from_real_valued_target(tmp_path: Path) -> None:
    rows = [f"{i},{i * 1.5 + 0.25}" for i in range(40)]
    task = load_task("csv", data=_write(tmp_path / "r.csv", _table("x,y", rows)), target="y")
    assert task.spec.kind == "regression" and task.spec.n_classes == 1
    assert task.y_train.dtype == np.float32 and task.class_names == ()
    assert task.notes[0].startswith("inferred kind: regression (target 'y' is numeric")


def test_csv_many_integer_values_is_regression_and_kind_overrides(tmp_path: Path) -> None:
    rows = [f"{i},{i % 25}" for i in range(50)]
    path = _write(tmp_path / "c.csv", _table("x,y", rows))
    assert load_task("csv", data=path, target="y").spec.kind == "regression"
    forced = load_task("csv", data=path, target="y", kind="multiclass", test_size=0.5)
    assert forced.spec.n_classes == 25 and forced.notes == ()
    assert forced.x_test.shape[0] == 25


def test_csv_target_column_may_sit_anywhere(tmp_path: Path) -> None:
    rows = [f"{i % 2},{i},{i * 2}" for i in range(12)]
    path = _write(tmp_path / "t.csv", _table("label,f1,f2", rows))
    task = load_task("csv", data=path, target="label", kind="binary")
    assert task.spec.feature_names == ("f1", "f2")
    assert task.spec.name == "csv"


def _good_rows(n: int = 12) -> list[str]:
    return [f"{i},{i % 3},{'ab'[i % 2]}" for i in range(n)]


BAD_CSV = [
    # id, file text (None: do not create), load_task kwargs, message pattern
    ("missing-file", None, {}, r"not found"),
    ("empty-file", "", {}, r"empty \(0 bytes\)"),
    ("blank-file", "\n\n", {}, r"no columns"),
    ("header-only", "a,b,y\n", {}, r"header but no data rows"),
    ("target-missing", _table("a,b,y", _good_rows()), {"target": "z"}, r"'z'.*'a', 'b', 'y'"),
    (
        "non-numeric-feature",
        _table("a,b,y", [*_good_rows(3), "3,oops,a", *_good_rows(8)]),
        {},
        r"feature column 'b' is not numeric: data row 4 holds 'oops'",
    ),
    (
        "missing-value",
        _table("a,b,y", [*_good_rows(5), "5,,a", *_good_rows(6)]),
        {},
        r"column 'b' has a missing value at data row 6",
    ),
    (
        "missing-target",
        _table("a,b,y", [*_good_rows(2), "2,1,", *_good_rows(9)]),
        {},
        r"column 'y' has a missing value at data row 3",
    ),
    (
        "infinite-value",
        _table("a,b,y", [*_good_rows(7), "inf,1,a", *_good_rows(4)]),
        {},
        r"column 'a' has an infinite value at data row 8",
    ),
    ("too-few-rows", _table("a,b,y", _good_rows(9)), {}, r"9 data rows.*at least 10"),
    (
        "one-class",
        _table("a,b,y", [f"{i},{i},same" for i in range(12)]),
        {},
        r"target column 'y' has a single value \(same\)",
    ),
    ("bad-kind", _table("a,b,y", _good_rows()), {"kind": "ordinal"}, r"'ordinal'.*regression, b"),
    (
        "regression-text-target",
        _table("a,b,y", _good_rows()),
        {"kind": "regression"},
        r"needs a numeric target; column 'y' holds 'a' at data row 1",
    ),
    (
        "binary-three-classes",
        _table("a,y", [f"{i},{i % 3}" for i in range(12)]),
        {"kind": "binary"},
        r"exactly 2 classes; target 'y' has 3 distinct values",
    ),
    ("test-size-zero", _table("a,b,y", _good_rows()), {"test_size": 0.0}, r"0 < F < 1, got 0.0"),
    ("test-size-one", _table("a,b,y", _good_rows()), {"test_size": 1.0}, r"0 < F < 1, got 1.0"),
    ("no-features", _table("y", ["a", "b"] * 6), {}, r"no feature columns besides target 'y'"),
    ("ragged-rows", _table("a,b,y", [*_good_rows(3), "1,2,3,4,5"]), {}, r"cannot parse"),
    ("no-target-given", _table("a,b,y", _good_rows()), {"target": None}, r"--target.*'a', 'b'"),
]


@pytest.mark.parametrize(
    ("text", "kwargs", "pattern"), [case[1:] for case in BAD_CSV], ids=[c[0] for c in BAD_CSV]
)
def test_csv_bad_input(
    tmp_path: Path, text: str | None, kwargs: dict[str, object], pattern: str
) -> None:
    path = tmp_path / "data.csv"
    if text is not None:
        _write(path, text)
    options: dict[str, object] = {"data": path, "target": "y", **kwargs}
    with pytest.raises(SearchError, match=pattern) as info:
        load_task("csv", **options)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def test_csv_requires_data() -> None:
    with pytest.raises(SearchError, match="needs --data FILE"):
        load_task("csv", target="y")


def test_csv_data_must_be_a_file(tmp_path: Path) -> None:
    with pytest.raises(SearchError, match="not a file"):
        load_task("csv", data=tmp_path, target="y")


def test_csv_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes(b"a,\xe9t\xe9\n" + b"1,2\n" * 12)
    with pytest.raises(SearchError, match="not UTF-8"):
        load_task("csv", data=path, target="a")


def test_kinds_constant() -> None:
    assert KINDS == ("regression", "binary", "multiclass")


def test_friedman1_is_friedmans_function_plus_unit_noise() -> None:
    """Its target is 10 sin(pi x1 x2) + 20 (x3 - 0.5)^2 + 10 x4 + 5 x5 plus N(0, 1) noise,
    so no model can beat a test MSE of about 1, and a linear one stays far above it."""
    task = load_task("friedman1")
    x = task.x_train.astype(np.float64)
    signal = (
        10 * np.sin(np.pi * x[:, 0] * x[:, 1])
        + 20 * (x[:, 2] - 0.5) ** 2
        + 10 * x[:, 3]
        + 5 * x[:, 4]
    )
    noise = task.y_train - signal
    assert abs(noise.mean()) < 0.1 and 0.9 < noise.std() < 1.1
    assert task.baselines["normal-equation"]["mse"] > 5


def test_circles_has_no_linear_signal() -> None:
    """A linear model stays near chance on two concentric circles; only a nonlinear one can
    learn them, so the search matters there."""
    task = load_task("circles")
    assert 0.35 < task.baselines["logistic-regression"]["accuracy"] < 0.6
    radius = np.hypot(task.x_train[:, 0], task.x_train[:, 1])
    assert radius[task.y_train == 1].mean() < radius[task.y_train == 0].mean()  # inner, outer
