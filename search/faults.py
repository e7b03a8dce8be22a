"""Fault injection for the crash tests: kill this process at a named point.

``SEARCH_KILL_AT=trial:3`` sends SIGKILL to the process the third time it passes the point
``trial``. Points: ``trial`` (a trial trained, not yet stored), ``tensorboard`` (its runs
written), ``write`` (an atomic write between the temporary file and the rename), ``scoring``
(a top-k model scored). Unset, a point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

_passes: dict[str, int] = {}


def crash_point(name: str) -> None:
    target = os.environ.get("SEARCH_KILL_AT")
    if not target:
        return
    point, _, nth = target.partition(":")
    if point != name:
        return
    _passes[name] = _passes.get(name, 0) + 1
    if _passes[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
