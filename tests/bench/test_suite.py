"""Benchmark suites: the statistics over tasks against SciPy and scikit-posthocs, on
constructed cases, the suite files, and a tiny real suite end to end through the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scikit_posthocs
from conftest import call_cli, describe, run_cli, run_main
from scipy import stats

from search.bench import crosstask
from search.bench.crosstask import (
    BUDGET_COLUMNS,
    SUITE_COLUMNS,
    block_matrix,
    critical_difference,
    friedman,
    mean_with_interval,
    nemenyi,
    normalised_scores,
    ranks_over_budget,
    summarize_suite,
)
from search.bench.suite import builtin_suites, load_suite, parse_suite
from search.bench.suite_run import bench_suite
from search.errors import SearchError

CONTENDERS = ("optuna:tpe", "optuna:random", "keras-tuner:random")


def finals_from(values: dict[str, np.ndarray], tasks: int, seeds: int) -> pd.DataFrame:
    """A suite's finals table: ``values[contender]`` holds tasks x seeds minimised values."""
    rows = []
    for contender, table in values.items():
        for task in range(tasks):
            for seed in range(seeds):
                value = float(table[task, seed])
                rows.append(
                    {
                        "task": f"task{task}",
                        "contender": contender,
                        "seed": seed,
                        "trials": 3,
                        "best_value": value,
                        "test_value": math.nan,
                        "wall_seconds": 6.0,
                        "minimised": value,
                    }
                )
    return pd.DataFrame(rows)


def no_runs() -> pd.DataFrame:
    return pd.DataFrame(columns=["task", "contender", "seed", "state"])


# --------------------------------------------------------------------------- the libraries


