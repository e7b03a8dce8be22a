"""Benchmark mode: the statistics on constructed runs, and a tiny real benchmark end to end."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import call_cli, describe, run_main

from search.bench import compare as bench
from search.bench.execute import TIMELINE
from search.bench.stats import (
    SIGNIFICANCE_COLUMNS,
    SUMMARY_COLUMNS,
    best_so_far,
    compare,
    holm,
    significance,
    summarize,
)
from search.engines import TrialRecord
from search.errors import SearchError

SEEDS = range(5)
BASELINE = 20.0


def constructed() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Three contenders on five seeds; ``keras-tuner:worse`` is worse on every seed.

    Per seed s, with three trials each: tpe reaches 10 + s, random 15 + 2s, worse 100 + 3s
    (so the paired differences have no ties). The test values are 20 + s, 30 + s and 60 + s:
    random's median is 32, the baseline 20.
    """
    finals_rows = []
    frames = []
    plan = {
        "optuna:tpe": (10, 1, 20),
        "optuna:random": (15, 2, 30),
        "keras-tuner:worse": (100, 3, 60),
    }
    for contender, (start, slope, test) in plan.items():
        for seed in SEEDS:
            best = start + slope * seed - seed  # plus the seed below
            records = [
                TrialRecord(0, "complete", value=200.0, seconds=2.0),
                TrialRecord(1, "failed", seconds=1.0),
                TrialRecord(2, "complete", value=float(best + seed), seconds=2.0),
            ]
            frame = bench.run_table(records, {"0": 2.5}, "min")
            frame.insert(0, "seed", seed)
            frame.insert(0, "contender", contender)
            frames.append(frame)
            finals_rows.append(
                {
                    "contender": contender,
                    "seed": seed,
                    "trials": 3,
                    "best_value": float(best + seed),
                    "test_value": float(test + seed),
                    "wall_seconds": 60.0,
                }
            )
    return pd.concat(frames, ignore_index=True), pd.DataFrame(finals_rows)


def test_run_table_elapsed_best_so_far_and_states() -> None:
    runs, _ = constructed()
    one = runs[(runs["contender"] == "optuna:tpe") & (runs["seed"] == 1)]
    assert list(one.columns) == list(bench.RUN_COLUMNS)
    assert list(one["trial"]) == [1, 2, 3]
    # Trial 0's end was recorded; the others add their own seconds after the previous one.
    assert list(one["elapsed"]) == [2.5, 3.5, 5.5]
    assert list(one["state"]) == ["complete", "failed", "complete"]
    assert math.isnan(one["value"].iloc[1])
    assert list(one["best_so_far"]) == [200.0, 200.0, 11.0]


def test_best_so_far_before_the_first_complete_trial_and_when_maximised() -> None:
    values = pd.Series([math.nan, 0.5, 0.4, 0.7])
    assert best_so_far(values, "max").tolist()[1:] == [0.5, 0.5, 0.7]
    assert math.isnan(best_so_far(values, "max").iloc[0])
    assert best_so_far(values, "min").tolist()[1:] == [0.5, 0.4, 0.4]


def test_statistics_on_a_constructed_case() -> None:
    runs, finals = constructed()
    summary = summarize(runs, finals, "min", BASELINE).set_index("contender")
    assert list(summary.reset_index().columns) == list(SUMMARY_COLUMNS)
    # Best mean rank first; the contender that is worse by construction ranks last.
    assert list(summary.index) == ["optuna:tpe", "optuna:random", "keras-tuner:worse"]
    assert summary["mean_rank"].tolist() == [1.0, 2.0, 3.0]
    assert summary["wins"].tolist() == [5, 0, 0]
    assert summary["failed"].tolist() == [1.0, 1.0, 1.0]  # failed trials per run
    tpe = summary.loc["optuna:tpe"]
    assert tpe["best_mean"] == 12.0 and tpe["best_median"] == 12.0
    assert tpe["best_sd"] == pytest.approx(np.std([10, 11, 12, 13, 14], ddof=1))
    assert tpe["best_iqr"] == 2.0
    assert tpe["test_mean"] == 22.0
    assert tpe["trials_per_minute"] == 3.0
    # The area under best-so-far: the mean over its three trials, then over the seeds.
    assert tpe["auc"] == pytest.approx(np.mean([(200 + 200 + 10 + s) / 3 for s in SEEDS]))
    # Regret: 0 at the baseline (20), 1 at random search's median test value (32).
    assert summary.loc["optuna:random", "regret"] == pytest.approx(1.0)
    assert tpe["regret"] == pytest.approx(2 / 12)
    assert summary.loc["keras-tuner:worse", "regret"] == pytest.approx(42 / 12)
    assert summary["regret"].is_monotonic_increasing


