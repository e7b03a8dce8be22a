"""Trials per minute of one search: stock keras-tuner, stock Optuna, and this harness.

The search: Boston, N random trials of at most E epochs, early stopping with patience 20, one
seed, over one of two spaces:

- ``--space mlp`` (default): the built-in MLP space (1-3 layers, units, dropout, activation,
  L2, optimizer, learning rate, clipping, batch size). Almost no two random configurations
  share a shape (96 of 100 are distinct), so every trial compiles its own program.
- ``--space shared`` (``benchmarks/shared.py``): one architecture (two hidden layers of
  64 ReLU units with dropout, Adam, batch 32) whose continuous settings vary: dropout rates,
  L2, learning rate and clipping. Every configuration shares one shape: the case
  populations are made for.

The contenders, each in its own subprocess (the Keras backend is fixed per process), which
prints its measurements as JSON:

- ``keras-tuner``: stock ``RandomSearch`` as its documentation shows: a HyperModel (the
  space, with ``fit`` overridden to pass the tuned batch size), numpy arrays,
  ``validation_split=0.2``, its project folder in a temporary directory. The selected model
  is ``get_best_models(1)[0]`` (the best trial's best epoch).
- ``optuna``: stock Optuna, the same space written with ``trial.suggest_*``, a plain Keras
  objective on numpy arrays with ``validation_split=0.2``, ``RandomSampler``. The selected
  configuration is retrained on the whole training split for its best epoch count.
- ``harness``: ``python -m search boston --space SPACE --algorithm random --cv 1`` (the
  shared space as a space file) with every other option at its default (the numpy trainer
  on Keras' numpy backend, as the CLI picks it, median pruner, TensorBoard, top-5
  retraining and test scores). ``--cv 1``
  (a 20% holdout) because Boston defaults to 5-fold cross-validation, and the stock
  contenders validate on a 20% holdout.
- ``harness-fastest``: the same command with the fastest settings, ``--pruner
  successive-halving --no-tensorboard``: most trials stop after a few epochs, and no
  TensorBoard runs are written.
- ``harness-workers``: the same command with ``--workers 2`` (one per core) and
  ``--no-tensorboard``. Each worker is a new process that imports Keras, which a short
  search does not win back.
- ``harness-fit``: the same command with ``--trainer keras`` (Keras ``fit`` on cached
  tf.data pipelines, the default before the numpy trainer).
- ``harness-compiled``: the same command on JAX with ``--trainer compiled`` (one jitted
  program per model shape).
- ``harness-population``: the same command with ``--population 16``: the Optuna engine asks
  16 trials at once, and the numpy trainer trains those of one structure together (the
  learning rate, dropout rates, penalties and clipping may differ within a population).
- ``harness-compiled-population``: on JAX, ``--trainer compiled --population 16``: those of
  one shape train in one vmapped program.
- ``harness-no-checkpoints``, ``harness-fit-no-checkpoints``: ``harness`` and ``harness-fit``
  with ``--checkpoint-epochs 0`` (no trial writes a checkpoint), to compare with the
  defaults side by side; ``harness-fit-every-epoch``: ``harness-fit`` with
  ``--checkpoint-seconds 0`` (a checkpoint after every epoch: what one write costs).

Both stock contenders and the harness standardise the features with the training split's
statistics. Their validation rows differ: Keras' ``validation_split`` holds out the last 20%,
the harness a seeded random 20%, so "best validation MSE" is comparable only within a row.
Trials per minute counts the search alone (from the first trial to the last, not imports,
data loading or the final retraining); seconds per trial is each trial's own training time
(for a population, its group's time over the group's size, compilation included); epochs
per trial is the mean number of epochs a trial trained (early stopping and pruning end
trials sooner, and so count towards trials per minute); peak RSS is the child's ``ru_maxrss``.
Before the clock starts, each child runs the same search for one trial of one epoch, so that
what a process pays once (importing the rest, loading compiled code, lazy set-up) is left
out, as a long-running search amortises it; ``--cold`` measures without it, with numba's
compiled loop loaded from its cache; ``--fresh-cache`` measures without it and with an empty
``NUMBA_CACHE_DIR`` for each child, as a new install's first run (the compilation counts).

    python benchmarks/throughput.py --trials 20 --epochs 50 --seeds 0
    python benchmarks/throughput.py --space shared --trials 64
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # a plain checkout, not an installed package
    sys.path.insert(0, str(ROOT))

CONTENDERS: dict[str, str] = {
    "keras-tuner": "tensorflow",
    "optuna": "tensorflow",
    # The backend the CLI picks for the numpy trainer where the user names none.
    "harness": "numpy",
    "harness-fastest": "numpy",
    "harness-workers": "numpy",
    "harness-fit": "tensorflow",
    "harness-compiled": "jax",
    "harness-population": "numpy",
    "harness-compiled-population": "jax",
    # What the trials' checkpoints cost (issue 36): the default and fit without them, and
    # fit writing one after every epoch.
    "harness-no-checkpoints": "numpy",
    "harness-fit-no-checkpoints": "tensorflow",
    "harness-fit-every-epoch": "tensorflow",
}
REFERENCE = "keras-tuner"
SPACES = ("mlp", "shared")
# The harness's fastest settings: Optuna's successive halving (asynchronous successive halving:
# a trial goes on past 1, 4, 16... epochs only while it is in the best quarter of the trials
# that reached that epoch) instead of the median pruner, and no TensorBoard runs.
FASTEST = ("--pruner", "successive-halving", "--no-tensorboard")
POPULATION = ("--population", "16")
NO_CHECKPOINTS = ("--checkpoint-epochs", "0")
PATIENCE = 20  # the harness's default early stopping, given to the stock contenders too
_MARK = "THROUGHPUT-JSON "


# --------------------------------------------------------------------------- children


def task_arrays(name: str = "boston") -> tuple[Any, Any, Any, Any, Any]:
    """The task and its standardised training / test arrays."""
    from search.tasks import load_task

    task = load_task(name)
    return (
        task,
        task.standardize(task.x_train),
        task.y_train,
        task.standardize(task.x_test),
        task.y_test,
    )


def _space_file(space: str) -> str:
    """The ``--space`` argument for the harness: a built-in name or the shared space's file."""
    return "mlp" if space == "mlp" else str(Path(__file__).with_name("shared.py"))


