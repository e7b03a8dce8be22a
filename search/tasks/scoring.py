"""Scoring: each task kind's metrics, the one scoring function, and the reference baselines.

The metrics of a kind are named once here (:data:`METRICS`); the leaderboards, TensorBoard,
the spaces' Keras metrics and the trainers all read them from this table.
"""

from __future__ import annotations

import warnings
from typing import Literal, cast

import numpy as np

from search.errors import SearchError

Kind = Literal["regression", "binary", "multiclass"]
KINDS: tuple[str, ...] = ("regression", "binary", "multiclass")
# Each kind's metrics, as `score` reports them: the first is the default objective (on the
# validation split, `val_` prefixed); HEADLINE is the test metric a result is summarised by.
METRICS: dict[str, tuple[str, ...]] = {
    "regression": ("mse", "mae"),
    "binary": ("logloss", "accuracy"),
    "multiclass": ("logloss", "accuracy"),
}
HEADLINE: dict[str, str] = {"regression": "mse", "binary": "accuracy", "multiclass": "accuracy"}
ALL_METRICS: tuple[str, ...] = tuple(dict.fromkeys(m for ms in METRICS.values() for m in ms))

# Clip for log loss so a confident wrong prediction costs a large but finite amount.
_EPS = 1e-7


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


def regression_baselines(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray
) -> dict[str, dict[str, float]]:
    coef = _normal_equation(x_train, y_train)
    mean_pred = np.full(y_test.shape[0], float(np.mean(y_train, dtype=np.float64)))
    return {
        "normal-equation": score("regression", y_test, _predict_linear(coef, x_test)),
        "train-mean": score("regression", y_test, mean_pred),
    }


def classification_baselines(
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
