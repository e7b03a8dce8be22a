"""A real Dask cluster of this machine for the tests: a ``dask scheduler`` and ``dask worker``
processes on 127.0.0.1 (tests/system/test_cluster.py, tests/system/test_cluster_refusal.py)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from conftest import cli_env

DASK = str(Path(sys.executable).with_name("dask"))
WAIT = 600  # a bound on a hung cluster, not on the machine's speed


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start(*args: str, wrap: Sequence[str] = ()) -> subprocess.Popen[bytes]:
    """A Dask command (run by the command ``wrap``, if given) in its own process group, its
    output discarded."""
    return subprocess.Popen(
        [*wrap, DASK, *args],
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


@contextlib.contextmanager
def cluster(
    workers: int, wrap: Sequence[str] = ()
) -> Iterator[tuple[str, Any, list[subprocess.Popen[bytes]]]]:
    """A scheduler and ``workers`` one-thread workers (each under its nanny, started by
    ``wrap``): the address, a client of it, and the processes (the scheduler's first)."""
    import distributed

    from search.study.cluster import disconnect

    address = f"tcp://127.0.0.1:{free_port()}"
    host, port = address.removeprefix("tcp://").split(":")
    processes = [start("scheduler", "--host", host, "--port", port, "--no-dashboard")]
    try:
        processes += [
            start("worker", address, "--nthreads", "1", "--no-dashboard", wrap=wrap)
            for _ in range(workers)
        ]
        with distributed.Client(address, timeout=WAIT) as client:
            client.wait_for_workers(workers, timeout=WAIT)
            yield address, client, processes
    finally:
        disconnect(address)  # the harness's own client of it
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