def _space_class(space: str) -> Any:
    from search.space_lookup import space_class

    return space_class(_space_file(space))


def _test_scores(model: Any, x_test: Any, y_test: Any) -> dict[str, Any]:
    """The model's test MSE, and its test predictions (quality.py compares them)."""
    import keras
    import numpy as np

    predictions = keras.ops.convert_to_numpy(model(x_test, training=False)).reshape(-1)
    return {
        "test_mse": float(np.mean((predictions - y_test) ** 2)),
        "test_predictions": predictions.tolist(),
    }


def _stopper() -> Any:
    import keras

    return keras.callbacks.EarlyStopping(monitor="val_mse", patience=PATIENCE, mode="min")


def child_keras_tuner(trials: int, epochs: int, seed: int, space: str) -> dict[str, Any]:
    return stock_keras_tuner("boston", trials, epochs, seed, space)


def stock_keras_tuner(
    task_name: str, trials: int, epochs: int, seed: int, space: str, budget: float | None = None
) -> dict[str, Any]:
    """Stock ``RandomSearch`` of ``trials`` trials; with a ``budget`` (seconds), no trial
    starts after it (the harness's ``--time-budget``)."""
    import keras
    import keras_tuner

    task, x, y, x_test, y_test = task_arrays(task_name)
    deadline = None if budget is None else time.perf_counter() + budget

    class Stopping(keras_tuner.RandomSearch):
        def pre_create_trial(self) -> None:
            # The oracle ends the search when it holds max_trials: past the budget, now.
            if deadline is not None and time.perf_counter() > deadline:
                self.oracle.max_trials = len(self.oracle.trials)

    # Stock keras-tuner tunes a HyperModel: the space's build, with the tuned batch size.
    class Tunable(keras_tuner.HyperModel):
        def __init__(self) -> None:
            super().__init__()
            self.space = _space_class(space)(task.spec)

        def build(self, hp: Any) -> Any:
            return self.space.build(hp)

        def fit(self, hp: Any, model: Any, *args: Any, **kwargs: Any) -> Any:
            return model.fit(*args, batch_size=hp.get("batch_size"), **kwargs)

    class Timer(keras.callbacks.Callback):
        def on_train_begin(self, logs: Any = None) -> None:
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            epochs_trained.append(1)

        def on_train_end(self, logs: Any = None) -> None:
            durations.append(time.perf_counter() - self.start)

    durations: list[float] = []
    epochs_trained: list[int] = []
    keras.utils.set_random_seed(seed)
    with tempfile.TemporaryDirectory() as folder:
        tuner = Stopping(
            Tunable(),
            objective=keras_tuner.Objective("val_mse", "min"),
            max_trials=trials,
            seed=seed,
            directory=folder,
            project_name="stock",
            overwrite=True,
        )
        start = time.perf_counter()
        with _quiet():
            tuner.search(
                x,
                y,
                epochs=epochs,
                validation_split=0.2,
                callbacks=[_stopper(), Timer()],
                verbose=0,
            )
        seconds = time.perf_counter() - start
        best = tuner.oracle.get_best_trials(1)[0]
        with _quiet():
            model = tuner.get_best_models(1)[0]
        return {
            "seconds": seconds,
            "per_trial": durations,
            "trials": len(tuner.oracle.trials),
            "epochs_per_trial": len(epochs_trained) / len(tuner.oracle.trials),
            "best_val_mse": float(best.score),
            **_test_scores(model, x_test, y_test),
        }


