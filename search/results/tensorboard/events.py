"""Events files: a folder's events replaced whole, their records and checksums, and reading
them back.

Every folder holds one events file, written whole under a temporary name and renamed into
place; the folder's older events files are then removed. A rerun therefore rewrites a run
without ever doubling it. The protos are TensorBoard's own, so nothing here needs
TensorFlow.
"""

from __future__ import annotations

import os
import socket
import struct
import sys
import time
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import google_crc32c

from search.files import atomic_path


def replace_events(
    folder: Path,
    summaries: Sequence[tuple[int, Any]],
    extra: Sequence[Any] = (),
    durable: bool = True,
) -> None:
    """Make ``folder``'s only events file one holding ``summaries`` (step, Summary).

    The file is written under a name TensorBoard ignores, synced, then renamed into place;
    only then are the folder's older events files removed. A reader sees the old run or the
    new one, and a rerun never leaves a second copy of a trial.
    """
    from tensorboard.compat.proto import event_pb2

    folder.mkdir(parents=True, exist_ok=True)
    now = time.time()
    events = [event_pb2.Event(wall_time=now, file_version="brain.Event:2")]
    events += [event_pb2.Event(wall_time=now, step=step, summary=s) for step, s in summaries]
    for event in extra:
        event.wall_time = now
        events.append(event)
    # The name sorts after any older one, so a live TensorBoard moves on to the new file.
    name = f"events.out.tfevents.{time.time_ns():020d}.{socket.gethostname()}.{os.getpid()}.v2"
    records = b"".join(_record(event.SerializeToString()) for event in events)
    with atomic_path(folder / name, durable) as temporary:
        temporary.write_bytes(records)
    for old in folder.glob("*tfevents*"):
        if old.name != name and old.is_file():
            old.unlink(missing_ok=True)


def _record(data: bytes) -> bytes:
    """One record of an events file (TFRecord framing): the length, its masked CRC-32C, the
    data, its masked CRC-32C. tensorboard's writer computes the checksums in a Python loop
    over the bytes when TensorFlow is absent: a third of a trial's curve-writing time under
    the profiler."""
    length = struct.pack("<Q", len(data))
    return length + _masked_crc(length) + data + _masked_crc(data)


def _masked_crc(data: bytes) -> bytes:
    crc = google_crc32c.value(data)
    return struct.pack("<I", (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


def read_events(folder: Path) -> list[tuple[int, Any]]:
    """The (step, summary) pairs of ``folder``'s own events files (not its subfolders')."""
    _events_without_tensorflow()
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    return [
        (event.step, event.summary)
        for path in sorted(folder.glob("*tfevents*"))
        for event in EventFileLoader(str(path)).Load()
        if event.HasField("summary")
    ]


def _events_without_tensorflow() -> None:
    """Let TensorBoard's event readers use their own file layer where TensorFlow is not
    loaded and Keras runs on another backend: they would import TensorFlow (2.7 s) for its
    file system alone. ``tensorboard.compat.notf`` is TensorBoard's own switch for that, and
    it holds for the whole process (nothing here needs TensorFlow off its backend)."""
    keras = sys.modules.get("keras")
    if "tensorflow" in sys.modules or keras is None or keras.backend.backend() == "tensorflow":
        return
    sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
