"""Running a suite: every entry as a benchmark of its own, then the comparison over tasks.

Entry ``E`` of suite ``S`` is an ordinary benchmark in ``OUT/bench/suite-S/E/`` (its
studies, runs.csv, summary.csv, curves.png, ...: see :mod:`search.bench.compare`), so a
rerun resumes every (entry, contender, seed) study where it stopped. The suite's own tables
and plots, in ``OUT/bench/suite-S/``, are rebuilt from the entries at the end of every run:

- ``finals.csv``: one row per run of every entry (a ``task`` column: the entry's name);
- ``tasks.csv``: each entry's summary (one row per contender), one after another;
- ``summary.csv``: one row per contender over the suite (:data:`crosstask.SUITE_COLUMNS`);
- ``posthoc.csv``: the Nemenyi p-values of every pair of contenders;
- ``budget.csv`` and ``budget.png``: the mean rank after 10/25/50/100% of the trials and
  of the wall time (a tabular task's: its simulated clock);
- ``optimism.csv``: per entry and contender, the selected trials' mean validation value,
  their mean test value of the same metric and the mean optimism (test minus validation,
  positive where validation promised more), in the task's units and normalised; the
  summary's ``test_mean_rank`` and ``optimism`` columns sum it up beside the validation
  ranks;
- ``cd.png``: the critical-difference diagram; ``suite.json``: the tests and the settings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from search.bench import crosstask
from search.bench.compare import BenchResult, collect, studies
from search.bench.config import BenchConfig, bench_config, training
from search.bench.execute import check_jobs, run_studies
from search.bench.job import run_on_cluster
from search.bench.suite import Suite, SuiteEntry
from search.files import write_json, write_text
from search.layout import check_name
from search.study.api import Study
from search.study.options import DEFAULTS
from search.tasks import load_task
from search.tasks.scoring import maximised
from search.tasks.task import Task


@dataclass
class Prepared:
    """One entry, ready to run: its benchmark's config, its task and its checked studies."""

    entry: SuiteEntry
    config: BenchConfig
    task: Task
    studies: list[Study]


@dataclass
class SuiteResult:
    folder: Path
    entries: list[BenchResult]
    finals: pd.DataFrame  # one row per run, every entry
    summary: pd.DataFrame  # one row per contender
    test: dict[str, float]  # the Friedman test and the critical difference
    posthoc: pd.DataFrame  # Nemenyi p-values, contenders x contenders
    budget: pd.DataFrame  # mean ranks over the budget
    written: list[Path]
    stopped: list[str]


def suite_folder(out: Path, suite: Suite) -> Path:
    return Path(out) / "bench" / f"suite-{check_name('suite', suite.name)}"


def prepare(
    suite: Suite,
    contenders: tuple[str, ...],
    *,
    overrides: dict[str, Any] | None = None,
    **run: Any,
) -> list[Prepared]:
    """Every entry's benchmark, each study checked before anything is written.

    ``run`` are :func:`search.bench.config.bench_config`'s keywords (``out``, ``seeds``,
    ``trials``, ``time_budget``, ``tensorboard``, ``max_failures``). A training option in
    ``overrides`` (the command line's) beats the entry's, which beats the suite's
    ``[settings]``, which beat :data:`search.bench.config.TRAINING_DEFAULTS`.
    """
    folder = suite_folder(Path(run.get("out", DEFAULTS["out"])), suite)
    prepared = []
    for entry in suite.entries:
        task = load_task(entry.task, **entry.task_options)
        options = training(entry.options, overrides or {})
        home = folder / entry.name
        config = bench_config(task, entry.task, entry.space, contenders, options, home=home, **run)
        prepared.append(Prepared(entry, config, task, studies(config, task)))
    return prepared


def bench_suite(
    suite: Suite | str | Path,
    contenders: str | None = None,
    *,
    jobs: int = 1,
    cluster: Any = None,
    **options: Any,
) -> SuiteResult:
    """Run (or resume) a suite from Python, as ``python -m search bench --suite`` does.

    ``suite`` is a :class:`Suite`, a built-in suite's name or a suite file; ``contenders``
    comma-separated ``engine:algorithm`` names (default: all); ``options`` are
    :func:`prepare`'s (``out``, ``seeds``, ``trials``, ``time_budget``, ``overrides``,
    ``tensorboard``, ``max_failures``). ``cluster`` runs every study as a task on a Dask
    cluster, as :class:`search.Study` takes it (an address, ``"local"``, a Dask Client or
    cluster object), instead of ``jobs`` processes. Example::

        result = bench_suite("small", "optuna:tpe,optuna:random", seeds=10, trials=50, jobs=2)
        result.summary  # one row per contender; result.test["friedman_p"]
    """
    from search.bench.compare import parse_contenders
    from search.bench.suite import load_suite

    loaded = suite if isinstance(suite, Suite) else load_suite(suite)
    check_jobs(jobs, [])
    address = None
    if cluster is not None:
        from search.study.cluster import address_of  # Dask loads only for a cluster

        address = address_of(cluster)
    prepared = prepare(loaded, parse_contenders(contenders), **options)
    return run_suite(loaded, prepared, jobs, address)