def _optuna_shared(trial: Any, task: Any) -> tuple[Any, int]:
    """The shared space written directly against Optuna."""
    import keras

    from search.space import loss_for, metrics_for

    l2 = trial.suggest_float("l2", 1e-6, 1e-2, log=True)
    inputs = keras.Input((task.spec.n_features,))
    hidden = inputs
    for i in range(2):
        hidden = keras.layers.Dense(64, "relu", kernel_regularizer=keras.regularizers.L2(l2))(
            hidden
        )
        hidden = keras.layers.Dropout(trial.suggest_float(f"dropout_{i}", 0.1, 0.5, step=0.1))(
            hidden
        )
    model = keras.Model(inputs, keras.layers.Dense(1)(hidden))
    rate = trial.suggest_float("learning_rate", 1e-4, 1e-1, log=True)
    clipnorm = trial.suggest_categorical("clipnorm", [0.0, 1.0, 5.0]) or None
    model.compile(
        optimizer=keras.optimizers.Adam(rate, clipnorm=clipnorm),
        loss=loss_for("regression"),
        metrics=metrics_for("regression"),
    )
    return model, 32


def _optuna_mlp(trial: Any, task: Any) -> tuple[Any, int]:
    """The MLP space written directly against Optuna, as a stock user would."""
    import keras

    from search.space import loss_for, metrics_for

    layers = trial.suggest_int("layers", 1, 3)
    activation = trial.suggest_categorical("activation", ["relu", "tanh", "elu"])
    l2 = trial.suggest_float("l2", 1e-6, 1e-2, log=True)
    inputs = keras.Input((task.spec.n_features,))
    hidden = inputs
    for i in range(layers):
        units = trial.suggest_categorical(f"units_{i}", [16, 32, 64, 128, 256])
        dropout = trial.suggest_float(f"dropout_{i}", 0.0, 0.5, step=0.125)
        hidden = keras.layers.Dense(
            units, activation=activation, kernel_regularizer=keras.regularizers.L2(l2)
        )(hidden)
        if dropout:
            hidden = keras.layers.Dropout(dropout)(hidden)
    model = keras.Model(inputs, keras.layers.Dense(1)(hidden))
    name = trial.suggest_categorical(
        "optimizer", ["sgd", "momentum", "nesterov", "rmsprop", "adam"]
    )
    rate = trial.suggest_float("learning_rate", 1e-4, 1e-1, log=True)
    clipnorm = trial.suggest_categorical("clipnorm", [0.0, 1.0, 5.0]) or None
    if name == "rmsprop":
        optimizer = keras.optimizers.RMSprop(rate, clipnorm=clipnorm)
    elif name == "adam":
        optimizer = keras.optimizers.Adam(rate, clipnorm=clipnorm)
    else:
        momentum = 0.0 if name == "sgd" else 0.9
        optimizer = keras.optimizers.SGD(
            rate, momentum=momentum, nesterov=name == "nesterov", clipnorm=clipnorm
        )
    model.compile(
        optimizer=optimizer, loss=loss_for("regression"), metrics=metrics_for("regression")
    )
    return model, trial.suggest_categorical("batch_size", [16, 32, 64, 128])


