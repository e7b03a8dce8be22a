"""A suite's statistics over tasks: pure functions of the suite's finals and runs tables.

``finals`` has one row per run: ``task``, ``contender``, ``seed`` and ``minimised``, the
run's final best validation value turned so that lower is better (tasks may differ in
direction as in scale). ``runs`` has one row per trial: ``task``, ``contender``, ``seed``,
``trial``, ``elapsed`` and ``minimised`` (its best so far, turned the same way).

Contenders are compared in blocks, one per (task, seed): a block ranks the contenders' runs
(1 is the best, ties share their mean rank, a run without a complete trial ranks last).
Ranks need no common scale, so the Friedman test and the Nemenyi post-hoc test (Demšar,
2006) can pool tasks whose values differ by orders of magnitude. The normalised score puts
every task on one scale so values can be averaged too (Bayesmark's normalisation): 0 is the
best value any run reached on the task, 1 the median final value of random search there.

Validation is what the search saw; test is what it got. When ``finals`` also has
``test_minimised`` (the selected trial's test value, turned as ``minimised``) the same
blocks rank the contenders by test too, and with ``optimism`` (the selected trial's test
value of the objective's own metric minus its validation value, turned so that a positive
optimism is a validation that promised more than test gave) each contender's mean optimism
is reported in the task's units and normalised as the score is.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

ALPHA = 0.05
BUDGET_FRACTIONS = (0.1, 0.25, 0.5, 1.0)
BOOTSTRAP_RESAMPLES = 9999
SUITE_COLUMNS = (
    "contender",
    "tasks",
    "runs",
    "mean_rank",
    "test_mean_rank",
    "wins",
    "score_mean",
    "score_low",
    "score_high",
    "optimism",
    "versus",
    "p_nemenyi",
    "significant",
    "trials",
    "failed",
    "wall_seconds",
    "trials_per_minute",
)
BUDGET_COLUMNS = ("axis", "fraction", "contender", "mean_rank", "blocks")
OPTIMISM_COLUMNS = (
    "task",
    "contender",
    "runs",
    "validation_mean",
    "test_mean",
    "optimism",
    "optimism_normalised",
)


def block_matrix(finals: pd.DataFrame) -> pd.DataFrame:
    """(task, seed) blocks x contenders: the minimised final values, +inf for a run without
    a complete trial (it ranks last). Blocks that miss a contender's run are left out."""
    values = finals.assign(minimised=finals["minimised"].astype(float).fillna(math.inf))
    table = values.pivot(index=["task", "seed"], columns="contender", values="minimised")
    return table.dropna(axis=0, how="any")


def block_ranks(matrix: pd.DataFrame) -> pd.DataFrame:
    """Each block's ranks: 1 is the lowest value, ties share the mean of their ranks."""
    return matrix.rank(axis=1, method="average")


def friedman(matrix: pd.DataFrame) -> tuple[float, float]:
    """Friedman's chi-square statistic over the blocks (rows) and its p-value.

    The statistic is corrected for ties as :func:`scipy.stats.friedmanchisquare` corrects
    it (and equals it wherever that is defined), but two contenders are allowed as well:
    there it is the sign test's chi-square. When every block is one tie, nothing tells the
    contenders apart: the statistic is 0 and p is 1.
    """
    n, k = matrix.shape
    if n == 0 or k < 2:
        return math.nan, math.nan
    ranks = block_ranks(matrix).to_numpy()
    sums = ranks.sum(axis=0)
    ties = 0.0
    for row in ranks:
        _, counts = np.unique(row, return_counts=True)
        ties += float((counts**3 - counts).sum())
    correction = 1.0 - ties / (k * (k * k - 1) * n)
    if correction <= 0:
        return 0.0, 1.0
    statistic = (12.0 / (k * n * (k + 1)) * float((sums**2).sum()) - 3.0 * n * (k + 1)) / correction
    statistic = max(statistic, 0.0)  # rounding can leave -1e-15 where all ranks are equal
    return float(statistic), float(stats.chi2.sf(statistic, k - 1))


def nemenyi(matrix: pd.DataFrame) -> pd.DataFrame:
    """Contenders x contenders: the Nemenyi post-hoc p-values of the Friedman test, from
    scikit-posthocs (``posthoc_nemenyi_friedman``), 1 on the diagonal."""
    import scikit_posthocs  # loaded with the first suite's statistics: it imports statsmodels

    contenders = list(matrix.columns)
    if len(matrix) == 0 or len(contenders) < 2:
        return pd.DataFrame(1.0, index=contenders, columns=contenders)
    table = scikit_posthocs.posthoc_nemenyi_friedman(block_ranks(matrix).reset_index(drop=True))
    return table.reindex(index=contenders, columns=contenders).astype(float)


