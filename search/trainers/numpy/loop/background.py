"""The loop compiled beside a run's start: in a process of its own, then loaded here.

numba's compilation of the loop (about 8 s on this 2-core machine, once per install) is
half Python (typing and lowering, holding the GIL) and half LLVM. On a thread of the run's
own process the Python half competed with the run's imports for the GIL, so nearly all of
it still lay before the first trial. A process of its own compiles it on the other core
while the run imports Keras and Optuna and builds its studies, and writes it into numba's
cache; a thread here then loads it from the cache (a fraction of a second). The first trial
waits for that thread (:func:`wait`). Where the cache holds the code already, the thread
loads it at once and ends the process.

Only stdlib modules are imported here: the thread imports numba and the loop.
"""

from __future__ import annotations

import atexit
import subprocess
import sys
import threading
from pathlib import Path

_ready = threading.Event()
_ready.set()  # nothing started: a trial compiles, or loads, on its first call
_stopping = threading.Event()
_started: list[bool] = []
# The process: this package as found on its own path (as this process's, mostly), else
# where this process found it (a notebook's path, say), added last so that it shadows
# nothing. Were it another copy, the code it caches would not be this one's, and this
# process would compile its own.
_COMPILE = (
    "import sys; sys.path.append({root!r}); "
    "from search.trainers.numpy.loop import ahead; ahead.compile_entry_points()"
)


def start() -> None:
    """Compile the loop's entry points (or load them from numba's cache) beside the caller.
    Once per process; the first trial waits for it (:func:`wait`)."""
    if _started:
        return
    _started.append(True)
    _ready.clear()
    try:
        process: subprocess.Popen[bytes] | None = subprocess.Popen(
            [sys.executable, "-c", _COMPILE.format(root=str(Path(__file__).parents[4]))],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    except OSError:
        process = None  # no process to be had: the thread compiles here instead
    thread = threading.Thread(target=_load, args=(process,), name="compile-ahead", daemon=True)
    atexit.register(_stop, process, thread)
    thread.start()


def wait() -> None:
    """Until the loop compiled ahead (if any) is loaded."""
    _ready.wait()


def _load(process: subprocess.Popen[bytes] | None) -> None:
    try:
        # Imported here: numba's import is part of what this takes off the start.
        from search.trainers.numpy.loop import ahead

        if process is not None:
            if ahead.cached():
                process.kill()  # it would only load the code too
            process.wait()
        if _stopping.is_set():
            return
        # Loads what the process wrote into the cache; compiles here if it failed.
        ahead.compile_entry_points()
    except Exception:  # noqa: BLE001
        # Nothing to report from here: the trial's own call compiles again, and raises
        # where the study handles it.
        return
    finally:
        _ready.set()


def _stop(process: subprocess.Popen[bytes] | None, thread: threading.Thread) -> None:
    """At exit: a process still compiling is ended (a run that ended early, on bad input
    or Ctrl-C, does not wait for it), and a load under way finishes rather than be cut off
    inside LLVM."""
    _stopping.set()
    if process is not None and process.poll() is None:
        process.kill()
        process.wait()
    thread.join()