def child_optuna(trials: int, epochs: int, seed: int, space: str) -> dict[str, Any]:
    return stock_optuna("boston", trials, epochs, seed, space)


def stock_optuna(
    task_name: str,
    trials: int,
    epochs: int,
    seed: int,
    space: str,
    budget: float | None = None,
    sampler: str = "random",
) -> dict[str, Any]:
    """Stock Optuna (``RandomSampler``, or ``TPESampler`` for ``sampler="tpe"``) over a
    plain Keras objective; with a ``budget`` (seconds), Optuna's ``timeout``: no trial
    starts after it."""
    import keras
    import optuna

    task, x, y, x_test, y_test = task_arrays(task_name)
    suggest = _optuna_mlp if space == "mlp" else _optuna_shared
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    durations: list[float] = []
    epochs_trained: list[int] = []

    def objective(trial: optuna.Trial) -> float:
        start = time.perf_counter()
        model, batch_size = suggest(trial, task)
        history = model.fit(
            x,
            y,
            batch_size=batch_size,
            epochs=epochs,
            validation_split=0.2,
            callbacks=[_stopper()],
            verbose=0,
        )
        curve = history.history["val_mse"]
        epochs_trained.append(len(curve))
        best = min(range(len(curve)), key=curve.__getitem__)
        trial.set_user_attr("best_epoch", best + 1)
        durations.append(time.perf_counter() - start)
        return float(curve[best])

    keras.utils.set_random_seed(seed)
    samplers = {"random": optuna.samplers.RandomSampler, "tpe": optuna.samplers.TPESampler}
    study = optuna.create_study(sampler=samplers[sampler](seed=seed))
    start = time.perf_counter()
    study.optimize(objective, n_trials=trials, timeout=budget)
    seconds = time.perf_counter() - start
    best = study.best_trial
    keras.utils.set_random_seed(seed)
    model, batch_size = suggest(optuna.trial.FixedTrial(best.params), task)
    model.fit(x, y, batch_size=batch_size, epochs=best.user_attrs["best_epoch"], verbose=0)
    return {
        "seconds": seconds,
        "per_trial": durations,
        "trials": len(study.trials),
        "epochs_per_trial": statistics.fmean(epochs_trained),
        "best_val_mse": study.best_value,
        **_test_scores(model, x_test, y_test),
    }


def _harness(trials: int, epochs: int, seed: int, space: str, *options: str) -> dict[str, Any]:
    """``python -m search boston --space SPACE --algorithm random ...`` in this process."""
    import pandas as pd

    from search import cli

    with tempfile.TemporaryDirectory() as out:
        argv = ["boston", "--space", _space_file(space), "--algorithm", "random"]
        argv += ["--cv", "1", "--out", out, *options]
        argv += ["--trials", str(trials), "--epochs", str(epochs), "--seed", str(seed)]
        with _quiet():
            code = cli.main(argv)
        if code != 0:
            raise SystemExit(f"python -m search {' '.join(argv)} exited with {code}")
        folder = Path(out) / "boston" / f"{space}-optuna-random"
        summary = json.loads((folder / "study.json").read_text())["summary"]
        table = pd.read_csv(folder / "leaderboard.csv")
        return {
            "seconds": summary["wall_seconds"],
            "per_trial": [float(s) for s in table["seconds"].dropna()],
            "trials": summary["trials"],
            "epochs_per_trial": float(table["epochs"].mean()),
            "pruned": summary["pruned"],
            "failed": summary["failed"],
            "best_val_mse": summary["best_value"],
            "test_mse": summary["test_value"],
        }