def critical_difference(contenders: int, blocks: int, alpha: float = ALPHA) -> float:
    """Nemenyi's critical difference of mean ranks: two contenders whose mean ranks differ
    by more are different at level ``alpha`` (Demšar 2006, eq. 6)."""
    if contenders < 2 or blocks < 1:
        return math.nan
    q = stats.studentized_range.ppf(1 - alpha, contenders, np.inf) / math.sqrt(2)
    return float(q * math.sqrt(contenders * (contenders + 1) / (6.0 * blocks)))


def normalised_scores(finals: pd.DataFrame) -> pd.Series:
    """Each run's normalised score on its task: (value - best) / (random - best), where
    best is the lowest minimised value of any run on the task and random the median of the
    random-search runs there (any engine's ``random``). 0 is the best seen, 1 as good as
    random search's median, higher is worse. NaN on a task without random search, where
    random search found the best value, and for a run without a complete trial."""
    scores = pd.Series(math.nan, index=finals.index, dtype=float)
    for _, group in finals.groupby("task", sort=False):
        values = group["minimised"].astype(float)
        finite = values[np.isfinite(values)]
        random = finite[group.loc[finite.index, "contender"].str.endswith(":random")]
        if finite.empty or random.empty:
            continue
        best, reference = float(finite.min()), float(random.median())
        if reference > best:
            scores.loc[finite.index] = (finite - best) / (reference - best)
    return scores


def task_spreads(finals: pd.DataFrame) -> dict[str, float]:
    """Each task's scale of the normalised score: random search's median minimised value
    minus the best of any run (NaN where it is not positive or there is no random search)."""
    spreads = {}
    for task, group in finals.groupby("task", sort=False):
        values = group["minimised"].astype(float)
        finite = values[np.isfinite(values)]
        random = finite[group.loc[finite.index, "contender"].str.endswith(":random")]
        spread = float(random.median() - finite.min()) if len(random) else math.nan
        spreads[str(task)] = spread if spread > 0 else math.nan
    return spreads


def test_ranks(finals: pd.DataFrame) -> tuple[pd.Series, float, float]:
    """Each contender's mean rank by its selected trial's test value, in the blocks the
    validation ranks use, and the Friedman test (statistic, p) of those ranks; NaN without
    a ``test_minimised`` column."""
    if "test_minimised" not in finals:
        return pd.Series(dtype=float), math.nan, math.nan
    matrix = block_matrix(finals.assign(minimised=finals["test_minimised"]))
    statistic, p_value = friedman(matrix)
    return block_ranks(matrix).mean(axis=0), statistic, p_value


def optimism_table(finals: pd.DataFrame) -> pd.DataFrame:
    """Per task and contender (columns :data:`OPTIMISM_COLUMNS`): the mean validation value
    of the selected trials, their mean test value of the same metric, the mean optimism in
    the task's units and normalised by :func:`task_spreads`. Empty without ``optimism``."""
    if "optimism" not in finals:
        return pd.DataFrame(columns=list(OPTIMISM_COLUMNS))
    spreads = task_spreads(finals)
    rows = []
    for (task, contender), group in finals.groupby(["task", "contender"], sort=False):
        optimism = group["optimism"].astype(float).mean()
        rows.append(
            {
                "task": task,
                "contender": contender,
                "runs": len(group),
                "validation_mean": group["best_value"].astype(float).mean(),
                "test_mean": group["test_objective"].astype(float).mean(),
                "optimism": optimism,
                "optimism_normalised": optimism / spreads[str(task)],
            }
        )
    return pd.DataFrame(rows, columns=list(OPTIMISM_COLUMNS))


def mean_with_interval(
    finals: pd.DataFrame, scores: pd.Series, confidence: float = 0.95
) -> pd.DataFrame:
    """Per contender: its normalised score averaged over tasks (the mean over tasks of each
    task's mean over seeds), with a bootstrap interval (scipy.stats.bootstrap, percentile,
    fixed seed) that resamples the seeds. Columns ``score_mean``, ``score_low``,
    ``score_high``; the interval is NaN with fewer than two seeds."""
    frame = finals.assign(score=scores.to_numpy())
    rows = {}
    for contender, group in frame.groupby("contender", sort=False):
        # One value per seed: its score averaged over the tasks, so resampling seeds keeps
        # every task in every resample.
        table = group.pivot_table(index="seed", columns="task", values="score")
        per_seed = table.mean(axis=1).dropna().to_numpy()
        mean = float(group.groupby("task")["score"].mean().mean())
        low = high = math.nan
        if len(per_seed) >= 2 and np.ptp(per_seed) > 0:
            result = stats.bootstrap(
                (per_seed,),
                np.mean,
                confidence_level=confidence,
                n_resamples=BOOTSTRAP_RESAMPLES,
                method="percentile",
                rng=np.random.default_rng(0),
            )
            low, high = (
                float(result.confidence_interval.low),
                float(result.confidence_interval.high),
            )
        elif len(per_seed) >= 2:
            low = high = float(per_seed[0])
        rows[contender] = {"score_mean": mean, "score_low": low, "score_high": high}
    return pd.DataFrame.from_dict(rows, orient="index")


