"""Any study's trials as Optuna objects: for the report's plots and for Optuna callbacks.

A keras-tuner study has no ``optuna.Study``; its records become one here, in memory, so that
Optuna's plots and importance evaluators and callbacks written for ``study.optimize``
(optuna-integration's ``MLflowCallback``, ``WeightsAndBiasesCallback``) serve both engines.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import optuna

from search.engines.records import COMPLETE, FAILED, PRUNED, TrialRecord

_STATES = {
    COMPLETE: optuna.trial.TrialState.COMPLETE,
    PRUNED: optuna.trial.TrialState.PRUNED,
    FAILED: optuna.trial.TrialState.FAIL,
}
# Above this ratio of the largest to the smallest positive value, a numeric parameter is
# taken as log-distributed (learning rates, L2 factors).
_LOG_RATIO = 100.0


def distributions(records: list[TrialRecord]) -> dict[str, optuna.distributions.BaseDistribution]:
    """A distribution per parameter that covers every value the trials took."""
    values: dict[str, list[Any]] = {}
    for record in records:
        for name, value in record.params.items():
            if value is not None:
                values.setdefault(name, []).append(value)
    found: dict[str, optuna.distributions.BaseDistribution] = {}
    for name, seen in values.items():
        if all(isinstance(v, bool) for v in seen) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in seen
        ):
            choices = sorted(set(seen), key=str)
            found[name] = optuna.distributions.CategoricalDistribution(choices)
        elif all(isinstance(v, int) for v in seen):
            found[name] = optuna.distributions.IntDistribution(min(seen), max(seen))
        else:
            low, high = float(min(seen)), float(max(seen))
            log = low > 0 and high / low > _LOG_RATIO
            found[name] = optuna.distributions.FloatDistribution(low, high, log=log)
    return found


def to_optuna(records: list[TrialRecord], directions: str | Sequence[str]) -> optuna.Study:
    """An in-memory Optuna study holding the finished trials (running ones are left out);
    one direction per objective for a study of several."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    directions = [directions] if isinstance(directions, str) else list(directions)
    study = optuna.create_study(
        directions=["minimize" if d == "min" else "maximize" for d in directions]
    )
    domains = distributions(records)
    for record in sorted(records, key=lambda r: r.number):
        if record.state in _STATES:
            trial = frozen_trial(record, domains)
            trial.set_user_attr("trial", record.number)
            study.add_trial(trial)
    return study


def frozen_trial(
    record: TrialRecord, domains: dict[str, optuna.distributions.BaseDistribution] | None = None
) -> optuna.trial.FrozenTrial:
    """A finished ``record`` as Optuna's ``FrozenTrial``, numbered as the record is; its
    user attributes hold the validation metrics, the epochs and the error."""
    params = {k: v for k, v in record.params.items() if v is not None}
    domains = domains or distributions([record])
    complete = record.state == COMPLETE and record.value is not None
    state = FAILED if record.state == COMPLETE and not complete else record.state
    attrs: dict[str, Any] = {
        **record.metrics,
        "epochs": record.epochs,
        "best_epoch": record.best_epoch,
        "error": record.error,
    }
    several = complete and record.values is not None
    trial = optuna.trial.create_trial(
        state=_STATES[state],
        value=float(record.value)
        if complete and not several and record.value is not None
        else None,
        values=[float(v) for v in record.values or ()] if several else None,
        params=params,
        distributions={k: domains[k] for k in params},
        user_attrs={k: v for k, v in attrs.items() if v is not None and v != ""},
    )
    trial.number = record.number
    return trial