@pytest.mark.parametrize(("blocks", "k", "seed"), [(12, 3, 0), (30, 5, 1), (50, 7, 2), (8, 4, 3)])
def test_friedman_equals_scipy_with_and_without_ties(blocks: int, k: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for values in (rng.normal(size=(blocks, k)), rng.integers(0, 3, size=(blocks, k))):
        matrix = pd.DataFrame(values.astype(float), columns=[f"c{i}" for i in range(k)])
        statistic, p_value = friedman(matrix)
        expected = stats.friedmanchisquare(*(matrix[c] for c in matrix.columns))
        assert statistic == pytest.approx(expected.statistic, rel=1e-12)
        assert p_value == pytest.approx(expected.pvalue, rel=1e-9)


def test_friedman_with_two_contenders_is_the_sign_tests_chi_square() -> None:
    """SciPy refuses two groups; without ties the statistic is (wins - losses)^2 / blocks."""
    rng = np.random.default_rng(4)
    matrix = pd.DataFrame(rng.normal(size=(15, 2)), columns=["a", "b"])
    wins = int((matrix["a"] < matrix["b"]).sum())
    statistic, p_value = friedman(matrix)
    assert statistic == pytest.approx((wins - (15 - wins)) ** 2 / 15)
    assert p_value == pytest.approx(stats.chi2.sf(statistic, 1))


def test_nemenyi_equals_scikit_posthocs_and_agrees_with_the_critical_difference() -> None:
    rng = np.random.default_rng(5)
    shift = np.array([0.0, 0.3, 0.6, 1.5])
    matrix = pd.DataFrame(rng.normal(size=(40, 4)) + shift, columns=["a", "b", "c", "d"])
    ours = nemenyi(matrix)
    theirs = scikit_posthocs.posthoc_nemenyi_friedman(matrix.to_numpy())
    np.testing.assert_allclose(ours.to_numpy(), theirs.to_numpy(), rtol=1e-12)
    assert list(ours.index) == list(ours.columns) == ["a", "b", "c", "d"]
    # Demšar's rule: a pair is different at 0.05 exactly when its mean ranks differ by more
    # than the critical difference.
    mean_ranks = matrix.rank(axis=1).mean()
    cd = critical_difference(4, 40)
    assert cd == pytest.approx(2.569 * math.sqrt(4 * 5 / (6 * 40)), rel=1e-3)  # his table
    for a in ours.index:
        for b in ours.columns:
            if a != b:
                apart = abs(mean_ranks[a] - mean_ranks[b]) > cd
                assert apart == (ours.loc[a, b] < 0.05), (a, b)
    assert (ours.to_numpy() < 0.05).any()  # the case separates some pair


# --------------------------------------------------------------------------- constructed cases


def test_a_contender_better_by_construction_is_significant_at_ten_seeds() -> None:
    rng = np.random.default_rng(6)
    values = {c: rng.normal(size=(2, 10)) * 10 ** np.arange(2)[:, None] for c in CONTENDERS}
    values["optuna:tpe"] = values["optuna:tpe"] - 100.0  # the best on every (task, seed)
    finals = finals_from(values, tasks=2, seeds=10)
    summary, test, posthoc = summarize_suite(finals, no_runs())
    assert list(summary.columns) == list(SUITE_COLUMNS)
    assert summary["contender"].iloc[0] == "optuna:tpe"
    assert summary["mean_rank"].iloc[0] == 1.0 and summary["wins"].iloc[0] == 20
    assert test["blocks"] == 20 and test["contenders"] == 3
    assert test["friedman_p"] < 0.001
    assert summary["significant"].tolist() == [False, True, True]  # the leader's row: no test
    assert (summary["p_nemenyi"].iloc[1:] < 0.05).all()
    assert posthoc.loc["optuna:tpe", "optuna:random"] < 0.05
    # The two others are the same by construction: not told apart.
    assert posthoc.loc["optuna:random", "keras-tuner:random"] > 0.05
    # Its normalised score is below every other's, and so is its whole interval.
    tpe = summary.iloc[0]
    assert tpe["score_high"] < summary["score_low"].iloc[1:].min()
    assert 0 < tpe["score_mean"] < 0.1 < summary["score_mean"].iloc[1:].min()


def test_equal_contenders_are_not_significant() -> None:
    # Identical values: every block is one tie.
    same = {c: np.arange(20.0).reshape(2, 10) for c in CONTENDERS}
    summary, test, _ = summarize_suite(finals_from(same, 2, 10), no_runs())
    assert (test["friedman_statistic"], test["friedman_p"]) == (0.0, 1.0)
    assert summary["mean_rank"].tolist() == [2.0, 2.0, 2.0]
    assert not summary["significant"].any()
    # Drawn from one distribution: not significant here, and rejected about as often as the
    # level says over many such suites.
    rng = np.random.default_rng(7)
    rejected = 0
    for repetition in range(200):
        values = {c: rng.normal(size=(2, 10)) for c in CONTENDERS}
        summary, test, _ = summarize_suite(finals_from(values, 2, 10), no_runs())
        if repetition == 0:
            assert test["friedman_p"] > 0.05 and not summary["significant"].any()
        rejected += test["friedman_p"] < 0.05
    assert rejected / 200 <= 0.1


def test_a_run_without_a_complete_trial_ranks_last_and_missing_runs_drop_their_block() -> None:
    values = {c: np.ones((1, 3)) for c in CONTENDERS[:2]}
    finals = finals_from(values, tasks=1, seeds=3)
    finals.loc[(finals["contender"] == "optuna:tpe") & (finals["seed"] == 0), "minimised"] = (
        math.nan
    )
    finals = finals[~((finals["contender"] == "optuna:tpe") & (finals["seed"] == 2))]
    matrix = block_matrix(finals)
    assert len(matrix) == 2  # seed 2 lacks a run of tpe
    assert matrix.loc[("task0", 0), "optuna:tpe"] == math.inf


def test_normalised_scores_put_each_task_between_its_best_and_random_search() -> None:
    finals = pd.DataFrame(
        {
            "task": ["a"] * 4 + ["b"] * 4 + ["c"] * 2,
            "contender": ["optuna:tpe", "optuna:tpe", "optuna:random", "optuna:random"] * 2
            + ["optuna:tpe", "optuna:cmaes"],
            "seed": [0, 1, 0, 1] * 2 + [0, 0],
            # task b is task a scaled by 1000 and maximised (minimised = -accuracy).
            "minimised": [1.0, 2.0, 3.0, 5.0, -1000.0, -2000.0, -3000.0, -5000.0, 1.0, 2.0],
        }
    )
    scores = normalised_scores(finals)
    # a: best 1, random median 4: (v - 1) / 3.
    assert scores[:4].tolist() == pytest.approx([0.0, 1 / 3, 2 / 3, 4 / 3])
    # b: best -5000, random median -4000: the same shape, whatever the scale and direction.
    assert scores[4:8].tolist() == pytest.approx([4.0, 3.0, 2.0, 0.0])
    assert scores[8:].isna().all()  # no random search on task c
    table = mean_with_interval(finals.iloc[:4], scores[:4])
    tpe = table.loc["optuna:tpe"]
    assert tpe["score_mean"] == pytest.approx(1 / 6)
    assert tpe["score_low"] <= tpe["score_mean"] <= tpe["score_high"]


def test_the_interval_is_scipys_bootstrap_over_seeds() -> None:
    rng = np.random.default_rng(8)
    values = {c: rng.normal(size=(2, 10)) for c in ("optuna:tpe", "optuna:random")}
    finals = finals_from(values, 2, 10)
    scores = normalised_scores(finals)
    table = mean_with_interval(finals, scores)
    per_seed = (
        finals.assign(score=scores)[finals["contender"] == "optuna:tpe"]
        .groupby("seed")["score"]
        .mean()
        .to_numpy()
    )
    expected = stats.bootstrap(
        (per_seed,),
        np.mean,
        n_resamples=crosstask.BOOTSTRAP_RESAMPLES,
        method="percentile",
        rng=np.random.default_rng(0),
    ).confidence_interval
    assert table.loc["optuna:tpe", "score_low"] == pytest.approx(expected.low)
    assert table.loc["optuna:tpe", "score_high"] == pytest.approx(expected.high)
    assert table.loc["optuna:tpe", "score_mean"] == pytest.approx(per_seed.mean())


def test_test_ranks_and_optimism_show_a_validation_win_that_test_does_not_keep() -> None:
    """Contender "lucky" wins every block on validation by over-fitting it: its selected
    trials are 1.0 worse on test than validation claimed; "honest" is what it claims."""
    rng = np.random.default_rng(0)
    honest = rng.normal(10.0, 0.1, size=(2, 10))
    finals = finals_from({"optuna:lucky": honest - 1.0, "optuna:random": honest}, 2, 10)
    lucky = finals["contender"] == "optuna:lucky"
    finals["test_objective"] = np.where(lucky, finals["best_value"] + 1.5, finals["best_value"])
    finals["test_minimised"] = finals["test_objective"]
    finals["optimism"] = finals["test_objective"] - finals["best_value"]
    summary, test, _ = summarize_suite(finals, no_runs())
    rows = summary.set_index("contender")
    assert rows.loc["optuna:lucky", "mean_rank"] == 1.0
    assert rows.loc["optuna:lucky", "test_mean_rank"] == 2.0  # worse on test in every block
    assert test["test_friedman_p"] < 0.01
    table = crosstask.optimism_table(finals).set_index(["task", "contender"])
    assert table.loc[("task0", "optuna:lucky"), "optimism"] == pytest.approx(1.5)
    assert table.loc[("task0", "optuna:random"), "optimism"] == pytest.approx(0.0)
    # Normalised by the task's spread: random search's median minus the best value (~1).
    spread = crosstask.task_spreads(finals)["task0"]
    assert table.loc[("task0", "optuna:lucky"), "optimism_normalised"] == pytest.approx(
        1.5 / spread
    )
    assert rows.loc["optuna:lucky", "optimism"] == pytest.approx(
        table.xs("optuna:lucky", level="contender")["optimism_normalised"].mean()
    )


def test_ranks_over_the_budget_show_good_early_and_good_at_the_end() -> None:
    """``early`` finds 5 at its first trial and stays there; ``late`` starts at 9 and reaches
    1 at its tenth trial, and takes twice as long per trial."""
    rows = []
    for task in ("a", "b"):
        for seed in range(3):
            for trial in range(1, 11):
                rows.append(("early", task, seed, trial, 1.0 * trial, 5.0))
                late = 9.0 if trial < 10 else 1.0
                rows.append(("late", task, seed, trial, 2.0 * trial, late))
    runs = pd.DataFrame(
        rows, columns=["contender", "task", "seed", "trial", "elapsed", "minimised"]
    )
    table = ranks_over_budget(runs, ["early", "late"])
    assert list(table.columns) == list(BUDGET_COLUMNS)
    rank = table.set_index(["axis", "fraction", "contender"])["mean_rank"]
    for axis in ("trials", "seconds"):
        for fraction in (0.1, 0.25, 0.5):
            assert rank[(axis, fraction, "early")] == 1.0
        assert rank[(axis, 1.0, "late")] == 1.0
    assert (table["blocks"] == 6).all()
    # At 10% of the wall time (2 s) late has finished one trial: ranked, not missing.
    assert rank[("seconds", 0.1, "late")] == 2.0


# --------------------------------------------------------------------------- suite files


def test_the_builtin_suite_small_has_five_real_tasks_with_the_mlp_space() -> None:
    assert "small" in builtin_suites()
    suite = load_suite("small")
    tasks = [entry.task for entry in suite.entries]
    assert len(set(tasks)) >= 5
    assert not {"logistic", "mlp", "linear"} & set(tasks)
    assert "friedman1" in tasks
    assert all(entry.space == "mlp" for entry in suite.entries)
    assert all(entry.options.get("trainer", "numpy") == "numpy" for entry in suite.entries)


def test_list_names_the_builtin_suites(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_main(["list"]) == 0
    out = capsys.readouterr().out
    assert "suites (bench --suite NAME):" in out
    assert "small" in out and "friedman1-mlp" in out and "digits-mlp" in out


def test_a_suite_file_merges_settings_and_resolves_paths(tmp_path: Path) -> None:
    text = """
[settings]
epochs = 7
cv = 1

[[entry]]
task = "wine"
space = "mlp"
epochs = 3

[[entry]]
task = "csv"
space = "spaces/wide.py"
data = "data/houses.csv"
target = "price"
name = "houses"
"""
    suite = parse_suite(text, "mine", "mine.toml", tmp_path)
    wine, houses = suite.entries
    assert (wine.name, wine.options) == ("wine-mlp", {"epochs": 3, "cv": 1})
    assert houses.name == "houses" and houses.options == {"epochs": 7, "cv": 1}
    assert houses.space == str(tmp_path / "spaces/wide.py")
    assert houses.task_options == {"data": str(tmp_path / "data/houses.csv"), "target": "price"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[entry]]\ntask = 'wine'\nspace = 'mlp'\nepoch = 3\n", "unknown key 'epoch'"),
        ("[[entry]]\ntask = 'wine'\n", "needs space"),
        (
            "[settings]\nepochs = 'many'\n[[entry]]\ntask='wine'\nspace='mlp'\n",
            "epochs must be int",
        ),
        (
            "[[entry]]\ntask='wine'\nspace='mlp'\n[[entry]]\ntask='wine'\nspace='mlp'\n",
            "two entries",
        ),
        ("[settings]\nepochs = 3\n", r"no \[\[entry\]\]"),
        ("[[entry]\n", "not valid TOML"),
        ("seeds = 3\n[[entry]]\ntask='wine'\nspace='mlp'\n", "unknown key 'seeds'"),
    ],
)
def test_a_bad_suite_file_is_refused_with_one_line(text: str, message: str) -> None:
    with pytest.raises(SearchError, match=message) as error:
        parse_suite(text, "bad", "bad.toml", Path("."))
    assert "\n" not in str(error.value)