def child_harness(trials: int, epochs: int, seed: int, space: str) -> dict[str, Any]:
    return _harness(trials, epochs, seed, space)


def child_harness_fastest(trials: int, epochs: int, seed: int, space: str) -> dict[str, Any]:
    return _harness(trials, epochs, seed, space, *FASTEST)


def child_harness_workers(trials: int, epochs: int, seed: int, space: str) -> dict[str, Any]:
    return _harness(trials, epochs, seed, space, "--workers", "2", "--no-tensorboard")


def child_harness_fit(trials: int, epochs: int, seed: int, space: str) -> dict[str, Any]:
    return _harness(trials, epochs, seed, space, "--trainer", "keras")


def child_harness_compiled(trials: int, epochs: int, seed: int, space: str) -> dict[str, Any]:
    return _harness(trials, epochs, seed, space, "--trainer", "compiled")


def child_harness_population(trials: int, epochs: int, seed: int, space: str) -> dict[str, Any]:
    return _harness(trials, epochs, seed, space, *POPULATION)


def child_harness_compiled_population(
    trials: int, epochs: int, seed: int, space: str
) -> dict[str, Any]:
    return _harness(trials, epochs, seed, space, "--trainer", "compiled", *POPULATION)


def child_harness_no_checkpoints(trials: int, epochs: int, seed: int, space: str) -> dict[str, Any]:
    return _harness(trials, epochs, seed, space, *NO_CHECKPOINTS)


def child_harness_fit_no_checkpoints(
    trials: int, epochs: int, seed: int, space: str
) -> dict[str, Any]:
    return _harness(trials, epochs, seed, space, "--trainer", "keras", *NO_CHECKPOINTS)


def child_harness_fit_every_epoch(
    trials: int, epochs: int, seed: int, space: str
) -> dict[str, Any]:
    return _harness(trials, epochs, seed, space, "--trainer", "keras", "--checkpoint-seconds", "0")


def _quiet() -> contextlib.redirect_stdout[io.StringIO]:
    """Keep the libraries' progress output off stdout, where the JSON line goes."""
    return contextlib.redirect_stdout(io.StringIO())


