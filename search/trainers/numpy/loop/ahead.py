"""The entry points' argument types, and their compilation ahead of the first trial.

What the numpy trainer passes (:class:`search.trainers.numpy.members.Lockstep`) is always
C-contiguous arrays of int64 and float32, so each entry point is compiled for one signature,
by name, before the first trial needs it: in the process that :mod:`.background` starts
beside a run's start (it writes numba's cache), then in the run's own process (which loads
from that cache; or, where the cache held the code already, at once, ending that process).
"""

from __future__ import annotations

from numba import types

from search import _compat
from search.trainers.numpy.loop import epoch

_INDEX = types.int64[::1]  # members, labels, counts, dropout columns, flags, metric codes
_TABLE = types.int64[:, ::1]  # rows, layers, variables
_VECTOR = types.float32[::1]  # per member: step, learning rate, clippings; hyper
_MATRIX = types.float32[:, ::1]  # weights, penalties, dropout rates and scales, data, logs
_CUBE = types.float32[:, :, ::1]  # optimizer slots, dropout draws

TRAIN_EPOCH = (
    (_INDEX, _MATRIX, _CUBE, _VECTOR, _VECTOR, _MATRIX, _MATRIX)  # members .. l2
    + (_VECTOR, _VECTOR, _VECTOR, _MATRIX, _MATRIX)  # clipnorm .. scales
    + (_MATRIX, _MATRIX, _INDEX, _TABLE, _INDEX, _CUBE)  # x, yf, yi, rows, counts, uniforms
    + (_TABLE, _INDEX, _TABLE, _INDEX, _VECTOR, _INDEX, _MATRIX)  # layers .. logs
)
EVALUATE = (
    (_INDEX, _MATRIX, _MATRIX, _MATRIX)  # members, flat, l1, l2
    + (_MATRIX, _MATRIX, _INDEX, _TABLE, _INDEX)  # x, yf, yi, rows, counts
    + (_TABLE, _TABLE, _INDEX, _VECTOR, _INDEX, _MATRIX)  # layers .. logs
)


def cached() -> bool:
    """Whether numba's cache holds both entry points for the trainer's types."""
    return _compat.numba_cached(epoch.train_epoch, TRAIN_EPOCH) and _compat.numba_cached(
        epoch.evaluate, EVALUATE
    )


def compile_entry_points() -> None:
    """Compile (or load from numba's cache) both entry points for the trainer's types."""
    epoch.train_epoch.compile(TRAIN_EPOCH)
    epoch.evaluate.compile(EVALUATE)
