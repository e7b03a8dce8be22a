"""keras-tuner's trials as trial records.

A keras-tuner trial keeps its value, its validation metrics and the stored fields (epochs,
parameters, seconds, seed) all as metrics, and its error as its message; its state is one of
keras-tuner's statuses.
"""

from __future__ import annotations

from typing import Any

from search import _compat
from search.engines.records import (
    COMPLETE,
    FAILED,
    INTERRUPTED,
    PRUNED,
    RUNNING,
    STORED_FIELDS,
    TrialRecord,
    stored_fields,
)

_STATES = {
    "COMPLETED": COMPLETE,
    "FAILED": FAILED,
    "INVALID": FAILED,
    "RUNNING": RUNNING,
    "IDLE": RUNNING,
    "STOPPED": PRUNED,
}
# A trial in one of these statuses never changes again (a RUNNING one may be run again).
_FINISHED = ("COMPLETED", "FAILED", "INVALID", "STOPPED")


def finished(trial: Any) -> bool:
    """Whether a keras-tuner trial can change no more."""
    return trial.status in _FINISHED


def trial_record(trial: Any, objective: str) -> TrialRecord:
    """A keras-tuner ``Trial`` as its record; ``objective`` names the metric that is its value."""
    status = str(trial.status)
    metrics = trial.metrics
    values = {name: float(metrics.get_last_value(name)) for name in metrics.metrics}
    stored = stored_fields(values)
    for name in STORED_FIELDS:
        values.pop(name, None)
    error = ""
    if trial.message and status != "COMPLETED":
        lines = [line for line in str(trial.message).strip().splitlines() if line.strip()]
        error = lines[-1].split("FailedTrialError: ")[-1] if lines else ""
    hp = trial.hyperparameters
    params = {
        name: value
        for name, value in hp.values.items()
        if not name.startswith("tuner/") and _is_active(hp, name)
    }
    state = _STATES.get(status, FAILED)
    if state == RUNNING and error.startswith(INTERRUPTED):
        state = FAILED
    return TrialRecord(
        number=int(trial.trial_id),
        state=state,
        value=values.get(objective) if state == COMPLETE else None,
        params=params,
        metrics={k: v for k, v in values.items() if k.startswith("val_")},
        error=error,
        **stored,
    )


def _is_active(hp: Any, name: str) -> bool:
    declared = _compat.declarations(hp)
    return any(hp.is_active(item) for item in declared.get(name, [])) or name not in declared