def run_child(contender: str, trials: int, epochs: int, seed: int, space: str, cold: bool) -> None:
    # Imported before the clock starts, as a long-running search would have them.
    import keras  # noqa: F401
    import keras_tuner  # noqa: F401
    import optuna  # noqa: F401

    import search  # noqa: F401  (quiets TensorFlow and turns oneDNN off, as the CLI does)

    child = globals()[f"child_{contender.replace('-', '_')}"]
    if not cold:
        # What a process pays once (the rest of the imports, loading compiled code, lazy
        # set-up) is paid by a search of one trial of one epoch, before the clock.
        child(1, 1, seed, space)
    result = child(trials, epochs, seed, space)
    result["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(_MARK + json.dumps(result), flush=True)


# --------------------------------------------------------------------------- parent


def measure(
    contender: str, trials: int, epochs: int, seed: int, space: str, cold: bool, fresh: bool
) -> dict[str, Any]:
    env = dict(os.environ, KERAS_BACKEND=CONTENDERS[contender])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    command = [sys.executable, str(Path(__file__).resolve()), "--child", contender]
    command += ["--trials", str(trials), "--epochs", str(epochs), "--seeds", str(seed)]
    command += ["--space", space, *(["--cold"] if cold or fresh else [])]
    with tempfile.TemporaryDirectory() as cache:
        if fresh:  # numba compiles the loop again, as on a new install
            env["NUMBA_CACHE_DIR"] = cache
        proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(_MARK)]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{contender} (seed {seed}) failed:\n{proc.stderr[-4000:]}")
    result = json.loads(lines[-1][len(_MARK) :])
    result.pop("test_predictions", None)  # quality.py's
    result.update(contender=contender, backend=CONTENDERS[contender], seed=seed)
    result["trials_per_minute"] = 60 * result["trials"] / result["seconds"]
    result["median_seconds"] = statistics.median(result["per_trial"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--space", choices=SPACES, default="mlp")
    parser.add_argument("--contenders", nargs="+", choices=list(CONTENDERS), default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench")
    parser.add_argument(
        "--cold", action="store_true", help="no warm-up search before the clock starts"
    )
    parser.add_argument(
        "--fresh-cache",
        action="store_true",
        help="--cold, and each child with an empty NUMBA_CACHE_DIR (a new install's first run)",
    )
    parser.add_argument("--child", choices=list(CONTENDERS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args.child, args.trials, args.epochs, args.seeds[0], args.space, args.cold)
        return
    names = args.contenders or list(CONTENDERS)
    rows = []
    for index, seed in enumerate(args.seeds):
        # Rotate the order from seed to seed, so no contender always runs first or last.
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            print(f"seed {seed}: {name} ...", file=sys.stderr, flush=True)
            rows.append(
                measure(
                    name, args.trials, args.epochs, seed, args.space, args.cold, args.fresh_cache
                )
            )
    report(rows, names, args)


COLUMNS = (
    "contender",
    "backend",
    "seed",
    "trials",
    "trials_per_minute",
    "epochs_per_trial",
    "median_seconds",
    "maxrss_mb",
    "best_val_mse",
    "test_mse",
    "ratio_to_keras_tuner",
)


def report(rows: list[dict[str, Any]], names: list[str], args: argparse.Namespace) -> None:
    from search.files import write_text

    reference = {r["seed"]: r["trials_per_minute"] for r in rows if r["contender"] == REFERENCE}
    for row in rows:
        base = reference.get(row["seed"])
        row["ratio_to_keras_tuner"] = row["trials_per_minute"] / base if base else None
    table = sorted(rows, key=lambda r: (names.index(r["contender"]), r["seed"]))
    if len(args.seeds) > 1:
        for name in names:
            mine = [r for r in rows if r["contender"] == name]
            mean = {
                key: statistics.fmean(r[key] for r in mine if r[key] is not None)
                for key in COLUMNS[3:]
                if any(r[key] is not None for r in mine)
            }
            table.append({"contender": name, "backend": mine[0]["backend"], "seed": "mean", **mean})
    print(
        f"Boston, {args.space} space, {args.trials} random trials, at most {args.epochs} epochs, "
        f"patience {PATIENCE}; seeds {' '.join(map(str, args.seeds))}; " + _state(args)
    )
    header = (
        f"{'contender':<20} {'backend':<10} {'seed':>4} {'trials/min':>10} {'epochs':>6} "
        f"{'s/trial':>8} "
        f"{'RSS MB':>7} {'best val':>9} {'test MSE':>9} {'x ' + REFERENCE:>14}"
    )
    print(header)
    print("-" * len(header))
    for row in table:
        ratio = row.get("ratio_to_keras_tuner")
        print(
            f"{row['contender']:<20} {row['backend']:<10} {row['seed']!s:>4} "
            f"{row['trials_per_minute']:>10.1f} {row['epochs_per_trial']:>6.1f} "
            f"{row['median_seconds']:>8.3f} "
            f"{row['maxrss_mb']:>7.0f} {row['best_val_mse']:>9.2f} {row['test_mse']:>9.2f} "
            f"{'' if ratio is None else f'{ratio:.1f}x':>14}"
        )
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in table:
        writer.writerow({key: _rounded(row.get(key)) for key in COLUMNS})
    name = "throughput" + ("" if args.space == "mlp" else f"-{args.space}")
    suffix = "-fresh-cache" if args.fresh_cache else "-cold" if args.cold else ""
    path = args.out / f"{name}{suffix}.csv"
    write_text(path, buffer.getvalue())
    print(f"wrote {path}")


def _state(args: argparse.Namespace) -> str:
    if args.fresh_cache:
        return "cold, with an empty numba cache"
    return "cold" if args.cold else "after a warm-up search of one trial"


def _rounded(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


if __name__ == "__main__":
    main()