def summarize_suite(
    finals: pd.DataFrame, runs: pd.DataFrame, alpha: float = ALPHA
) -> tuple[pd.DataFrame, dict[str, float], pd.DataFrame]:
    """The suite's summary (columns :data:`SUITE_COLUMNS`, best mean rank first), its
    Friedman test with the critical difference, and the Nemenyi p-values.

    ``finals`` also needs ``trials`` and ``wall_seconds``; ``runs`` ``state``.
    """
    matrix = block_matrix(finals)
    ranks = block_ranks(matrix)
    mean_rank = ranks.mean(axis=0)
    wins = ranks.eq(ranks.min(axis=1), axis=0).sum(axis=0)
    order = sorted(mean_rank.index, key=lambda c: (mean_rank[c], str(c)))
    statistic, p_value = friedman(matrix)
    p_values = nemenyi(matrix)
    scores = mean_with_interval(finals, normalised_scores(finals))
    test_rank, test_statistic, test_p = test_ranks(finals)
    optimism = optimism_table(finals).groupby("contender")["optimism_normalised"].mean()
    failed = runs[runs["state"] == "failed"].groupby("contender").size()
    leader = order[0] if order else None
    rows = []
    for contender in order:
        group = finals[finals["contender"] == contender]
        wall = group["wall_seconds"].astype(float)
        trials = group["trials"].astype(float)
        p = (
            math.nan
            if contender == leader
            else float(
                p_values.to_numpy()[
                    p_values.index.get_loc(leader), p_values.columns.get_loc(contender)
                ]
            )
        )
        rows.append(
            {
                "contender": contender,
                "tasks": group["task"].nunique(),
                "runs": len(group),
                "mean_rank": float(mean_rank[contender]),
                "test_mean_rank": float(test_rank.get(contender, math.nan)),
                "wins": int(wins[contender]),
                **scores.loc[contender].to_dict(),
                "optimism": float(optimism.get(contender, math.nan)),
                "versus": "" if contender == leader else leader,
                "p_nemenyi": p,
                "significant": bool(p < alpha) if not math.isnan(p) else False,
                "trials": trials.mean(),
                "failed": float(failed.get(contender, 0)) / len(group),
                "wall_seconds": wall.mean(),
                "trials_per_minute": 60 * trials.sum() / wall.sum() if wall.sum() else math.nan,
            }
        )
    test = {
        "blocks": len(matrix),
        "contenders": matrix.shape[1],
        "friedman_statistic": statistic,
        "friedman_p": p_value,
        "critical_difference": critical_difference(matrix.shape[1], len(matrix), alpha),
        "alpha": alpha,
        "test_friedman_statistic": test_statistic,
        "test_friedman_p": test_p,
    }
    return pd.DataFrame(rows, columns=list(SUITE_COLUMNS)), test, p_values.loc[order, order]


def ranks_over_budget(
    runs: pd.DataFrame, contenders: list[str], fractions: tuple[float, ...] = BUDGET_FRACTIONS
) -> pd.DataFrame:
    """Mean rank of each contender after a fraction of the budget (columns
    :data:`BUDGET_COLUMNS`), on two axes: ``trials``, after the first ceil(f N) trials of
    each run (N: the most trials a run of the task had), and ``seconds``, at f times the
    longest run's wall time on the task (the best value of the trials that had ended by
    then). Ranked in (task, seed) blocks as the final ranks are; a run with no complete
    trial yet ranks last."""
    rows = []
    if runs.empty:
        return pd.DataFrame(columns=list(BUDGET_COLUMNS))
    for axis, column in (("trials", "trial"), ("seconds", "elapsed")):
        for fraction in fractions:
            values = []
            for (task, seed), block in runs.groupby(["task", "seed"], sort=False):
                task_runs = runs[runs["task"] == task]
                end = float(task_runs[column].max())
                limit = math.ceil(fraction * end - 1e-9) if axis == "trials" else fraction * end
                seen = block[block[column] <= limit + 1e-9]
                best = seen.groupby("contender")["minimised"].min()
                row = pd.Series(math.inf, index=contenders)
                row.update(best.dropna())
                values.append(row.rename((task, seed)))
            ranks = block_ranks(pd.DataFrame(values)) if values else pd.DataFrame()
            for contender in contenders:
                rows.append(
                    {
                        "axis": axis,
                        "fraction": fraction,
                        "contender": contender,
                        "mean_rank": float(ranks[contender].mean()) if len(ranks) else math.nan,
                        "blocks": len(ranks),
                    }
                )
    return pd.DataFrame(rows, columns=list(BUDGET_COLUMNS))
