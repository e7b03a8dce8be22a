"""Fault injection for the crash tests: kill this process, or fill its disk, at a named point.

``SEARCH_KILL_AT=trial:3`` sends SIGKILL to the process the third time it passes the point
``trial``. ``SEARCH_FULL_AT=write:3`` raises ``OSError(ENOSPC)`` there instead, as a full
disk would (every later pass too: a full disk stays full). Points: ``trial`` (a trial
trained, not yet stored), ``tensorboard`` (its runs written), ``write`` (an atomic write
between the temporary file and the rename), ``scoring`` (a top-k model scored),
``checkpoint`` (a running trial's checkpoint written). Unset, a point costs two dictionary
lookups.
"""

from __future__ import annotations

import errno
import os
import signal

_passes: dict[str, int] = {}


def crash_point(name: str) -> None:
    if _reached("SEARCH_KILL_AT", name):
        os.kill(os.getpid(), signal.SIGKILL)
    if _reached("SEARCH_FULL_AT", name):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), f"<{name} point>")


def _reached(variable: str, name: str) -> bool:
    target = os.environ.get(variable)
    if not target:
        return False
    point, _, nth = target.partition(":")
    if point != name:
        return False
    key = f"{variable}:{name}"
    _passes[key] = _passes.get(key, 0) + 1
    return _passes[key] >= int(nth or 1)