def run_suite(
    suite: Suite, prepared: list[Prepared], jobs: int = 1, cluster: str | None = None
) -> SuiteResult:
    """Run (or resume) every study of every entry, ``jobs`` at once or as tasks on the Dask
    ``cluster`` (an address); then write each entry's tables and the suite's."""
    check_jobs(jobs, [p.task for p in prepared], cluster)
    work = [(p.config, study) for p in prepared for study in p.studies]
    stopped = run_on_cluster(work, cluster) if cluster is not None else run_studies(work, jobs)
    rebuild = jobs > 1 or cluster is not None
    results = [collect(p.config, p.task, p.studies, [], rebuild=rebuild) for p in prepared]
    return aggregate(suite, prepared, results, stopped)


def aggregate(
    suite: Suite, prepared: list[Prepared], results: list[BenchResult], stopped: list[str]
) -> SuiteResult:
    """The suite's tables, tests and plots from its entries' results."""
    finals, runs, tasks = [], [], []
    for entry, result in zip(prepared, results, strict=True):
        sign = 1.0 if entry.config.direction == "min" else -1.0
        test_sign = -1.0 if maximised(entry.task.headline) else 1.0
        name = entry.entry.name
        final = result.finals
        finals.append(
            final.assign(
                minimised=sign * final["best_value"].astype(float),
                test_minimised=test_sign * final["test_value"].astype(float),
                optimism=sign
                * (final["test_objective"].astype(float) - final["best_value"].astype(float)),
            )
            .assign(objective=entry.config.objective)
            .pipe(_first, "task", name)
        )
        runs.append(
            result.runs.assign(minimised=sign * result.runs["best_so_far"].astype(float)).pipe(
                _first, "task", name
            )
        )
        tasks.append(result.summary.pipe(_first, "task", name))
    final = pd.concat(finals, ignore_index=True)
    run = pd.concat(runs, ignore_index=True)
    summary, test, posthoc = crosstask.summarize_suite(final, run)
    optimism = crosstask.optimism_table(final)
    budget = crosstask.ranks_over_budget(run, list(summary["contender"]))
    folder = suite_folder(prepared[0].config.out, suite)
    written = _write(
        suite,
        folder,
        prepared,
        final,
        pd.concat(tasks, ignore_index=True),
        summary,
        test,
        posthoc,
        budget,
        optimism,
    )
    return SuiteResult(folder, results, final, summary, test, posthoc, budget, written, stopped)


def _first(frame: pd.DataFrame, column: str, value: str) -> pd.DataFrame:
    frame = frame.copy()
    frame.insert(0, column, value)
    return frame


def _write(
    suite: Suite,
    folder: Path,
    prepared: list[Prepared],
    finals: pd.DataFrame,
    tasks: pd.DataFrame,
    summary: pd.DataFrame,
    test: dict[str, float],
    posthoc: pd.DataFrame,
    budget: pd.DataFrame,
    optimism: pd.DataFrame,
) -> list[Path]:
    from search.results import plots  # matplotlib loads only when plots are drawn
    from search.study.run import versions  # with Keras' version: loaded once studies ran

    paths = {
        name: folder / name
        for name in (
            "finals.csv",
            "tasks.csv",
            "summary.csv",
            "posthoc.csv",
            "budget.csv",
            "optimism.csv",
            "cd.png",
            "budget.png",
            "suite.json",
        )
    }
    write_text(paths["finals.csv"], finals.to_csv(index=False))
    write_text(paths["tasks.csv"], tasks.to_csv(index=False))
    write_text(paths["summary.csv"], summary.to_csv(index=False))
    write_text(paths["posthoc.csv"], posthoc.rename_axis("contender").to_csv())
    write_text(paths["budget.csv"], budget.to_csv(index=False))
    write_text(paths["optimism.csv"], optimism.to_csv(index=False))
    first = prepared[0].config
    label = f"suite {suite.name}: {len(prepared)} tasks x {first.seeds} seeds"
    plots.critical_difference(
        summary.set_index("contender")["mean_rank"], posthoc, paths["cd.png"], label, test
    )
    simulated = [bool(p.task.spec.table) for p in prepared]
    clock = "simulated time" if all(simulated) else "wall time"
    if any(simulated) and not all(simulated):
        clock = "time (simulated on tabular entries)"
    plots.ranks_over_budget(budget, paths["budget.png"], label, clock)
    write_json(
        paths["suite.json"],
        {
            "suite": suite.name,
            "source": suite.source,
            "entries": [
                {
                    "name": p.entry.name,
                    "task": p.config.task,
                    "space": p.config.space,
                    "objective": p.config.objective,
                    "direction": p.config.direction,
                    "settings": p.config.settings.__dict__ | {"seed": "0..seeds-1"},
                    "trainer": p.config.trainer,
                    "pruner": p.config.pruner,
                    "task_options": p.entry.task_options,
                }
                for p in prepared
            ],
            "contenders": list(first.contenders),
            "seeds": first.seeds,
            "budget": first.budget,
            "max_failures": first.max_failures,
            "tests": {
                k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in test.items()
            },
            "posthoc": "nemenyi (scikit-posthocs posthoc_nemenyi_friedman)",
            "score": "normalised: 0 the best value on the task, 1 random search's median",
            "versions": versions()
            | {name: _version(name) for name in ("scipy", "scikit-posthocs")},
        },
    )
    return list(paths.values())


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)
