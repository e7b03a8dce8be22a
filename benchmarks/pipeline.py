"""Seconds per training: Keras ``fit`` on numpy arrays against the harness's cached pipeline.

Side by side in one process, alternating, so both see the same machine load. Boston, the
tutorial's 13->64->1 MLP with dropout, Adam, batch 32, 20% validation.

    python benchmarks/pipeline.py --epochs 50 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import keras
import numpy as np

from search.tasks import load_task
from search.trainers import Settings, TrainData
from search.trainers.keras_fit import evaluate


def build() -> tuple[keras.Model, int]:
    model = keras.Sequential(
        [
            keras.Input((13,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer="adam", loss="mse", metrics=[keras.metrics.MeanSquaredError("mse")])
    return model, 32


def stock_fit(x: np.ndarray, y: np.ndarray, epochs: int) -> float:
    start = time.perf_counter()
    model, batch_size = build()
    model.fit(x, y, validation_split=0.2, epochs=epochs, batch_size=batch_size, verbose=0)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    task = load_task("boston")
    data = TrainData(
        task,
        Settings(epochs=args.epochs, patience=0, cv=1, executions=1, validation_split=0.2, seed=0),
    )
    x = task.standardize(task.x_train)
    stock, harness = [], []
    for repeat in range(args.repeats + 1):
        s = stock_fit(x, task.y_train, args.epochs)
        h = evaluate(build, data, "val_mse", seed=repeat).seconds
        if repeat:  # the first round warms up both paths
            stock.append(s)
            harness.append(h)
    a, b = statistics.median(stock), statistics.median(harness)
    print(f"backend {keras.backend.backend()}, {args.epochs} epochs, {args.repeats} repeats")
    print(f"keras fit, numpy input:   median {a:.3f} s per training")
    print(f"harness cached pipeline:  median {b:.3f} s per training ({a / b:.1f}x faster)")


if __name__ == "__main__":
    main()
