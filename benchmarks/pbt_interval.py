"""PBT's interval between exploits (``--pbt-interval``), chosen on validation only.

For each task, seed and interval, one PBT study (``--trials 16 --epochs 60 --cv 1`` by
default, the mlp space, ``--top-k 0``: no test split is read) and its selected member's
validation value. The table is each interval's mean over seeds per task, and its mean rank
over the (task, seed) blocks. docs/pbt.md quotes it.

    python benchmarks/pbt_interval.py --seeds 0 1 2 3 4 --intervals 3 6 12 30
"""

from __future__ import annotations

import argparse
import os
import tempfile

os.environ.setdefault("KERAS_BACKEND", "numpy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["boston", "diabetes", "friedman1"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--intervals", nargs="+", type=int, default=[3, 6, 12, 30])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=60)
    args = parser.parse_args()

    import pandas as pd

    from search import Study

    rows = []
    with tempfile.TemporaryDirectory() as out:
        for task in args.tasks:
            for seed in args.seeds:
                for interval in args.intervals:
                    study = Study(
                        task,
                        "mlp",
                        algorithm="pbt",
                        epochs=args.epochs,
                        cv=1,
                        seed=seed,
                        pbt_interval=interval,
                        top_k=0,
                        ensemble_size=0,
                        tensorboard=False,
                        name=f"pbt-{interval}-seed{seed}",
                        out=out,
                    )
                    value = study.run(trials=args.trials).best_value
                    rows.append({"task": task, "seed": seed, "interval": interval, "value": value})
    frame = pd.DataFrame(rows)
    frame["rank"] = frame.groupby(["task", "seed"])["value"].rank()
    table = frame.pivot_table(index="interval", columns="task", values="value", aggfunc="mean")
    table["mean_rank"] = frame.groupby("interval")["rank"].mean()
    print(table.to_string(float_format=lambda v: f"{v:.4g}"))


if __name__ == "__main__":
    main()
