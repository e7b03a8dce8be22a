"""Callbacks a study can be given: any ``callback(study, frozen_trial)`` as Optuna's
``study.optimize`` takes; :func:`mlflow` makes the one behind ``--mlflow``.

``--mlflow`` logs through MLflow's own client. optuna-integration's ``MLflowCallback`` did
it before; it is deprecated since optuna-integration 4.9 and goes in 6.0, and warned so on
every run. A user who passes that callback to ``Study.run`` still gets it called as before.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from search.errors import SearchError


def mlflow(tracking_uri: str, objectives: Sequence[str]) -> MLflowLogger:
    """One MLflow run per finished trial, in the experiment named after the study, at
    ``tracking_uri``; refused in one line where MLflow is not installed."""
    try:
        from mlflow import MlflowClient
    except ImportError:
        raise SearchError("--mlflow needs mlflow: pip install 'search[mlflow]'") from None
    return MLflowLogger(MlflowClient(tracking_uri), tuple(objectives))


class MLflowLogger:
    """``callback(study, frozen_trial)``: the trial as an MLflow run named by its number,
    with its objective values and validation metrics as metrics, its hyperparameters as
    params, and its number, state and the study's directions as tags (the names and tags
    optuna-integration's ``MLflowCallback`` used, so existing MLflow queries still work).

    It talks to MLflow through a client of its own: MLflow's global tracking URI and active
    run, which a notebook may use for its own runs, stay as they were.
    """

    def __init__(self, client: Any, objectives: tuple[str, ...]) -> None:
        self.client = client
        self.objectives = objectives
        self._experiments: dict[str, str] = {}
        self._lock = threading.Lock()  # an experiment is created once, whoever calls first

    def __call__(self, study: Any, trial: Any) -> None:
        with self._lock:
            experiment = self._experiment(study.study_name)
        run = self.client.create_run(
            experiment, run_name=str(trial.number), tags=_tags(study, trial)
        )
        params = {name: str(value) for name, value in trial.params.items()}
        metrics = {k: float(v) for k, v in trial.user_attrs.items() if _is_metric(k, v)}
        metrics |= dict(zip(self.objectives, map(float, trial.values or ()), strict=False))
        from mlflow.entities import Metric, Param

        stamp = int(time.time() * 1000)
        self.client.log_batch(
            run.info.run_id,
            metrics=[Metric(k, v, stamp, 0) for k, v in metrics.items()],
            params=[Param(k, v) for k, v in params.items()],
        )
        self.client.set_terminated(run.info.run_id)

    def _experiment(self, name: str) -> str:
        """The id of the experiment ``name``, created if MLflow has none."""
        if name not in self._experiments:
            found = self.client.get_experiment_by_name(name)
            self._experiments[name] = (
                found.experiment_id if found else self.client.create_experiment(name)
            )
        return self._experiments[name]


def _tags(study: Any, trial: Any) -> dict[str, str]:
    directions = [d.name for d in study.directions]
    return {
        "number": str(trial.number),
        "state": trial.state.name,
        "direction": directions[0] if len(directions) == 1 else str(directions),
        "datetime_start": str(trial.datetime_start),
        "datetime_complete": str(trial.datetime_complete),
    }


def _is_metric(name: str, value: Any) -> bool:
    """A trial's validation metric (``val_mse``...) among its user attributes."""
    return name.startswith("val_") and isinstance(value, int | float)
