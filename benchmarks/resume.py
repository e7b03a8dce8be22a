"""What an interrupted trial costs: one Keras-``fit`` trial run through, then the same study
killed (SIGKILL) at a fraction of its epochs and rerun with the same command.

    python benchmarks/resume.py --epochs 400 --kill-at 0.6  # Boston's default: 5 folds

The kill comes once the trial's checkpoint holds that fraction of its epochs. It prints
the uninterrupted run's wall seconds, the rerun's, their ratio, and whether the
rerun's TensorBoard curve is one continuous series (epochs 1..N, each once). The commands
are real ``python -m search`` processes, with their start-up (imports) included; the trial
is a fixed configuration (``--enqueue``) so both runs train the same model.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIGURATION = {
    "layers": 2,
    "activation": "relu",
    "l2": 1e-5,
    "units_0": 64,
    "dropout_0": 0.125,
    "units_1": 64,
    "dropout_1": 0.0,
    "batch_size": 16,
    "optimizer": "adam",
    "learning_rate": 1e-3,
    "clipnorm": 0.0,
}


def command(out: Path, enqueue: Path, epochs: int, cv: int, extra: list[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "search",
        "boston",
        *("--space", "mlp", "--trainer", "keras", "--trials", "1", "--epochs", str(epochs)),
        *("--patience", "0", "--cv", str(cv), "--top-k", "0", "--ensemble-size", "0"),
        *("--enqueue", str(enqueue), "--out", str(out), *extra),
    ]


def timed(args: list[str], epochs: int = 0, kill_at: float = 0.0) -> tuple[float, int]:
    """Run ``args``: its wall seconds, and the epochs its trial's checkpoint held when it
    was killed (SIGKILL) once that checkpoint reached ``kill_at`` of ``epochs`` (0: never)."""
    from search.trainers.checkpoint import progress

    start = time.perf_counter()
    process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    out = Path(args[args.index("--out") + 1])
    checkpoint = out / "boston" / "mlp-optuna-tpe" / "checkpoints" / "trial_0000.npz"
    reached = 0
    while process.poll() is None:
        time.sleep(0.2)
        reached = progress(checkpoint) if kill_at else 0
        if kill_at and reached >= kill_at * epochs:
            process.send_signal(signal.SIGKILL)
            process.wait()
            return time.perf_counter() - start, reached
    if process.returncode != 0:
        assert process.stderr is not None
        raise SystemExit(f"{' '.join(args)} failed:\n{process.stderr.read().decode()}")
    return time.perf_counter() - start, reached


def curve_steps(out: Path) -> dict[str, list[int]]:
    """The steps of every trial's validation curve in TensorBoard, by run."""
    from search.results.tensorboard.events import read_events

    found = {}
    for run in sorted((out / "boston" / "mlp-optuna-tpe" / "tensorboard").glob("trial_*")):
        steps = [
            step
            for step, summary in read_events(run / "validation")
            for value in summary.value
            if value.tag == "epoch_loss"
        ]
        found[run.name] = steps
    return found


def trial_seconds(out: Path) -> float:
    """The training seconds of the study's complete trial."""
    with open(out / "boston" / "mlp-optuna-tpe" / "leaderboard.csv", newline="") as file:
        rows = [row for row in csv.DictReader(file) if row["state"] == "complete"]
    return float(rows[0]["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=400)
    parser.add_argument("--cv", type=int, default=5, help="folds (Boston's default: 5)")
    parser.add_argument(
        "--kill-at", type=float, default=0.6, help="kill once the checkpoint holds this fraction"
    )
    parser.add_argument("extra", nargs="*", help="more options for both runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        enqueue = Path(folder) / "configuration.json"
        enqueue.write_text(json.dumps([CONFIGURATION]))
        whole, _ = timed(command(Path(folder) / "whole", enqueue, args.epochs, args.cv, args.extra))
        trial = trial_seconds(Path(folder) / "whole")
        out = Path(folder) / "killed"
        run = command(out, enqueue, args.epochs, args.cv, args.extra)
        killed, reached = timed(run, args.epochs * args.cv, args.kill_at)
        rerun, _ = timed(run)
        resumed = trial_seconds(out)
        steps = curve_steps(out)
    print(f"load average {os.getloadavg()[0]:.1f} (of {os.cpu_count()} cores)")
    print(f"uninterrupted: {whole:.1f} s, of which the trial {trial:.1f} s")
    total = args.epochs * args.cv
    print(f"killed after {killed:.1f} s, its checkpoint at epoch {reached} of {total} (all folds)")
    print(
        f"rerun: {rerun:.1f} s = {rerun / whole:.0%} of the uninterrupted run "
        f"(the trial's seconds, both runs': {resumed:.1f})"
    )
    for run, found in steps.items():
        continuous = found == list(range(1, len(found) + 1))
        print(f"{run}: {len(found)} epochs, continuous and each once: {continuous}")


if __name__ == "__main__":
    main()
