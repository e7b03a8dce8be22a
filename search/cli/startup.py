"""What ``run`` and ``bench`` set up before their studies: the Keras backend of this process
(chosen before Keras loads) and the task the command names."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from search.bench.suite import TASK_OPTIONS
from search.space_lookup import BUILTIN_SPACES
from search.tasks import load_task
from search.tasks.task import Task
from search.trainers import light_backend


def use_light_backend(spaces: Sequence[str | None], trainers: Sequence[str]) -> None:
    """Keras' numpy backend for this process and the ones it starts, where every study
    builds a built-in space (``None``: the task's own) with the numpy trainer.

    Built-in spaces need no ``fit``, which Keras' numpy backend lacks; a space of the user's
    might, so it keeps Keras' own backend. Called before anything imports Keras.
    """
    builtin = all(space is None or space in BUILTIN_SPACES for space in spaces)
    backends = {light_backend(trainer) for trainer in trainers}
    if builtin and len(backends) == 1 and (backend := backends.pop()):
        os.environ["KERAS_BACKEND"] = backend  # workers and bench jobs inherit it


def check_cluster_address(address: str) -> None:
    """Refuse --cluster at once where the dask extra is missing or ADDRESS is none."""
    from search.study.cluster import address_of  # loads no Dask: it looks for it

    address_of(address)


def command_task(args: argparse.Namespace) -> Task:
    """The task of a run or bench command (the csv task's options); notes on stderr."""
    given = {name: getattr(args, name) for name in TASK_OPTIONS}
    task = load_task(args.task, **{k: v for k, v in given.items() if v is not None})
    for note in task.notes:
        print(note, file=sys.stderr)
    return task