def test_bench_refuses_bad_suite_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = [
        (["bench", "--suite", str(tmp_path / "none.toml")], "no suite"),
        (["bench", "--suite", "small", "boston"], "leave out TASK and --space"),
        (["bench"], "bench needs a TASK (with --space) or --suite FILE"),
        (["bench", "boston"], "bench TASK needs --space"),
        (["bench", "--suite", "small", "--contenders", "optuna:nope"], "unknown contender"),
        (["bench", "--suite", "small", "--data", "x.csv"], "from its csv entries"),
    ]
    for args, message in cases:
        assert run_main([*args, "--out", tmp_path / "out"]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()  # nothing half-written
    with pytest.raises(SystemExit) as exit_code:
        run_main(["bench", "--suite", "small", "--jobs", "0"])
    assert exit_code.value.code == 2


# --------------------------------------------------------------------------- end to end


def test_a_suite_runs_from_python(tmp_path: Path) -> None:
    """The API's suite: one task, two contenders, two seeds, two trials, in this process."""
    suite = parse_suite(
        "[settings]\nepochs = 2\ncv = 1\n[[entry]]\ntask = 'wine'\nspace = 'logistic'\n",
        "api",
        "api.toml",
        tmp_path,
    )
    with pytest.raises(SearchError, match="jobs must be a positive integer"):
        bench_suite(suite, "optuna:random,optuna:tpe", jobs=0, out=tmp_path)
    result = bench_suite(
        suite, "optuna:random,optuna:tpe", seeds=2, trials=2, tensorboard=False, out=tmp_path
    )
    assert result.folder == tmp_path / "bench" / "suite-api"
    assert sorted(result.summary["contender"]) == ["optuna:random", "optuna:tpe"]
    assert len(result.finals) == 4 and (result.finals["trials"] == 2).all()
    assert result.test["blocks"] == 2
    assert set(result.budget["axis"]) == {"trials", "seconds"}
    assert all(path.exists() for path in result.written)


TINY_SUITE = """
[settings]
epochs = 2
cv = 1

[[entry]]
task = "wine"
space = "mlp"

[[entry]]
task = "friedman1"
space = "mlp"
"""


@pytest.mark.slow
def test_a_tiny_suite_writes_every_table_and_plot_and_resumes(tmp_path: Path) -> None:
    """2 tasks x 2 contenders x 3 seeds: first 2 trials per run in two job processes (the
    command as a real process: ``bench``'s end-to-end run), then the same command with 3
    trials resumes every study (in this process) to its third trial."""
    suite_file = tmp_path / "tiny.toml"
    suite_file.write_text(TINY_SUITE)
    args = ["bench", "--suite", suite_file, "--contenders", "optuna:random,optuna:tpe"]
    args += ["--seeds", "3", "--no-tensorboard", "--out", tmp_path / "out"]
    first = run_cli([*args, "--trials", "2", "--jobs", "2"])
    assert first.returncode == 0, describe(first)
    assert "[12/12]" in first.stderr  # a line per finished study
    folder = tmp_path / "out" / "bench" / "suite-tiny"
    before = pd.read_csv(folder / "wine-mlp" / "runs.csv")
    assert len(before) == 2 * 3 * 2

    proc = call_cli([*args, "--trials", "3"])
    assert proc.returncode == 0, describe(proc)
    runs = pd.read_csv(folder / "wine-mlp" / "runs.csv")
    assert len(runs) == 2 * 3 * 3
    # Resumed, not run again: the first two trials of every run are the same trials.
    kept = runs[runs["trial"] <= 2].reset_index(drop=True)
    assert np.allclose(kept["value"], before["value"], equal_nan=True)

    finals = pd.read_csv(folder / "finals.csv")
    assert len(finals) == 2 * 2 * 3 and sorted(finals["task"].unique()) == [
        "friedman1-mlp",
        "wine-mlp",
    ]
    assert (finals["trials"] == 3).all()
    assert (finals["minimised"] == finals["best_value"]).all()  # both entries minimise
    tasks = pd.read_csv(folder / "tasks.csv")
    assert len(tasks) == 2 * 2 and tasks.columns[0] == "task"
    summary = pd.read_csv(folder / "summary.csv")
    assert list(summary.columns) == list(SUITE_COLUMNS)
    assert sorted(summary["contender"]) == ["optuna:random", "optuna:tpe"]
    assert summary["runs"].tolist() == [6, 6] and summary["tasks"].tolist() == [2, 2]
    assert summary["mean_rank"].is_monotonic_increasing
    assert summary["mean_rank"].sum() == pytest.approx(3.0)  # ranks 1 and 2 in each block
    assert summary["test_mean_rank"].sum() == pytest.approx(3.0)  # the same blocks, by test
    optimism = pd.read_csv(folder / "optimism.csv")
    assert len(optimism) == 2 * 2
    # Both objectives are minimised losses: the optimism is test minus validation.
    gap = (finals["test_objective"] - finals["best_value"]).groupby(
        [finals["task"], finals["contender"]]
    )
    by_pair = optimism.set_index(["task", "contender"])["optimism"]
    assert np.allclose(by_pair.sort_index(), gap.mean().sort_index())
    # The table is the statistics of its own finals.
    expected, test, _ = summarize_suite(finals, runs)
    assert summary["mean_rank"].tolist() == pytest.approx(expected["mean_rank"].tolist())
    posthoc = pd.read_csv(folder / "posthoc.csv", index_col=0)
    assert np.allclose(posthoc.to_numpy(), posthoc.to_numpy().T)
    budget = pd.read_csv(folder / "budget.csv")
    assert list(budget.columns) == list(BUDGET_COLUMNS) and len(budget) == 2 * 4 * 2
    for name in ("cd.png", "budget.png"):
        assert (folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((folder / "suite.json").read_text())
    assert report["tests"]["blocks"] == 6
    assert report["tests"]["friedman_p"] == pytest.approx(test["friedman_p"])
    assert [e["name"] for e in report["entries"]] == ["wine-mlp", "friedman1-mlp"]
    assert "scikit-posthocs" in report["versions"]
    # Every (entry, contender, seed) is an ordinary study, trained by the default trainer.
    for entry in ("wine-mlp", "friedman1-mlp"):
        for name in ("runs.csv", "finals.csv", "summary.csv", "curves.png", "test.png"):
            assert (folder / entry / name).exists()
        task = entry.removesuffix("-mlp")
        studies = sorted(p.name for p in (folder / entry / "studies" / task).iterdir())
        assert studies == [f"optuna-{a}-seed{s}" for a in ("random", "tpe") for s in range(3)]
        config = json.loads(
            (folder / entry / "studies" / task / studies[0] / "study.json").read_text()
        )
        assert config["config"]["trainer"] == "numpy"
        assert config["config"]["epochs"] == 2
        table = pd.read_csv(folder / entry / "studies" / "leaderboard.csv")
        assert len(table) == 6  # rebuilt after the parallel run: every study has its row
    assert "Friedman test" in proc.stdout and "optuna:tpe" in proc.stdout
