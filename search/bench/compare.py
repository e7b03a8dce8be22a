"""Benchmark mode: every contender (``engine:algorithm``) with every seed as its own study.

Each (contender, seed) is an ordinary study, ``<engine>-<algorithm>-seed<k>``, under
``OUT/bench/<task>-<space>/studies/``, so a rerun of the same benchmark resumes: finished
studies are read back from their storage, unfinished ones continue. The tables and plots are
rebuilt from the studies at the end of every run.

The statistics are pure functions of two tables (see :mod:`search.bench.stats`), so they can
be checked on constructed data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from search.bench.config import BenchConfig
from search.bench.execute import make_study, read_timeline, records, run_studies
from search.bench.job import run_on_cluster
from search.bench.stats import best_so_far, significance, summarize
from search.engines.base import CONTENDERS, ENGINES
from search.engines.records import COMPLETE, RUNNING, TrialRecord
from search.errors import SearchError
from search.files import read_json, write_json, write_text
from search.layout import STUDY_JSON
from search.space_lookup import space_name
from search.study.api import Study
from search.tasks.scoring import maximised
from search.tasks.task import Task

RUN_COLUMNS = ("contender", "seed", "trial", "elapsed", "value", "best_so_far", "state")


@dataclass
class BenchResult:
    folder: Path
    runs: pd.DataFrame  # every trial of every run
    finals: pd.DataFrame  # one row per run
    summary: pd.DataFrame  # one row per contender
    written: list[Path]
    stopped: list[str]  # studies that stopped before their budget, with the reason


def parse_contenders(text: str | None) -> tuple[str, ...]:
    """``engine:algorithm`` names, comma-separated; every one of :data:`CONTENDERS` if None
    (``optuna:gp`` only where PyTorch is installed)."""
    if text is None:
        return tuple(c for c in CONTENDERS if c != "optuna:gp" or _has_torch())
    else:
        names = [name.strip() for name in text.split(",") if name.strip()]
    valid = [
        f"{engine}:{algorithm}"
        for engine, algorithms in ENGINES.items()
        for algorithm in algorithms
    ]
    if not names:
        raise SearchError(f"--contenders is empty; choose from {', '.join(valid)}")
    for name in names:
        if name not in valid:
            raise SearchError(f"unknown contender {name!r}; choose from {', '.join(valid)}")
    if len(set(names)) != len(names):
        duplicate = next(name for name in names if names.count(name) > 1)
        raise SearchError(f"contender {duplicate!r} is listed twice in --contenders")
    if "optuna:gp" in names and not _has_torch():
        raise SearchError(
            "contender optuna:gp needs PyTorch: pip install '.[gp]' (or leave it out of "
            "--contenders)"
        )
    return tuple(names)


def _has_torch() -> bool:
    """Whether Optuna's GP sampler can run (it needs PyTorch, the optional extra 'gp')."""
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def studies(config: BenchConfig, task: Task) -> list[Study]:
    """One study per contender and seed under the benchmark's own results root, each
    validated (and checked against a stored one of its name) before anything is written."""
    made = []
    for contender in config.contenders:
        for seed in range(config.seeds):
            study = make_study(config, task, contender, seed)
            study.check()
            made.append(study)
    return made


def run(
    config: BenchConfig,
    task: Task,
    prepared: list[Study],
    jobs: int = 1,
    cluster: str | None = None,
) -> BenchResult:
    """Run (or resume) every study, ``jobs`` at once or as tasks on a Dask ``cluster``,
    then write the tables and plots."""
    work = [(config, study) for study in prepared]
    stopped = run_on_cluster(work, cluster) if cluster is not None else run_studies(work, jobs)
    return collect(config, task, prepared, stopped, rebuild=jobs > 1 or cluster is not None)


