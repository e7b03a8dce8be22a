"""Atomic writes: a reader sees the old file or the new one, never half of one.

Every results file goes through :func:`atomic_path`: CSV and JSON (:func:`write_text`), PNG
plots, TensorBoard event files and ``best.keras``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from search.faults import crash_point

_COUNTER = itertools.count()
# The files written under :func:`synced_at_end`, synced as it ends; None outside it.
_UNSYNCED: set[Path] | None = None
# Whether :func:`held` may hold writes: only inside :func:`holding_allowed`.
_HOLDING_ALLOWED = False
# Inside :func:`held`: its folder, and the last text written to each file under it, in the
# order of those last writes; None outside it.
_HELD: tuple[Path, dict[Path, str]] | None = None


@contextlib.contextmanager
def holding_allowed() -> Iterator[None]:
    """Inside it, a :func:`held` block keeps its writes in memory until it ends.

    For a benchmark study of a tabular task, which one process runs alone and which ends in
    seconds: keras-tuner's oracle rewrites a trial's file and its own up to seven times a
    trial, and each rename cost about 1 ms here, ten times the trial's lookup. A process
    killed meanwhile loses what was held; the study did not record that it finished, and
    running its command again resumes it from what was written before.
    """
    global _HOLDING_ALLOWED  # noqa: PLW0603 - one benchmark study runs at a time in a process
    before, _HOLDING_ALLOWED = _HOLDING_ALLOWED, True
    try:
        yield
    finally:
        _HOLDING_ALLOWED = before


@contextlib.contextmanager
def held(folder: Path) -> Iterator[None]:
    """Inside :func:`holding_allowed`, what :func:`write_text` writes under ``folder`` is
    kept in memory, and each file written once, with its last text, as the block ends
    (whatever ends it), in the order of those last writes: a file written last (keras-tuner's
    ``oracle.json``, which names the trials) is written after the files it names. Elsewhere
    a plain block."""
    global _HELD  # noqa: PLW0603 - one benchmark study runs at a time in a process
    if not _HOLDING_ALLOWED or _HELD is not None:
        yield
        return
    texts: dict[Path, str] = {}
    _HELD = (_absolute(folder), texts)
    try:
        yield
    finally:
        _HELD = None
        for path, text in texts.items():
            write_text(path, text)


@contextlib.contextmanager
def synced_at_end() -> Iterator[None]:
    """Files written meanwhile are synced once each, as the block ends, not on every write.

    For a benchmark study of a tabular task: keras-tuner's oracle rewrites a trial's file
    and its own up to seven times a trial, and a sync each (about 1 ms) cost more than the
    trial's lookup. A kill still leaves whole files (each write is still a rename); a power
    cut before the end can leave some empty, and the study, which did not record that it
    finished, runs again.
    """
    global _UNSYNCED  # noqa: PLW0603 - one benchmark study runs at a time in a process
    if _UNSYNCED is not None:
        yield
        return
    _UNSYNCED = set()
    try:
        yield
    finally:
        written, _UNSYNCED = _UNSYNCED, None
        if written:
            # Several syncs at once share the file system's journal commits: 200 files took
            # about a quarter of the time in 16 threads that they took one after another
            # (ext4, docs/benchmark-suites.md).
            with ThreadPoolExecutor(min(16, len(written))) as pool:
                list(pool.map(_sync, sorted(written)))


def _sync(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError), open(path, "rb") as file:
        os.fsync(file.fileno())


@contextlib.contextmanager
def atomic_path(path: Path, durable: bool = True) -> Iterator[Path]:
    """A temporary file beside ``path`` for the block to write; synced (unless not
    ``durable``) and renamed over ``path`` when the block ends, removed if it raises.

    Without the sync a kill still leaves the old file or the new one (the kernel holds the
    written bytes); only a power cut can leave the new one empty.

    The temporary keeps ``path``'s suffix (Keras and matplotlib choose the format by it) and
    not its name: TensorBoard skips it (no "tfevents"), and :func:`remove_stale_temporaries`
    removes one a killed process left behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".search-{os.getpid()}-{next(_COUNTER)}.tmp{path.suffix}")
    try:
        yield temporary
        if durable and _UNSYNCED is not None:
            _UNSYNCED.add(path)
        elif durable:
            with open(temporary, "rb") as file:
                os.fsync(file.fileno())
        crash_point("write")
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        if error.filename is None:
            # A write to a full disk names no file; the message to the user should.
            raise OSError(error.errno, error.strerror, str(path)) from error
        raise
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    if _HELD is not None and (absolute := _absolute(path)).is_relative_to(_HELD[0]):
        texts = _HELD[1]
        texts.pop(absolute, None)  # so that the order is that of the last writes
        texts[absolute] = text
        return
    with atomic_path(path) as temporary:
        temporary.write_bytes(text.encode("utf-8"))


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _absolute(path: Path) -> Path:
    return Path(os.path.abspath(path))


def remove_stale_temporaries(folder: Path) -> None:
    """Delete temporaries that a killed process left behind (never a finished file)."""
    for path in folder.rglob(".*.tmp*"):
        if path.is_file():
            path.unlink(missing_ok=True)
