"""A benchmark's studies on a Dask cluster (``bench --cluster``).

Each study is a Dask task, run in the Dask worker's
own process as a ``--jobs`` process runs it: Keras and the trainers load once per Dask
worker, and each study after the first starts at once.

The first study a Dask worker runs sets its environment (the client's Keras backend, the
worker's share of its host's cores) before anything loads Keras. Studies run one at a time
in a process, whatever its Dask threads: Keras keeps state per process. The client's stop
(Ctrl-C) ends a running study as Ctrl-C does (:func:`search.study.launch.interruptible`).
"""

from __future__ import annotations

import base64
import ctypes
import json
import os
import pickle
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any

# None of these loads Keras: a Dask worker imports this module before its first study.
from search.bench.config import BenchConfig
from search.bench.execute import StudyJob, as_job, done_line, finished, run_job
from search.errors import EnvironmentFaultError, SearchBaseError, SearchError
from search.study.api import Study
from search.study.launch import interruptible, share, threads_env

_ONE_AT_A_TIME = threading.Lock()


def run_in_worker(
    payload: str, env: dict[str, str], shares: dict[str, int], stop: str
) -> tuple[int, str, str]:
    """A Dask task: the job in ``payload`` (:func:`search.bench.execute.encode`); returns
    (exit code, its last line: ``[why it stopped, trials, seconds]`` as JSON or the error,
    where it ran)."""
    where = f"{socket.gethostname()}:{os.getpid()}"
    with _ONE_AT_A_TIME:
        if "keras" not in sys.modules:
            _set_up(env, share(shares))
        return (*_run(payload, stop), where)


def _set_up(env: dict[str, str], threads: int) -> None:
    """Before Keras loads here: the client's backend, and this process's share of the
    cores (numpy is loaded already, so its BLAS is capped through threadpoolctl)."""
    os.environ.update(env | threads_env(threads))
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)
    _heap_as_usual()


# glibc's mallopt parameters, and the largest mmap threshold its dynamic rule reaches (64-bit).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _DYNAMIC_MAX = -1, -3, 32 * 2**20


def _heap_as_usual() -> None:
    """Undo the Dask nanny's ``MALLOC_TRIM_THRESHOLD_=65536``: set, it also stops glibc
    from raising its mmap threshold, so every array over 128 KiB a trial frees goes back to
    the system and the next is faulted in again (a third more CPU per study, measured).
    Here the thresholds are where glibc's own rule takes a long-lived process."""
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ or not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, _DYNAMIC_MAX)
        libc.mallopt(_M_TRIM_THRESHOLD, 2 * _DYNAMIC_MAX)
    except (OSError, AttributeError):  # not glibc: its allocator has no such setting
        return


def _run(payload: str, stop: str) -> tuple[int, str]:
    # The payload is the client's own pickle of a StudyJob: trusted as the client is.
    job: Any = pickle.loads(base64.b64decode(payload))  # noqa: S301
    try:
        with interruptible(stop):
            reason, trials, seconds = run_job(job)
    except SearchError as error:
        return 2, str(error)
    except SearchBaseError as error:
        return 1, str(error)
    except KeyboardInterrupt:
        return 130, "interrupted"
    return 0, json.dumps([reason, trials, seconds])


def encode(job: StudyJob) -> str:
    """A job as the text its task reads."""
    return base64.b64encode(pickle.dumps(job)).decode()


def run_on_cluster(
    work: list[tuple[BenchConfig, Study]],
    address: str,
    say: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
) -> list[str]:
    """Every unfinished study of ``work`` as a task on the Dask cluster at ``address``;
    ``say`` gets a line per finished study. Returns ``study: reason`` for each that stopped
    before its budget, as :func:`search.bench.execute.run_studies` does."""
    # Imported here: only a benchmark on a cluster loads Dask.
    from search.study.cluster import Tasks, check_bench, connect

    pending = [as_job(config, study) for config, study in work if not finished(config, study)]
    if not pending:
        return []
    client = connect(address)
    check_bench(client, address, pending[0][0].config.out)
    stopped: list[str] = []
    done: list[int] = []

    def on_done(index: int, result: tuple[int, str, str]) -> None:
        code, line, _ = result
        label = pending[index][1]
        if code == 2:
            raise SearchError(f"{label}: {line}")
        if code == 130:
            raise KeyboardInterrupt  # the client's own Ctrl-C, as the study saw it
        if code != 0:
            raise EnvironmentFaultError(
                f"{label}: {line or f'it ended with code {code}'}; the finished trials are "
                "kept: run the same command again to resume"
            )
        reason, trials, seconds = json.loads(line)
        done.append(index)
        say(done_line(len(done), len(pending), label, reason, trials, seconds))
        if reason:
            stopped.append(f"{label}: {reason}")

    tasks = Tasks(client, address, run_in_worker, "bench")
    tasks.run([encode(job) for job, _ in pending], lambda: None, on_done)
    return stopped
