"""``search tensorboard [TASK [STUDY]]``: serve the studies' logs with TensorBoard until
Ctrl-C (or ``kill``), then stop the server."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from search.cli.arguments import add_out, tcp_port

NAME = "tensorboard"
HELP = "inspect studies in TensorBoard (HParams, Scalars, Graphs)"
DESCRIPTION = (
    "Start TensorBoard over one study, every study of TASK, or every study, "
    "print its URL and serve until Ctrl-C."
)


def add_arguments(parser: Any) -> None:
    parser.add_argument("task", metavar="TASK", nargs="?", help="only this task's studies")
    parser.add_argument("study", metavar="STUDY", nargs="?", help="only this study of TASK")
    add_out(parser)
    parser.add_argument("--port", type=tcp_port, help="port to serve on (default: a free one)")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to serve on (default %(default)s)"
    )


def command(args: argparse.Namespace, argv: list[str]) -> int:
    """Serve the studies' logs with TensorBoard until Ctrl-C; the server is stopped after."""
    import signal
    import subprocess
    import threading

    from search.cli import tensorboard_server

    # Loaded with this command only: no other command reads or serves the logs.
    from search.results import tensorboard

    out = Path(args.out)
    logdirs = tensorboard.study_logdirs(out, args.task, args.study)
    tensorboard.add_missing_graphs(logdirs)
    root = out / args.task if args.task else out
    names = [str(logdir.parent.relative_to(root)) for logdir in logdirs]
    port = args.port or tensorboard_server.free_port(args.host)
    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host}:{port}/"
    # `kill PID` stops the server and removes the temporary view as Ctrl-C does. Ctrl-C has
    # a handler of its own too, set once the imports are done: in some test runs the one
    # Python sets at start was not in force by the time the command waited (docs/testing.md).
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
        signal.signal(signal.SIGINT, _interrupt)
    with tensorboard.view(logdirs, names) as logdir:
        process = subprocess.Popen(tensorboard_server.server_command(logdir, args.host, port))
        try:
            tensorboard_server.wait_until_serving(process, url)
            what = f"{len(names)} studies" if len(names) > 1 else f"study {names[0]}"
            print(f"TensorBoard over {what} at {url} (HParams: {url}#hparams)", flush=True)
            print("press Ctrl-C to stop it", flush=True)
            return _wait_interruptibly(process)
        except KeyboardInterrupt:
            return 0
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _wait_interruptibly(process: Any) -> int:
    """The server's exit code, waited for in short steps. One blocking wait is not ended
    by a Ctrl-C that the kernel hands to another thread of this process (a BLAS library's
    threads take signals too): Python runs the handler in the main thread, which would stay
    inside the wait until the server ended."""
    import subprocess

    while True:
        try:
            return int(process.wait(timeout=0.5))
        except subprocess.TimeoutExpired:
            continue
