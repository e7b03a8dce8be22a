"""Does the harness's cost per trial grow with the study? First against last trials of a long one.

Each study runs in its own process through the Python API: the linear space on Boston with the
random sampler (keras-tuner's or Optuna's) and no pruner, 2 epochs, one validation split, the
best trial alone scored. A callback stamps the time at which each trial is recorded; a trial's
wall time is the gap since the previous stamp, so it holds everything the harness does per
trial (the engine asking and telling, the model build, training, the records, the progress
bar, the TensorBoard run and the journal writes); the process's CPU time per trial is stamped
too, as other jobs on a shared machine stretch wall time but not CPU time. The first and the last
``--window`` trials are compared; the peak RSS of the process covers the whole study, its
scoring and its files. ``--part engines`` times each algorithm's own ask and tell, without
training, over as many trials (``optuna:random+median``: with the median pruner).

    python benchmarks/scale.py --trials 10000 --window 1000
    python benchmarks/scale.py --trials 2000 --window 200 --engines optuna --tensorboard on
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# One study in a child process: the stamps and the peak RSS come back as JSON on stdout.
_CHILD = """
import json, resource, sys, time
import search

engine, trials, tensorboard, out = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "on", sys.argv[4]
stamps, cpu, rss = [], [], []
study = search.Study(
    "boston", "linear", engine=engine, algorithm="random", epochs=2, cv=1, top_k=1,
    ensemble=1, pruner="none", tensorboard=tensorboard, out=out,
)
start, start_cpu = time.perf_counter(), time.process_time()
def stamp(records):
    stamps.append(time.perf_counter())
    cpu.append(time.process_time())
    rss.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