def test_significance_is_paired_and_holm_corrected() -> None:
    _, finals = constructed()
    table = significance(finals, "min").set_index("contender")
    assert list(table.reset_index().columns) == list(SIGNIFICANCE_COLUMNS)
    assert table.loc["optuna:tpe", "test"] == "best"
    for other in ("optuna:random", "keras-tuner:worse"):
        assert table.loc[other, "versus"] == "optuna:tpe"
        assert table.loc[other, "test"] == "wilcoxon"
        # Five paired seeds, all differences of one sign: the exact two-sided p is 2/2^5.
        assert table.loc[other, "p_value"] == pytest.approx(2 / 32)
        # Holm over two comparisons with equal p: the smaller is doubled, the next kept
        # at least as large.
        assert table.loc[other, "p_holm"] == pytest.approx(4 / 32)
        assert not table.loc[other, "significant"]


def test_unpaired_seeds_use_mann_whitney() -> None:
    best = pd.Series([1.0, 2.0, 3.0], index=[0, 1, 2])
    other = pd.Series([4.0, 5.0, 6.0, 7.0], index=[0, 1, 2, 3])
    test, p_value = compare(best, other)
    assert test == "mannwhitney"
    assert p_value == pytest.approx(2 / 35)  # exact: the best of C(7, 3) orderings, twice
    assert compare(best, best) == ("wilcoxon", 1.0)


def test_holm() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_contenders_are_validated() -> None:
    assert bench.parse_contenders("optuna:tpe, keras-tuner:random") == (
        "optuna:tpe",
        "keras-tuner:random",
    )
    with pytest.raises(SearchError, match="unknown contender 'optuna:hyperband'"):
        bench.parse_contenders("optuna:hyperband")
    with pytest.raises(SearchError, match="twice"):
        bench.parse_contenders("optuna:tpe,optuna:tpe")


def test_gp_without_torch_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    with pytest.raises(SearchError, match=r"optuna:gp needs PyTorch: pip install '\.\[gp\]'"):
        bench.parse_contenders("optuna:tpe,optuna:gp")
    # The default contenders leave it out rather than fail without the extra.
    assert "optuna:gp" not in bench.parse_contenders(None)
    assert "optuna:tpe" in bench.parse_contenders(None)


def test_a_spent_time_budget_starts_no_trial(tmp_path: Path) -> None:
    """Both engines check the deadline before asking for a trial: a budget spent before the
    first trial leaves every run empty, and the benchmark still writes its files."""
    args = ["bench", "boston", "--space", "linear", "--contenders", "optuna:tpe,keras-tuner:random"]
    args += ["--seeds", "1", "--time-budget", "1e-9", "--epochs", "2", "--cv", "1"]
    assert run_main([*args, "--no-tensorboard", "--out", tmp_path]) == 0
    folder = tmp_path / "bench" / "boston-linear"
    assert pd.read_csv(folder / "runs.csv").empty
    summary = pd.read_csv(folder / "summary.csv")
    assert sorted(summary["contender"]) == ["keras-tuner:random", "optuna:tpe"]
    assert summary["trials"].tolist() == [0, 0]
    timeline = folder / "studies" / "boston" / "optuna-tpe-seed0" / TIMELINE
    assert '"time_budget": 1e-09' in timeline.read_text()


def test_population_based_training_is_a_contender(tmp_path: Path) -> None:
    """``optuna:pbt`` runs as a contender: its --trials members are one population."""
    args = ["bench", "boston", "--space", "mlp", "--contenders", "optuna:pbt,optuna:random"]
    args += ["--seeds", "1", "--trials", "4", "--epochs", "4", "--cv", "1"]
    assert run_main([*args, "--no-tensorboard", "--out", tmp_path]) == 0
    folder = tmp_path / "bench" / "boston-mlp"
    summary = pd.read_csv(folder / "summary.csv").set_index("contender")
    assert summary.loc["optuna:pbt", "trials"] == 4
    schedule = folder / "studies" / "boston" / "optuna-pbt-seed0" / "pbt.csv"
    assert len(pd.read_csv(schedule)) == 4 * 4  # a tenth of 4 epochs: an interval of 1


TINY = ["--seeds", "2", "--trials", "3", "--epochs", "2", "--cv", "1", "--no-tensorboard"]
CONTENDERS = ["--contenders", "optuna:random,keras-tuner:random"]


