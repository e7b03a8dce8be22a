"""Callbacks a study can be given: any ``callback(study, frozen_trial)`` as Optuna's
``study.optimize`` takes; :func:`mlflow` makes optuna-integration's MLflow one."""

from __future__ import annotations

from typing import Any

from search.errors import SearchError


def mlflow(tracking_uri: str, objective: str) -> Any:
    """optuna-integration's ``MLflowCallback``: one MLflow run per trial (its objective value,
    hyperparameters and state) in the experiment named after the study."""
    try:
        from optuna_integration.mlflow import MLflowCallback
    except ImportError:
        raise SearchError(
            "--mlflow needs mlflow and optuna-integration: pip install 'search[mlflow]'"
        ) from None
    return MLflowCallback(tracking_uri=tracking_uri, metric_name=objective)