result = study.run(trials, on_trial=stamp)  # with the progress bar, as the CLI runs
end = time.perf_counter()
print(json.dumps({
    "start": start, "stamps": stamps, "start_cpu": start_cpu, "cpu": cpu, "end": end,
    "trials": len(result.records), "rss": rss,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def run_study(engine: str, trials: int, tensorboard: str) -> dict[str, float]:
    """One study's per-trial times (first and last windows), wall time and peak RSS."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory() as out:
        argv = [engine, str(trials), tensorboard, out]
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, *argv], env=env, capture_output=True, text=True
        )
    if proc.returncode != 0:
        raise SystemExit(f"study {argv[:3]} failed:\n{proc.stderr[-3000:]}")
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    stamps = [found["start"], *found["stamps"]]
    cpu = [found["start_cpu"], *found["cpu"]]
    window = min(len(found["rss"]), 1000) - 1
    return {
        # Peak RSS after the first 1,000 trials and after the last: a flat study adds nothing.
        "rss_at_1000_mb": found["rss"][window],
        "rss_at_end_mb": found["rss"][-1],
        "trials": found["trials"],
        "gaps": [b - a for a, b in zip(stamps, stamps[1:], strict=False)],
        "cpu_gaps": [b - a for a, b in zip(cpu, cpu[1:], strict=False)],
        "after_search_s": found["end"] - stamps[-1],
        "wall_s": found["end"] - found["start"],
        "peak_rss_mb": found["peak_rss_mb"],
    }


# The engines' own cost per trial, without training: each algorithm asks for N configurations
# of the linear space's declared hyperparameters and is told a made-up value for each (a
# smooth function of them, so that model-based samplers have something to fit).
_ENGINE_CHILD = """
import json, math, sys, tempfile, time
import optuna, keras_tuner
from search.declared_space import declared_space
from search.space_lookup import space_class
from search.tasks import load_task

engine, algorithm, trials = sys.argv[1], sys.argv[2], int(sys.argv[3])
declared = declared_space(space_class("linear")(load_task("boston").spec))

def made_up(values):
    return sum(math.log10(v) ** 2 if isinstance(v, float) and v > 0 else 0.0
               for v in values.values() if isinstance(v, float))

stamps = []
if engine == "optuna":
    from search.engines.optuna.engine import _sampler
    distributions = {}
    for spec in declared.space:
        if isinstance(spec, keras_tuner.engine.hyperparameters.Choice):
            distributions[spec.name] = optuna.distributions.CategoricalDistribution(spec.values)
        elif isinstance(spec, keras_tuner.engine.hyperparameters.Float):
            distributions[spec.name] = optuna.distributions.FloatDistribution(
                spec.min_value, spec.max_value, log=spec.sampling == "log")
        elif isinstance(spec, keras_tuner.engine.hyperparameters.Int):
            distributions[spec.name] = optuna.distributions.IntDistribution(
                spec.min_value, spec.max_value)
        elif isinstance(spec, keras_tuner.engine.hyperparameters.Boolean):
            distributions[spec.name] = optuna.distributions.CategoricalDistribution([True, False])
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    # "random+median": the sampler with the median pruner, asked after each of 2 epochs.
    sampler, _, pruner = algorithm.partition("+")
    study = optuna.create_study(
        sampler=_sampler(sampler, 0),
        pruner=optuna.pruners.MedianPruner() if pruner else optuna.pruners.NopPruner(),
    )
    for _ in range(trials):
        trial = study.ask(distributions)
        value = made_up(trial.params)
        pruned = False
        for epoch in range(2 if pruner else 0):
            trial.report(value * (2 - epoch), epoch)
            pruned = trial.should_prune()
            if pruned:
                break
        study.tell(trial, None if pruned else value,
                   optuna.trial.TrialState.PRUNED if pruned else None)
        stamps.append(time.perf_counter())
else:
    oracles = {"random": keras_tuner.oracles.RandomSearchOracle,
               "bayesian": keras_tuner.oracles.BayesianOptimizationOracle}
    oracle = oracles[algorithm](
        objective=keras_tuner.Objective("val_mse", "min"), max_trials=trials,
        hyperparameters=declared, seed=1, max_consecutive_failed_trials=trials + 1)
    oracle._set_project_dir(tempfile.mkdtemp(), "scale")
    for _ in range(trials):
        trial = oracle.create_trial("tuner0")
        if trial.status == "STOPPED":
            break
        oracle.update_trial(trial.trial_id, {"val_mse": made_up(trial.hyperparameters.values)})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
        stamps.append(time.perf_counter())
print(json.dumps(stamps))
"""


def engine_cost(engine: str, algorithm: str, trials: int) -> list[float]:
    """Seconds per trial of ``algorithm``'s ask and tell alone, trial after trial."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-c", _ENGINE_CHILD, engine, algorithm, str(trials)],
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{engine} {algorithm} failed:\n{proc.stderr[-3000:]}")
    stamps = json.loads(proc.stdout.strip().splitlines()[-1])
    return [b - a for a, b in zip(stamps, stamps[1:], strict=False)]


def harness(args: argparse.Namespace) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for engine in args.engines:
        for tensorboard in args.tensorboard:
            found = run_study(engine, args.trials, tensorboard)
            # The first gap includes the first trial's one-off costs (the engine's files,
            # the first model build's tracing); the window starts after it.
            gaps, cpu_gaps = found.pop("gaps"), found.pop("cpu_gaps")
            first, last = gaps[1 : args.window + 1], gaps[-args.window :]
            first_cpu, last_cpu = cpu_gaps[1 : args.window + 1], cpu_gaps[-args.window :]
            row = {
                "engine": engine,
                "tensorboard": tensorboard,
                **found,
                "first_ms": 1000 * statistics.fmean(first),
                "last_ms": 1000 * statistics.fmean(last),
                "first_median_ms": 1000 * statistics.median(first),
                "last_median_ms": 1000 * statistics.median(last),
                # The process's CPU time per trial: what a loaded machine's other jobs do
                # not change (wall time grows when they take the cores).
                "first_cpu_ms": 1000 * statistics.fmean(first_cpu),
                "last_cpu_ms": 1000 * statistics.fmean(last_cpu),
            }
            row["growth"] = row["last_ms"] / row["first_ms"] - 1
            row["cpu_growth"] = row["last_cpu_ms"] / row["first_cpu_ms"] - 1
            rows.append(row)
            print(
                f"{engine:12} tensorboard {tensorboard:3}: {found['trials']} trials in "
                f"{found['wall_s']:.0f} s; mean per trial, first {args.window}: "
                f"{row['first_ms']:.1f} ms, last {args.window}: {row['last_ms']:.1f} ms "
                f"({row['growth']:+.1%}); medians {row['first_median_ms']:.1f} / "
                f"{row['last_median_ms']:.1f} ms; CPU per trial {row['first_cpu_ms']:.1f} / "
                f"{row['last_cpu_ms']:.1f} ms ({row['cpu_growth']:+.1%}); after the search "
                f"{found['after_search_s']:.1f} s; peak RSS after 1,000 trials "
                f"{found['rss_at_1000_mb']:.0f} MB, after the last {found['rss_at_end_mb']:.0f} "
                f"MB, with the scoring {found['peak_rss_mb']:.0f} MB; "
                f"load {os.getloadavg()[0]:.2f}",
                flush=True,
            )
    return rows


def engines(args: argparse.Namespace) -> list[dict[str, object]]:
    """Each algorithm's ask-and-tell time per trial around 10%, 50% and 100% of the study."""
    rows: list[dict[str, object]] = []
    for name in args.algorithms:
        engine, _, algorithm = name.partition(":")
        gaps = engine_cost(engine, algorithm, args.trials)
        row: dict[str, object] = {"engine": engine, "algorithm": algorithm}
        for share in (0.1, 0.5, 1.0):
            end = max(int(share * len(gaps)), 1)
            window = gaps[max(end - args.window, 0) : end]
            row[f"ms_at_{int(share * 100)}pct"] = 1000 * statistics.fmean(window)
        row["total_s"] = sum(gaps)
        rows.append(row)
        print(
            f"{name:22} ask+tell per trial (mean of {args.window}) at 10%: "
            f"{row['ms_at_10pct']:.2f} ms, 50%: {row['ms_at_50pct']:.2f} ms, 100%: "
            f"{row['ms_at_100pct']:.2f} ms; {row['total_s']:.0f} s for {len(gaps) + 1} trials",
            flush=True,
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--part",
        nargs="+",
        default=["harness", "engines"],
        choices=["harness", "engines"],
        help="harness: whole studies, first against last trials; engines: each algorithm's "
        "own ask-and-tell cost without training",
    )
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--window", type=int, default=1_000, help="trials in each window")
    parser.add_argument("--engines", nargs="+", default=["optuna", "keras-tuner"])
    parser.add_argument("--tensorboard", nargs="+", default=["on", "off"], choices=["on", "off"])
    parser.add_argument(
        "--algorithms",
        nargs="+",
        default=["optuna:random", "optuna:qmc", "optuna:tpe", "optuna:cmaes", "keras-tuner:random"],
        help="ENGINE:ALGORITHM pairs for --part engines; optuna:ALGORITHM+median adds the "
        "median pruner, asked after each of 2 epochs",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, load {os.getloadavg()[0]:.2f}", flush=True)
    rows = []
    if "harness" in args.part:
        rows += harness(args)
    if "engines" in args.part:
        rows += engines(args)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