@pytest.mark.slow
def test_tiny_benchmark_writes_every_file_and_resumes(tmp_path: Path) -> None:
    args = ["bench", "boston", "--space", "mlp", *CONTENDERS, *TINY, "--out", tmp_path]
    proc = call_cli(args)
    assert proc.returncode == 0, describe(proc)
    folder = tmp_path / "bench" / "boston-mlp"

    runs = pd.read_csv(folder / "runs.csv")
    assert list(runs.columns) == list(bench.RUN_COLUMNS)
    assert len(runs) == 2 * 2 * 3
    for (contender, seed), run in runs.groupby(["contender", "seed"]):
        assert contender in ("optuna:random", "keras-tuner:random") and seed in (0, 1)
        assert list(run["trial"]) == [1, 2, 3]
        assert run["elapsed"].is_monotonic_increasing and (run["elapsed"] > 0).all()
        complete = run["value"].where(run["state"] == "complete")
        assert np.allclose(run["best_so_far"], complete.cummin().ffill(), equal_nan=True)

    summary = pd.read_csv(folder / "summary.csv")
    assert list(summary.columns) == [*SUMMARY_COLUMNS, *SIGNIFICANCE_COLUMNS[1:]]
    assert sorted(summary["contender"]) == ["keras-tuner:random", "optuna:random"]
    assert summary["runs"].tolist() == [2, 2]
    assert sorted(summary["mean_rank"]) in ([1.0, 2.0], [1.5, 1.5])
    assert summary["wins"].sum() >= 2
    assert summary["test_mean"].notna().all() and summary["regret"].notna().all()
    assert summary["test"].tolist()[0] == "best"
    assert summary["test"].tolist()[1] == "wilcoxon"

    finals = pd.read_csv(folder / "finals.csv")
    assert len(finals) == 4
    best = runs.groupby(["contender", "seed"])["best_so_far"].last()
    for _, row in finals.iterrows():
        assert row["best_value"] == pytest.approx(best[(row["contender"], row["seed"])])

    for name in ("curves.png", "test.png"):
        assert (folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert '"trials": 3' in (folder / "bench.json").read_text()
    studies = sorted(p.name for p in (folder / "studies" / "boston").iterdir())
    assert studies == [
        "keras-tuner-random-seed0",
        "keras-tuner-random-seed1",
        "optuna-random-seed0",
        "optuna-random-seed1",
    ]
    assert "optuna:random" in proc.stdout and "mean_rank" in proc.stdout

    # The same command again resumes: every run is finished, so nothing runs again and
    # the tables are rebuilt from the same trials.
    again = call_cli(args)
    assert again.returncode == 0, describe(again)
    assert pd.read_csv(folder / "runs.csv").equals(runs)
    assert "trial/s" not in again.stderr and "s/trial" not in again.stderr


def test_regret_keeps_its_orientation_when_random_search_beats_the_baseline() -> None:
    """Boston's MLP searches beat the normal equation: random search's median then sits at
    regret -1, and a worse test value still means a higher regret."""
    runs, finals = constructed()
    summary = summarize(runs, finals, "min", 40.0).set_index("contender")
    assert summary.loc["optuna:random", "regret"] == pytest.approx(-1.0)  # (32 - 40) / 8
    assert summary.loc["optuna:tpe", "regret"] == pytest.approx(-18 / 8)
    assert summary.loc["keras-tuner:worse", "regret"] == pytest.approx(22 / 8)
    # A maximised test metric (accuracy): lower is worse.
    accuracy = finals.assign(test_value=1 - finals["test_value"] / 100)
    table = summarize(runs, accuracy, "min", 0.8, test_direction="max").set_index("contender")
    assert table["regret"].is_monotonic_increasing  # tpe, random, worse


def test_identical_contenders_tie_and_the_leader_is_the_first_row() -> None:
    runs, finals = constructed()
    twin = finals[finals["contender"] == "optuna:tpe"].assign(contender="keras-tuner:twin")
    finals = pd.concat([finals, twin], ignore_index=True)
    summary = summarize(runs, finals, "min", BASELINE)
    table = significance(finals, "min").set_index("contender")
    # Tied on rank and median: the name decides, in the summary and the tests alike.
    assert summary["contender"].tolist()[:2] == ["keras-tuner:twin", "optuna:tpe"]
    assert summary["mean_rank"].tolist()[:2] == [1.5, 1.5]
    assert summary["wins"].tolist()[:2] == [5, 5]
    assert table.loc["keras-tuner:twin", "test"] == "best"
    assert table.loc["optuna:tpe", "p_value"] == 1.0