def collect(
    config: BenchConfig,
    task: Task,
    prepared: list[Study],
    stopped: list[str],
    rebuild: bool = False,
) -> BenchResult:
    """Read every study back from its storage; write the runs, the summary and the plots.

    ``rebuild``: write the studies' own table again (studies that ran at once in several
    processes each rewrote it, and the last writer may not have seen the others).
    """
    frames = []
    finals = []
    for study in prepared:
        contender = f"{study.config.engine}:{study.config.algorithm}"
        seed = study.config.settings.seed
        frame = run_table(records(study), read_timeline(study).get("elapsed", {}), config.direction)
        frame.insert(0, "seed", seed)
        frame.insert(0, "contender", contender)
        frames.append(frame)
        stored = read_json(study.folder / STUDY_JSON)
        summary = stored.get("summary", {})
        finals.append(
            {
                "contender": contender,
                "seed": seed,
                "trials": len(frame),
                "best_value": _last(frame["best_so_far"]),
                "test_value": summary.get("test_value"),
                # The objective's own metric on test for the selected trial: what its
                # validation value claimed, measured on test (the suite's optimism).
                "test_objective": _test_of_objective(stored, config.objective),
                "wall_seconds": _last(frame["elapsed"]),
            }
        )
    if rebuild and prepared:
        from search.results.leaderboard import write_study_table

        write_study_table(config.folder / "studies")
    runs = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=RUN_COLUMNS)
    final = pd.DataFrame(finals)
    baseline = _baseline(task)
    test_direction = "max" if maximised(task.headline) else "min"
    table = summarize(
        runs, final, config.direction, baseline[1] if baseline else None, test_direction
    )
    table = table.merge(significance(final, config.direction), on="contender", how="left")
    written = _write(config, task, runs, final, table, baseline)
    return BenchResult(config.folder, runs, final, table, written, stopped)


def run_table(
    records: list[TrialRecord], elapsed: dict[str, float], direction: str
) -> pd.DataFrame:
    """One row per finished trial in trial order: elapsed seconds, value, best so far.

    ``elapsed`` maps a trial number to the seconds from the study's start to the trial's end;
    a trial missing from it (its end was not recorded) counts its own training seconds after
    the previous trial.
    """
    rows = []
    clock = 0.0
    for position, record in enumerate(
        sorted((r for r in records if r.state != RUNNING), key=lambda r: r.number), start=1
    ):
        recorded = elapsed.get(str(record.number))
        clock = float(recorded) if recorded is not None else clock + (record.seconds or 0.0)
        rows.append(
            {
                "trial": position,
                "elapsed": round(clock, 3),
                "value": record.value if record.state == COMPLETE else math.nan,
                "state": record.state,
            }
        )
    table = pd.DataFrame(rows, columns=["trial", "elapsed", "value", "state"])
    table.insert(3, "best_so_far", best_so_far(table["value"], direction))
    return table


def _test_of_objective(stored: dict[str, Any], objective: str) -> float:
    """The selected trial's test value of the objective's metric (``val_mse`` -> ``mse``),
    NaN where it was not scored."""
    best = stored.get("summary", {}).get("best_trial")
    scores = stored.get("scores", {}).get(str(best), {})
    value = scores.get(objective.removeprefix("val_"))
    return math.nan if value is None else float(value)


def _last(column: pd.Series) -> float:
    values = column.dropna()
    return float(values.iloc[-1]) if len(values) else math.nan


def _baseline(task: Task) -> tuple[str, float] | None:
    try:
        return task.best_baseline()
    except ValueError:
        return None


def _write(
    config: BenchConfig,
    task: Task,
    runs: pd.DataFrame,
    finals: pd.DataFrame,
    summary: pd.DataFrame,
    baseline: tuple[str, float] | None,
) -> list[Path]:
    from search.results import plots  # matplotlib loads only when plots are drawn
    from search.study.run import versions  # with Keras' version: loaded once studies ran

    folder = config.folder
    paths = {
        "runs": folder / "runs.csv",
        "finals": folder / "finals.csv",
        "summary": folder / "summary.csv",
        "curves": folder / "curves.png",
        "test": folder / "test.png",
        "bench": folder / "bench.json",
    }
    write_text(paths["runs"], runs.to_csv(index=False))
    write_text(paths["finals"], finals.to_csv(index=False))
    write_text(paths["summary"], summary.to_csv(index=False))
    label = f"{config.task} / {space_name(config.space)}"
    # The baseline is drawn on the curves only when it is the objective's metric.
    line = baseline if baseline and config.objective == f"val_{task.headline}" else None
    plots.curves(runs, paths["curves"], config.objective, label, config.direction, line)
    plots.test_boxes(finals, paths["test"], task.headline, label, baseline)
    write_json(
        paths["bench"],
        {
            "task": config.task,
            "space": space_name(config.space),
            "contenders": list(config.contenders),
            "seeds": config.seeds,
            "budget": config.budget,
            "settings": config.settings.__dict__ | {"seed": "0..seeds-1"},
            "objective": config.objective,
            "direction": config.direction,
            "pruner": config.pruner,
            "max_failures": config.max_failures,
            "trainer": config.trainer,
            "test_metric": task.headline,
            "baseline": baseline[0] if baseline else None,
            "baseline_value": baseline[1] if baseline else None,
            "versions": versions(),
        },
    )
    return list(paths.values())
