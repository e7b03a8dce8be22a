"""Engines: keras-tuner and Optuna behind one :class:`Engine` contract.

:func:`open_engine` opens a study's engine over its storage; the names of engines,
algorithms and pruners (what the CLI offers) are declared here once.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from search.engines.base import (
    CONTENDERS,
    DEFAULT_ALGORITHM,
    DEFAULT_ENGINE,
    DEFAULT_PRUNER,
    ENGINES,
    PRUNERS,
    Asked,
    Chief,
    Engine,
    EngineConfig,
    Objective,
    TrialRecord,
    check_engine,
)
from search.engines.ledger import budget_used, too_many_failures

if TYPE_CHECKING:
    from search.space import Space


def open_engine(config: EngineConfig, space: Space | None, folder: Path) -> Engine:
    """The engine for ``config`` over its storage in ``folder`` (created or resumed)."""
    # Each engine imports its library (Optuna, keras-tuner and Keras) when opened: the other
    # one is never loaded.
    if config.engine == "optuna":
        from search.engines.optuna_engine import OptunaEngine

        return OptunaEngine(config, folder)
    from search.engines.keras_tuner_engine import KerasTunerEngine

    return KerasTunerEngine(config, space, folder)


__all__ = [
    "CONTENDERS",
    "DEFAULT_ALGORITHM",
    "DEFAULT_ENGINE",
    "DEFAULT_PRUNER",
    "ENGINES",
    "PRUNERS",
    "Asked",
    "Chief",
    "Engine",
    "EngineConfig",
    "Objective",
    "TrialRecord",
    "budget_used",
    "check_engine",
    "open_engine",
    "too_many_failures",
]
