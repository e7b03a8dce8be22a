"""Every exception type of the package, under one root, and the one place that tells an
environment's failure from a bug.

A :class:`SearchError` is the user's mistake (exit code 2). An :class:`EnvironmentFaultError` is
a failure of what the run stands on: a full disk, a permission lost, a storage that stays
unreachable, a damaged file (exit code 1). Neither is a failed configuration: a trial that
an environment fault ends is recorded as interrupted and runs again.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

# Errors of the disk and the file system; every other OSError is left to be a bug's.
_DISK = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "read-only file system",
    errno.EIO: "input/output error",
}
# A lost or refused connection to a storage, by the drivers' class names: importing
# SQLAlchemy or redis here would make every `search list` wait for them.
_CONNECTION = {
    ("sqlalchemy.exc", "OperationalError"),
    ("sqlalchemy.exc", "DisconnectionError"),
    ("sqlalchemy.exc", "InterfaceError"),
    ("redis.exceptions", "ConnectionError"),
    ("redis.exceptions", "TimeoutError"),
    ("builtins", "ConnectionError"),
}


class SearchBaseError(Exception):
    """The root of every exception this package raises: ``except SearchBaseError`` catches
    them all, and none of another library's."""


class SearchError(SearchBaseError):
    """A user's mistake: the message names the problem and the valid choices.

    Library code raises it; only the CLI prints it (one line, exit code 2).
    """


class EnvironmentFaultError(SearchBaseError):
    """The environment failed, not the input and not the configuration: the message names
    the cause and the path or the storage (its password masked). The CLI prints it as one
    line and exits with code 1."""


class SearchStoppedError(SearchBaseError):
    """The search stopped itself (too many consecutive failures); the message says why."""


class TrialFailedError(SearchBaseError):
    """The trial cannot produce a score (NaN or infinite loss); the reason is the message."""


class TooLargeError(TrialFailedError):
    """The configuration's model has more weights than the study allows: it is not trained."""

    def __init__(self, params: int, limit: int) -> None:
        super().__init__(
            f"not trained: the model has {params:,} weights, over --max-params {limit:,}"
        )
        self.params = params


class UnsupportedModelError(SearchBaseError, ValueError):
    """The model uses something a trainer does not handle (the message says what); the
    study trains it with Keras ``fit`` instead."""


def environment_fault(error: BaseException) -> EnvironmentFaultError | None:
    """``error`` (or an error it was raised from) as an :class:`EnvironmentFaultError`, or
    None when it is not a failure of the environment."""
    for current in _chain(error):
        if isinstance(current, EnvironmentFaultError):
            return current
        if isinstance(current, OSError) and current.errno in _DISK:
            where = f": {current.filename}" if current.filename else ""
            return EnvironmentFaultError(f"{_DISK[current.errno]}{where} ({current.strerror})")
        if _is_connection(current):
            return EnvironmentFaultError(f"storage unreachable: {one_line(current)}")
    return None


def connection_lost(error: BaseException) -> BaseException | None:
    """The lost or refused connection to a storage (any driver) that ``error`` is, or was
    raised from (Optuna wraps SQLAlchemy's in ``StorageInternalError``); None if none."""
    return next((current for current in _chain(error) if _is_connection(current)), None)


def _chain(error: BaseException) -> Iterator[BaseException]:
    """``error``, then the error it was raised from or during, and so on."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _is_connection(error: BaseException) -> bool:
    return any((kind.__module__, kind.__name__) in _CONNECTION for kind in type(error).__mro__)


def one_line(error: BaseException) -> str:
    """The error's type and message on one line, at most 300 characters."""
    text = " ".join(str(error).split())
    # SQLAlchemy appends a background link; the first sentence says what happened.
    text = text.split(" (Background on this error")[0]
    return f"{type(error).__name__}: {text}"[:300]


# The package's own code: a traceback's frames here are the harness's, not the user's (the
# built-in spaces are installed beside it, as search.spaces, and count as a user's).
_HARNESS = Path(__file__).resolve().parent
_LIBRARIES = tuple(
    {str(Path(p).resolve()) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix) if p}
)


def failed(number: int, error: BaseException) -> None:
    """Log the traceback of trial ``number``'s failure at debug level: ``--debug`` shows it
    (its record keeps only :func:`raised_at`'s line)."""
    logging.getLogger("search").debug("trial %d failed:", number, exc_info=error)


def raised_at(error: BaseException) -> str:
    """``error`` on one line (:func:`one_line`) and where it was raised: the innermost frame
    of its traceback in a user's code (a space file, a notebook cell), else the innermost
    frame. A trial that the user's code failed records this as its error."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return one_line(error)
    own = [frame for frame in frames if _users(frame.filename)]
    frame = (own or frames)[-1]
    return f"{one_line(error)} (at {_short(frame.filename)}:{frame.lineno})"


def _users(filename: str) -> bool:
    """Whether a traceback's file is a user's: not the harness's, Python's or a library's."""
    if filename.startswith("<frozen"):
        return False
    path = Path(filename).resolve()
    return not path.is_relative_to(_HARNESS) and not str(path).startswith(_LIBRARIES)


def _short(filename: str) -> str:
    """A file's path relative to the working directory when it lies under it."""
    with contextlib.suppress(ValueError):  # ValueError: another drive (Windows)
        if Path(filename).resolve().is_relative_to(Path.cwd()):
            return os.path.relpath(filename)
    return filename
