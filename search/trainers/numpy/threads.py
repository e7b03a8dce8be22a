"""How the numpy trainer spreads its members over the cores: threads (the compiled loop
holds no GIL), and one BLAS thread while they train."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from threadpoolctl import ThreadpoolController

# Rows x weights (all members) below which an epoch stays on one thread: handing a group to
# another thread costs more than it saves there (measured: the linear space).
THREADED = 200_000


def in_threads(run: Callable[[np.ndarray], None], members: int, work: int) -> None:
    """``run`` over every member, the members split in groups over this process's share of
    the cores: the compiled loop holds no GIL, and each member's arithmetic is its own.
    ``work`` (rows x weights, all members) below :data:`THREADED` stays on one thread.
    Call it under :func:`one_blas_thread`."""
    count = min(members, threads() if work >= THREADED else 1)
    if count == 1:
        run(np.arange(members))
        return
    groups = np.array_split(np.arange(members), count)
    others = [pool().submit(run, group) for group in groups[1:]]
    run(groups[0])  # this thread takes the first group
    for done in others:
        done.result()


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """One BLAS thread while members train: the matrices are small, and OpenBLAS' own threads
    spin against ours and against other processes (10x slower on a loaded machine). Held
    for a whole training (setting and restoring it took 11 us, a tenth of a small epoch)."""
    with _blas().limit(limits=1, user_api="blas"):
        yield


def threads() -> int:
    """This process's share of the cores: ``NUMBA_NUM_THREADS`` where workers and benchmark
    jobs set it, else every core."""
    return max(1, int(os.environ.get("NUMBA_NUM_THREADS") or os.cpu_count() or 1))


@functools.cache
def pool() -> ThreadPoolExecutor:
    """The threads beside the caller's: one fewer than :func:`threads`."""
    return ThreadPoolExecutor(max_workers=max(1, threads() - 1), thread_name_prefix="numpy-trainer")


@functools.cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()  # finding the loaded BLAS libraries takes milliseconds
