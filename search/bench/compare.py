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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from search.bench.config import BenchConfig
from search.bench.stats import best_so_far, significance, summarize
from search.engines.base import CONTENDERS, ENGINES, TrialRecord
from search.engines.ledger import budget_used
from search.errors import SearchError
from search.files import read_json, write_json, write_text
from search.space import space_name
from search.study.api import Study
from search.study.stored import open_stored
from search.tasks.scoring import maximised
from search.tasks.task import Task

# With a time budget the trial count is only a safety cap.
TRIAL_CAP = 100_000
TIMELINE = "timeline.json"  # per study: when each trial ended, and the budget it ran under
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


def study_name(contender: str, seed: int) -> str:
    engine, algorithm = contender.split(":")
    return f"{engine}-{algorithm}-seed{seed}"


def studies(config: BenchConfig, task: Task) -> list[Study]:
    """One study per contender and seed under the benchmark's own results root, each
    validated (and checked against a stored one of its name) before anything is written."""
    made = []
    for contender in config.contenders:
        engine, algorithm = contender.split(":")
        for seed in range(config.seeds):
            study = Study(
                task,
                config.space,
                engine=engine,
                algorithm=algorithm,
                pruner=config.pruner if engine == "optuna" else "none",
                objective=config.objective,
                name=study_name(contender, seed),
                out=config.folder / "studies",
                seed=seed,
                epochs=config.settings.epochs,
                patience=config.settings.patience,
                cv=config.settings.cv,
                validation_split=config.settings.validation_split,
                # Only the model that validation selects is scored on the test split, as one
                # retraining (the recorded benchmark in the README predates ensembles).
                top_k=1,
                ensemble=1,
                tensorboard=config.tensorboard,
                max_failures=config.max_failures,
                trainer=config.trainer,
            )
            study.check()
            made.append(study)
    return made


def run(config: BenchConfig, task: Task, prepared: list[Study]) -> BenchResult:
    """Run (or resume) every study, then write the runs, the summary and the plots."""
    stopped = []
    frames = []
    finals = []
    for study in prepared:
        timeline = _read_timeline(study.folder)
        records = _records(study) if timeline else []
        if not _finished(config, timeline, records):
            reason = _run_one(config, study, timeline)
            if reason:
                stopped.append(f"{study.name}: {reason}")
            records = _records(study)
        contender = f"{study.config.engine}:{study.config.algorithm}"
        seed = study.config.settings.seed
        frame = run_table(
            records, _read_timeline(study.folder).get("elapsed", {}), config.direction
        )
        frame.insert(0, "seed", seed)
        frame.insert(0, "contender", contender)
        frames.append(frame)
        summary = read_json(study.folder / "study.json").get("summary", {})
        finals.append(
            {
                "contender": contender,
                "seed": seed,
                "trials": len(frame),
                "best_value": _last(frame["best_so_far"]),
                "test_value": summary.get("test_value"),
                "wall_seconds": _last(frame["elapsed"]),
            }
        )
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


def _run_one(config: BenchConfig, study: Study, timeline: dict[str, Any]) -> str | None:
    """Run one study; record when each trial ended, counted from the study's start.

    A resumed study continues its clock where its last finished trial left it, so the time
    of a trial that was interrupted is not counted.
    """
    elapsed: dict[str, float] = dict(timeline.get("elapsed", {}))
    start = time.time() - max(elapsed.values(), default=0.0)
    timeout = None
    if config.time_budget is not None:
        # A budget already spent: no trial starts, and the study is scored as it stands.
        timeout = max(start + config.time_budget - time.time(), 1e-6)

    def save(finished: bool) -> None:
        write_json(
            study.folder / TIMELINE,
            {"budget": config.budget, "elapsed": elapsed, "finished": finished},
        )

    def on_trial(records: list[TrialRecord]) -> None:
        now = time.time() - start
        for record in records:
            if record.state != "running" and str(record.number) not in elapsed:
                elapsed[str(record.number)] = round(now, 3)
        save(False)

    result = study.run(config.trials or TRIAL_CAP, timeout=timeout, on_trial=on_trial)
    save(True)
    return result.stopped


def _records(study: Study) -> list[TrialRecord]:
    """Every trial of a stored study, read from its engine's storage (no trial is run)."""
    return open_stored(study.folder)[0].records()


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
        sorted((r for r in records if r.state != "running"), key=lambda r: r.number), start=1
    ):
        recorded = elapsed.get(str(record.number))
        clock = float(recorded) if recorded is not None else clock + (record.seconds or 0.0)
        rows.append(
            {
                "trial": position,
                "elapsed": round(clock, 3),
                "value": record.value if record.state == "complete" else math.nan,
                "state": record.state,
            }
        )
    table = pd.DataFrame(rows, columns=["trial", "elapsed", "value", "state"])
    table.insert(3, "best_so_far", best_so_far(table["value"], direction))
    return table


def _finished(config: BenchConfig, timeline: dict[str, Any], records: list[TrialRecord]) -> bool:
    """Whether a run ended under this budget: its trials used up, or its time spent."""
    if not timeline.get("finished") or timeline.get("budget") != config.budget:
        return False
    return config.trials is None or budget_used(records) >= config.trials


def _read_timeline(folder: Path) -> dict[str, Any]:
    path = folder / TIMELINE
    return read_json(path) if path.exists() else {}


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
