"""What a Dask task runs on a cluster's worker: a study's worker process, started and
watched; and the stop a task run in the worker's own thread (a bench study) obeys.

A study's worker task starts the same process a local worker is (``python -m
search.study.worker``), as a child of the Dask worker process, hands it its study on stdin
and waits for it. A child process, not the task's own thread: a Dask worker lives on
between tasks and runs them in threads, while a study's worker needs keras-tuner's
variables in its environment and an end that leaves no trial marked running by a process
that is still alive (Optuna tells a dead worker by its pid). A bench study runs in the Dask
worker's own process instead (:mod:`search.bench.job`), as a ``--jobs`` process runs one
study after another: Keras loads once per Dask worker, not once per study.

This module imports nothing of the package but the standard library: it is what every
Dask worker imports first, before any study's environment is set.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

PARENT = "SEARCH_PARENT_PID"  # a child ends itself when this process is gone
POLL_SECONDS = 0.5


def threads_env(threads: int) -> dict[str, str]:
    """Environment that caps TensorFlow, XLA, BLAS and numba at ``threads`` threads."""
    count = str(max(1, threads))
    return {
        "TF_NUM_INTRAOP_THREADS": count,
        "TF_NUM_INTEROP_THREADS": "1",
        "OMP_NUM_THREADS": count,
        "OPENBLAS_NUM_THREADS": count,
        "NUMBA_NUM_THREADS": count,  # the numpy trainer's compiled loop
        "XLA_FLAGS": f"--xla_cpu_multi_thread_eigen={'false' if count == '1' else 'true'} "
        f"intra_op_parallelism_threads={count}",
    }


def run_child(
    module: str, payload: str, env: dict[str, str], shares: dict[str, int], stop: str
) -> tuple[int, str, str]:
    """In a Dask task: run ``python -m module`` with ``payload`` on stdin until it ends;
    ``env`` (the client's Keras backend) joins this worker's environment, and the child's
    threads are capped at its host's share in ``shares`` (cores per Dask worker thread).

    The Dask event named ``stop`` (the client's Ctrl-C), or the scheduler gone, sends it
    SIGINT: it ends its trials as interrupted, as a worker does on Ctrl-C. Returns its exit
    code, its last line (stderr, or stdout when it ends well) and where it ran
    (``host:pid`` of the child, then of this Dask worker).
    """
    parent = str(os.getpid())
    # stdout and stderr go to files, not pipes: a chatty child must never block on a pipe.
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(
            [sys.executable, "-m", module],
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=err,
            env=_own_heap(os.environ) | env | threads_env(share(shares)) | {PARENT: parent},
            text=True,
        )
        assert child.stdin is not None
        child.stdin.write(payload)
        child.stdin.close()
        _wait(child, _stop_requested(stop))
        out.seek(0)
        err.seek(0)
        lines = (err.read() if child.returncode else out.read()).strip().splitlines()
    host = socket.gethostname()
    return child.returncode, lines[-1] if lines else "", f"{host}:{child.pid} {host}:{os.getpid()}"


def _own_heap(environ: Any) -> dict[str, str]:
    """The Dask worker's environment less the nanny's ``MALLOC_TRIM_THRESHOLD_``: set, it
    stops glibc from raising its mmap threshold, and every array over 128 KiB a trial frees
    is returned to the system and faulted in again (:func:`search.bench.job._heap_as_usual`)."""
    return {key: value for key, value in environ.items() if key != "MALLOC_TRIM_THRESHOLD_"}


def share(shares: dict[str, int]) -> int:
    """This task's share of its host's cores: the client's count for the host, else (a
    worker that joined since) the cores over this Dask worker's threads."""
    from distributed import get_worker  # a Dask task: the package is there

    worker = get_worker()
    host = worker.address.split("://")[-1].rpartition(":")[0]
    return shares.get(host) or max(1, (os.cpu_count() or 1) // worker.state.nthreads)


def _stop_requested(name: str) -> Callable[[], bool]:
    """Whether the client asked to stop; a scheduler that cannot be asked counts as yes.
    Made in the task's own thread."""
    from distributed import Event, get_client  # a Dask task: the package is there

    # The worker's client, found here in the task's thread: a watching thread has none.
    event = Event(name, client=get_client())

    def asked() -> bool:
        try:
            return bool(event.is_set())
        except Exception:  # the scheduler is gone: its client has ended the run
            return True

    return asked


@contextlib.contextmanager
def interruptible(stop: str) -> Iterator[None]:
    """Work done in a Dask task's own thread: a KeyboardInterrupt is raised in it once the
    client asks to stop (the Dask event ``stop``) or cannot be asked, as Ctrl-C would."""
    asked = _stop_requested(stop)
    target = ctypes.c_ulong(threading.get_ident())
    done = threading.Event()

    def watch() -> None:
        while not done.wait(2 * POLL_SECONDS):
            if asked():
                # CPython's documented way to raise in another thread: at its next bytecode.
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    target, ctypes.py_object(KeyboardInterrupt)
                )
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()
        ctypes.pythonapi.PyThreadState_SetAsyncExc(target, None)  # one not yet raised


def _wait(child: subprocess.Popen[str], stop: Callable[[], bool]) -> None:
    interrupted = False
    next_look = time.monotonic()
    while child.poll() is None:
        if not interrupted and time.monotonic() >= next_look:
            next_look = time.monotonic() + 2 * POLL_SECONDS
            if stop():
                child.send_signal(signal.SIGINT)
                interrupted = True
        time.sleep(POLL_SECONDS / 5)


def watch_parent() -> None:
    """In a child of :func:`run_child`: end at once when the Dask worker that started it is
    gone (killed): its trials are then interrupted, and its task runs again elsewhere."""
    parent = os.environ.get(PARENT)
    if not parent:
        return

    def watch(pid: int) -> None:
        while os.getppid() == pid:
            time.sleep(POLL_SECONDS)
        os._exit(137)

    threading.Thread(target=watch, args=(int(parent),), daemon=True).start()


def client_env(keys: tuple[str, ...] = ("KERAS_BACKEND",)) -> dict[str, Any]:
    """The client's variables a child must share (a Dask worker has its own environment,
    and a child loads Keras before it reads its payload)."""
    return {key: os.environ[key] for key in keys if key in os.environ}
