"""Milliseconds per epoch of the numpy trainer's compiled loop, by network size and threads.

One epoch of Boston-sized data (323 training rows, 81 validation rows, 13 features) through
``search.trainers.numpy.members.Lockstep``: Adam with ``clipnorm``, MSE, dropout 0.25 after
each hidden ReLU layer, and M members (5: the folds of ``--cv 5``; 1: a holdout). Each
(network, threads) pair runs in its own process, ``NUMBA_NUM_THREADS`` set, after one warm-up
epoch (the loop's compilation is cached on disk by the first run after an install); the
median of ``--epochs`` epochs is reported with the arithmetic rate it amounts to
(forward and backward: 6 flops per weight per row).

    python benchmarks/epoch.py
    python benchmarks/epoch.py --members 1 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NETWORKS = {
    "linear": ((), 16),
    "16": ((16,), 16),
    "64-64": ((64, 64), 32),
    "128-128": ((128, 128), 16),
    "256-256-256": ((256, 256, 256), 16),
}
_MARK = "EPOCH-JSON "


def child(network: str, members: int, epochs: int) -> dict[str, float]:
    import keras
    import numpy as np

    from search.space import loss_for, metrics_for
    from search.trainers.numpy.members import Lockstep
    from search.trainers.numpy.net import Net
    from search.trainers.numpy.threads import one_blas_thread

    widths, batch = NETWORKS[network]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(404, 13)).astype(np.float32)
    y = rng.normal(size=(404, 1)).astype(np.float32)
    inputs = keras.Input((13,))
    hidden = inputs
    for width in widths:
        hidden = keras.layers.Dense(width, activation="relu")(hidden)
        hidden = keras.layers.Dropout(0.25)(hidden)
    model = keras.Model(inputs, keras.layers.Dense(1)(hidden))
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3, clipnorm=5.0),
        loss=loss_for("regression"),
        metrics=metrics_for("regression"),
    )
    net = Net(model)
    rows = [(np.arange(81, 404), np.arange(81))] * members
    trainer = Lockstep(net, [net.weights(model)] * members, x, y, rows, batch, 0)
    times = []
    with one_blas_thread():  # as the trainer trains
        trainer.epoch()  # compiles on a cold cache, loads it otherwise
        for _ in range(epochs):
            start = time.perf_counter()
            trainer.epoch()
            times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    weights = sum(a * b for a, b in zip((13, *widths), (*widths, 1), strict=True))
    return {"ms": 1000 * seconds, "gflops": members * 323 * weights * 6 / seconds / 1e9}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, nargs="+", default=[5, 1])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        network, members = args.child
        print(_MARK + json.dumps(child(network, int(members), args.epochs)), flush=True)
        return
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    print(f"{'network':<12} {'members':>7} {'threads':>7} {'ms/epoch':>9} {'GFLOP/s':>8}")
    for members in args.members:
        for network in NETWORKS:
            for threads in dict.fromkeys(args.threads):
                command = [sys.executable, __file__, "--child", network, str(members)]
                command += ["--epochs", str(args.epochs)]
                proc = subprocess.run(
                    command,
                    env=env | {"NUMBA_NUM_THREADS": str(threads)},
                    capture_output=True,
                    text=True,
                    check=False,
                )
                lines = [line for line in proc.stdout.splitlines() if line.startswith(_MARK)]
                if proc.returncode != 0 or not lines:
                    raise SystemExit(f"{network} failed:\n{proc.stderr[-3000:]}")
                result = json.loads(lines[-1][len(_MARK) :])
                print(
                    f"{network:<12} {members:>7} {threads:>7} {result['ms']:>9.2f} "
                    f"{result['gflops']:>8.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
