"""Engines: keras-tuner and Optuna behind one :class:`Engine` contract.

:func:`open_engine` opens a study's engine over its storage. The contract and the names of
engines, algorithms and pruners (what the CLI offers) are in :mod:`~search.engines.base`,
the trial records every engine gives back in :mod:`~search.engines.records`; each engine is
a package of its own (:mod:`~search.engines.optuna`, :mod:`~search.engines.keras_tuner`).
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
    check_engine,
)
from search.engines.records import Records, TrialRecord, budget_used, too_many_failures

if TYPE_CHECKING:
    from search.space import Space


def open_engine(config: EngineConfig, space: Space | None, folder: Path) -> Engine:
    """The engine for ``config`` over its storage in ``folder`` (created or resumed)."""
    # An engine's libraries (Optuna, keras-tuner, Keras) load when a study opens it, not when
    # `search` is imported.
    if config.engine == "optuna":
        from search.engines.optuna.engine import OptunaEngine

        return OptunaEngine(config, folder)
    from search.engines.keras_tuner.engine import KerasTunerEngine

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
    "Records",
    "TrialRecord",
    "budget_used",
    "check_engine",
    "open_engine",
    "too_many_failures",
]
