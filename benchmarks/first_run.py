"""The first run after an install: ``python -m search boston`` with numba's cache emptied.

Each round runs the command twice with a new, empty ``NUMBA_CACHE_DIR``: first cold (what a
new user's first run pays: compiling the numpy trainer's loop), then warm (the same cache,
now filled). With ``--against ROOT`` (another checkout, with its own ``.venv``) the rounds
alternate between that checkout and this one, so both see the same load. Wall time and CPU
time (user + system, of the command's process tree) per run; the medians over rounds.

    python benchmarks/first_run.py --rounds 3 --against /work/main
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_once(root: Path, python: str, cache: str, argv: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of ``python -m search ARGV`` in ``root`` with numba's cache in
    ``cache``."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache)
    env.pop("KERAS_BACKEND", None)  # the CLI's own choice, as a new user gets it
    with tempfile.TemporaryDirectory() as out:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(
            [python, "-m", "search", *argv, "--out", out],
            cwd=root,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--against", type=Path, help="another checkout, run alternately")
    parser.add_argument("--cold-only", action="store_true", help="no warm run after the cold one")
    parser.add_argument("command", nargs="*", default=["boston"], help="the run's arguments")
    args = parser.parse_args()
    checkouts = {"this": (ROOT, sys.executable)}
    if args.against:
        checkouts = {"against": (args.against, str(args.against / ".venv/bin/python")), **checkouts}
    times: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for round_ in range(args.rounds):
        names = list(checkouts)
        for name in names[round_ % 2 :] + names[: round_ % 2]:  # alternate who goes first
            root, python = checkouts[name]
            with tempfile.TemporaryDirectory() as cache:
                for state in ("cold",) if args.cold_only else ("cold", "warm"):
                    wall, cpu = run_once(root, python, cache, args.command)
                    times.setdefault((name, state), []).append((wall, cpu))
                    print(
                        f"round {round_} {name} {state}: wall {wall:.1f} s, cpu {cpu:.1f} s",
                        flush=True,
                    )
    print(f"python -m search {' '.join(args.command)}; medians of {args.rounds} rounds")
    for (name, state), pairs in times.items():
        wall = statistics.median(w for w, _ in pairs)
        cpu = statistics.median(c for _, c in pairs)
        print(f"{name:<8} {state:<5} wall {wall:6.1f} s  cpu {cpu:6.1f} s")


if __name__ == "__main__":
    main()
