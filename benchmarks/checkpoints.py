"""What a trial's checkpoint costs when none is due: one trial trained many times with and
without a checkpoint, interleaved, and the median CPU and wall milliseconds of each.

    KERAS_BACKEND=numpy python benchmarks/checkpoints.py --trainer numpy --runs 60

The trial: Boston, the MLP space's two layers of 64 units with dropout, Adam, batch 32, a 20%
holdout, 50 epochs (patience 20). With the default ``--checkpoint-seconds 5`` such a trial
(a fraction of a second) writes no checkpoint: what is measured is what every trial pays.
``--seconds 0`` writes one after every epoch instead (what one write costs); the compiled
trainer (``KERAS_BACKEND=jax ... --trainer compiled``) writes between its chunks of 10
epochs, so 5 times a trial.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

CONFIGURATION = {
    "layers": 2,
    "activation": "relu",
    "l2": 1e-5,
    "units_0": 64,
    "dropout_0": 0.125,
    "units_1": 64,
    "dropout_1": 0.0,
    "batch_size": 32,
    "optimizer": "adam",
    "learning_rate": 1e-3,
    "clipnorm": 0.0,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trainer", default="numpy", choices=["numpy", "keras", "compiled"])
    parser.add_argument("--runs", type=int, default=60, help="runs each way")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=5.0, help="--checkpoint-seconds")
    args = parser.parse_args()

    import keras_tuner

    from search.space_lookup import space_class
    from search.tasks import load_task
    from search.trainers import Job, TrainData, get_trainer
    from search.trainers.base import Settings
    from search.trainers.checkpoint import Checkpoint, Every

    task = load_task("boston")
    data = TrainData(task, Settings(args.epochs, 20, 1, 1, 0.2, 0))
    space = space_class("mlp")(task.spec)

    def build() -> Any:
        hp = keras_tuner.HyperParameters()
        hp.values.update(CONFIGURATION)
        return space.build(hp), CONFIGURATION["batch_size"]

    trainer = get_trainer(args.trainer)
    folder = Path(tempfile.mkdtemp())

    def once(checkpointed: bool) -> tuple[float, float]:
        kept = Checkpoint(folder / "trial.npz", Every(1, args.seconds)) if checkpointed else None
        cpu, wall = time.process_time(), time.perf_counter()
        trainer.evaluate([Job(build, 0, checkpoint=kept)], data, "val_mse")
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        if kept is not None:
            kept.remove()
        return cpu, wall

    once(True), once(False)  # compilation and first-call set-up, before the clock
    found: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    for run in range(args.runs):
        for checkpointed in (True, False) if run % 2 else (False, True):
            found[checkpointed].append(once(checkpointed))
    for checkpointed, times in found.items():
        cpu = 1000 * statistics.median(c for c, _ in times)
        wall = 1000 * statistics.median(w for _, w in times)
        label = "with a checkpoint" if checkpointed else "without"
        print(f"{label:18} median CPU {cpu:7.2f} ms, median wall {wall:7.2f} ms")


if __name__ == "__main__":
    main()
