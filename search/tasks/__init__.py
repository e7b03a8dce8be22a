"""Tasks: the data a search runs on, its splits, its metrics and its reference baselines.

A :class:`Task` comes from arrays (:meth:`Task.from_arrays`), a DataFrame
(:meth:`Task.from_frame`), or by name (:func:`load_task`: the built-ins and ``csv``).
"""

from __future__ import annotations

from search.tasks.builtin import describe_tasks, load_task, task_names
from search.tasks.scoring import ALL_METRICS, HEADLINE, KINDS, METRICS, Kind, maximised, score
from search.tasks.task import Task, TaskSpec

__all__ = [
    "ALL_METRICS",
    "HEADLINE",
    "KINDS",
    "METRICS",
    "Kind",
    "Task",
    "TaskSpec",
    "describe_tasks",
    "load_task",
    "maximised",
    "score",
    "task_names",
]
