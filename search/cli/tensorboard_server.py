"""Serving TensorBoard for ``search tensorboard``: a free port, the server's command line,
and the wait until it answers.

The logs it serves are found and merged by :mod:`search.results.tensorboard`.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from search.errors import SearchError


def free_port(host: str) -> int:
    """A TCP port nobody listens on now (the OS picks it)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
            return int(probe.getsockname()[1])
    except OSError as error:
        raise SearchError(f"cannot open a port on host {host!r}: {error}") from None


def server_command(logdir: Path, host: str, port: int) -> list[str]:
    """The command line of a TensorBoard server over ``logdir``."""
    return [
        sys.executable,
        "-m",
        "tensorboard.main",
        "--logdir",
        str(logdir),
        "--host",
        host,
        "--port",
        str(port),
    ]


def wait_until_serving(process: subprocess.Popen[Any], url: str, timeout: float = 120) -> None:
    """Return once ``url`` answers; SearchError if the server exits or never answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SearchError(
                f"TensorBoard exited with code {process.returncode} before serving {url} "
                "(see its messages above)"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.3)
    raise SearchError(f"TensorBoard did not answer at {url} within {timeout:.0f} s")
