"""A running trial's checkpoint: the epochs it finished, so an interrupted trial continues.

One file per trial, ``<study>/checkpoints/trial_0003.npz``, named by the trial it continues
(a trial that runs again keeps the first one's name): the curve of every run (fold x
execution) so far, and the unfinished runs' weights and optimizer state as numbered arrays.
It is written atomically (a temporary file, then a rename) when a run ends an epoch (in the
compiled trainer, a chunk of epochs), at most every :attr:`Every.epochs` epochs and
:attr:`Every.seconds` seconds, and removed when the trial ends; the file holds no pickle
(``allow_pickle=False``: a JSON header and arrays).
"""

from __future__ import annotations

import json
import logging
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from search.faults import crash_point
from search.files import atomic_path

CHECKPOINTS = "checkpoints"  # the study folder's folder of checkpoints
_HEADER = "header"
_log = logging.getLogger("search")


@dataclass(frozen=True)
class Every:
    """How often a trial writes its checkpoint: after an epoch, once at least ``epochs``
    epochs and ``seconds`` seconds have passed since its last one (or its start). ``epochs``
    0: never (checkpoints off)."""

    epochs: int = 1
    seconds: float = 5.0

    @property
    def off(self) -> bool:
        return self.epochs == 0


@dataclass
class Saved:
    """What a checkpoint holds: each run's curve so far (in run order), the epochs of each
    unfinished run, its arrays (weights, optimizer state) by run, and the seconds trained."""

    curves: list[dict[str, list[float]]]
    running: dict[int, list[np.ndarray]] = field(default_factory=dict)
    seconds: float = 0.0
    params: int = 0
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def epochs(self) -> int:
        """The epochs trained in all (what a rerun continues from; ``progress``)."""
        return sum(len(next(iter(curve.values()), [])) for curve in self.curves)


def path_of(folder: Path, trial: int) -> Path:
    """The checkpoint of the trial numbered ``trial`` (the first of its attempts)."""
    return folder / CHECKPOINTS / f"trial_{trial:04d}.npz"


class Checkpoint:
    """One trial's checkpoint file: :meth:`load` at its start, :meth:`due` and :meth:`save`
    after epochs, :meth:`remove` once it has ended."""

    def __init__(self, path: Path, every: Every) -> None:
        self.path = path
        self.every = every
        self._last = time.monotonic()
        self._epochs = 0  # epochs since the last save

    def load(self) -> Saved | None:
        """The trial's checkpoint, or None where it has none or it cannot be read (then a
        note says it starts over)."""
        if not self.path.exists():
            return None
        try:
            return read(self.path)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
            _log.info(
                "the checkpoint %s cannot be read (%s): its trial starts over", self.path, error
            )
            return None

    def tick(self, epochs: int = 1) -> bool:
        """``epochs`` more epochs ended (a compiled trainer's chunk: several at once);
        whether a checkpoint is due now."""
        self._epochs += epochs
        if self.every.off:
            return False
        if self._epochs < self.every.epochs:
            return False
        return time.monotonic() - self._last >= self.every.seconds

    def save(self, saved: Saved) -> None:
        """Write ``saved`` in place of the last checkpoint, atomically."""
        header = {
            "curves": saved.curves,
            "running": {str(run): len(arrays) for run, arrays in saved.running.items()},
            "seconds": saved.seconds,
            "params": saved.params,
            "extra": saved.extra,
        }
        arrays = {
            f"run{run}_{k}": np.asarray(array)
            for run, values in saved.running.items()
            for k, array in enumerate(values)
        }
        arrays[_HEADER] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        with atomic_path(self.path) as temporary, open(temporary, "wb") as file:
            np.savez(file, allow_pickle=False, **arrays)
        self._last, self._epochs = time.monotonic(), 0
        crash_point("checkpoint")

    def remove(self) -> None:
        """The trial ended: its checkpoint goes."""
        self.path.unlink(missing_ok=True)


def read(path: Path) -> Saved:
    with np.load(path, allow_pickle=False) as stored:
        header = json.loads(bytes(stored[_HEADER]).decode())
        running = {
            int(run): [stored[f"run{run}_{k}"] for k in range(count)]
            for run, count in header["running"].items()
        }
    return Saved(
        header["curves"], running, float(header["seconds"]), int(header["params"]), header["extra"]
    )


def progress(path: Path) -> int:
    """The epochs a trial's checkpoint holds (0: none, or unreadable): what tells an
    interruption after progress from one at the same point."""
    try:
        return read(path).epochs if path.exists() else 0
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return 0


def restore_curves(saved: Saved | None, runs: int) -> list[dict[str, list[float]]]:
    """The saved runs' curves, at most ``runs`` of them (copies: they grow as runs go on)."""
    if saved is None:
        return []
    return [{k: list(v) for k, v in curve.items()} for curve in saved.curves[:runs]]


def same_shapes(arrays: Sequence[np.ndarray], like: Sequence[Any]) -> bool:
    """Whether saved ``arrays`` fit variables ``like`` (a model rebuilt the same way)."""
    return len(arrays) == len(like) and all(
        tuple(a.shape) == tuple(v.shape) for a, v in zip(arrays, like, strict=True)
    )
