"""search: one search-space definition, keras-tuner or Optuna, TensorBoard, leaderboards.

Example:
    >>> import search
    >>> task = search.load_task("boston")  # doctest: +SKIP
    >>> result = search.Study(task, "mlp", engine="optuna").run(trials=20)  # doctest: +SKIP
    >>> result.leaderboard.head()  # doctest: +SKIP

The names below load on first use, so ``import search`` stays fast; Keras loads when a study
runs or a model is built.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

# TensorFlow's C++ start-up chatter (oneDNN notices, CPU feature lines) is noise for a CLI user.
# oneDNN's custom ops are off too: they make float results depend on the thread schedule, and
# for models this small they bring no speed.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

__version__ = "0.1.0"

_PUBLIC = {
    "SearchError": "search.errors",
    "EnvironmentFaultError": "search.errors",
    "Space": "search.space",
    "Task": "search.tasks",
    "load_task": "search.tasks",
    "task_names": "search.tasks",
    "Study": "search.study.api",
    "Result": "search.study.api",
    "ENGINES": "search.engines.base",
    "PRUNERS": "search.engines.base",
    "TRAINERS": "search.trainers",
}
__all__ = ["__version__", *_PUBLIC]

if TYPE_CHECKING:
    from search.engines.base import ENGINES as ENGINES
    from search.engines.base import PRUNERS as PRUNERS
    from search.errors import EnvironmentFaultError as EnvironmentFaultError
    from search.errors import SearchError as SearchError
    from search.space import Space as Space
    from search.study.api import Result as Result
    from search.study.api import Study as Study
    from search.tasks import Task as Task
    from search.tasks import load_task as load_task
    from search.tasks import task_names as task_names
    from search.trainers import TRAINERS as TRAINERS


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'search' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
