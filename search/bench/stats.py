"""The benchmark's statistics: pure functions of the runs and finals tables.

``runs`` has one row per trial (``contender``, ``seed``, ``trial``, ``elapsed``, ``value``,
``best_so_far``, ``state``); ``finals`` one row per run (``contender``, ``seed``, ``trials``,
``best_value``, ``test_value``, ``wall_seconds``). Lower is better when ``direction`` is
"min"; every function turns a maximised metric around by its sign.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

ALPHA = 0.05
SUMMARY_COLUMNS = (
    "contender",
    "runs",
    "trials",
    "failed",
    "best_mean",
    "best_sd",
    "best_median",
    "best_iqr",
    "test_mean",
    "test_sd",
    "mean_rank",
    "wins",
    "auc",
    "wall_seconds",
    "trials_per_minute",
    "regret",
)
SIGNIFICANCE_COLUMNS = ("contender", "versus", "test", "p_value", "p_holm", "significant")


def _sign(direction: str) -> float:
    return 1.0 if direction == "min" else -1.0


def best_so_far(values: pd.Series, direction: str) -> pd.Series:
    """The best value up to each trial; NaN before the first complete trial."""
    sign = _sign(direction)
    # cummin leaves NaN at a failed or pruned trial: the best so far is carried over it.
    return (sign * values.astype(float)).cummin().ffill() * sign


def ranks(finals: pd.DataFrame, direction: str) -> pd.DataFrame:
    """Seeds x contenders: the rank of each run's final best value among its seed's runs.

    1 is the best; ties share the mean of their ranks; a run without any complete trial
    ranks below every run that has one.
    """
    table = finals.pivot(index="seed", columns="contender", values="best_value").astype(float)
    signed = (_sign(direction) * table).fillna(math.inf)
    return signed.rank(axis=1, method="average")


def wins(finals: pd.DataFrame, direction: str) -> pd.Series:
    """Seeds on which each contender's final best value is the seed's best (ties: all win)."""
    table = finals.pivot(index="seed", columns="contender", values="best_value").astype(float)
    signed = _sign(direction) * table
    best = signed.min(axis=1)
    return signed.eq(best, axis=0).sum(axis=0)


def area_under_curve(runs: pd.DataFrame) -> pd.Series:
    """Per run (contender, seed): the mean best-so-far over its trials, i.e. the area under
    the best-so-far curve divided by the number of trials; trials before the first complete
    one are left out. Lower means good values came early (for a minimised objective)."""
    return runs.groupby(["contender", "seed"])["best_so_far"].mean()


def regrets(
    finals: pd.DataFrame, baseline: float | None, reference: float | None, direction: str
) -> pd.Series:
    """Normalised regret of each run's test value: 0 at ``baseline``, 1 at ``reference``.

    The scale is ``|reference - baseline|`` and higher always means worse, so where the
    reference (random search) beats the baseline, the reference sits at -1, not 1.
    ``direction`` is the test metric's. Undefined (NaN) without a baseline or a reference,
    or when they coincide.
    """
    if baseline is None or reference is None or not math.isfinite(reference):
        return pd.Series(math.nan, index=finals.index)
    if reference == baseline:
        return pd.Series(math.nan, index=finals.index)
    worse = _sign(direction) * (finals["test_value"].astype(float) - baseline)
    return worse / abs(reference - baseline)


def random_reference(finals: pd.DataFrame) -> float | None:
    """The median test value of the random-search runs (any engine's ``random``)."""
    random = finals[finals["contender"].str.endswith(":random")]["test_value"].astype(float)
    random = random.dropna()
    return float(random.median()) if len(random) else None


def leaderboard_order(finals: pd.DataFrame, direction: str) -> list[str]:
    """Contenders by mean rank, then median final best value, then name."""
    rank = ranks(finals, direction).mean(axis=0)
    median = finals.groupby("contender")["best_value"].median() * _sign(direction)
    return sorted(rank.index, key=lambda c: (rank[c], median[c], str(c)))


def summarize(
    runs: pd.DataFrame,
    finals: pd.DataFrame,
    direction: str,
    baseline: float | None,
    test_direction: str | None = None,
) -> pd.DataFrame:
    """One row per contender (columns :data:`SUMMARY_COLUMNS`) in :func:`leaderboard_order`.

    ``direction`` is the objective's; ``test_direction`` the test metric's (default the same).
    """
    if finals.empty:
        return pd.DataFrame(columns=list(SUMMARY_COLUMNS))
    finals = finals.copy()
    reference = random_reference(finals)
    finals["regret"] = regrets(finals, baseline, reference, test_direction or direction)
    rank = ranks(finals, direction)
    won = wins(finals, direction)
    auc = area_under_curve(runs) if not runs.empty else pd.Series(dtype=float)
    failed = runs[runs["state"] == "failed"].groupby("contender").size().to_dict()
    rows = []
    for contender, group in finals.groupby("contender", sort=False):
        best = group["best_value"].astype(float).dropna()
        test = group["test_value"].astype(float).dropna()
        wall = group["wall_seconds"].astype(float)
        trials = group["trials"].astype(float)
        areas = auc[contender] if contender in auc.index.get_level_values(0) else pd.Series([])
        rows.append(
            {
                "contender": contender,
                "runs": len(group),
                "trials": trials.mean(),
                "failed": failed.get(contender, 0) / len(group),
                "best_mean": best.mean(),
                "best_sd": best.std(ddof=1) if len(best) > 1 else math.nan,
                "best_median": best.median(),
                "best_iqr": best.quantile(0.75) - best.quantile(0.25),
                "test_mean": test.mean(),
                "test_sd": test.std(ddof=1) if len(test) > 1 else math.nan,
                "mean_rank": rank[contender].mean(),
                "wins": int(won[contender]),
                "auc": areas.mean(),
                "wall_seconds": wall.mean(),
                "trials_per_minute": 60 * trials.sum() / wall.sum() if wall.sum() else math.nan,
                "regret": group["regret"].mean(),
            }
        )
    table = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS)).set_index("contender")
    return table.loc[leaderboard_order(finals, direction)].reset_index()


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input's order."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [math.nan] * m
    running = 0.0
    for position, index in enumerate(order):
        running = max(running, min(1.0, (m - position) * p_values[index]))
        adjusted[index] = running
    return adjusted


def compare(best: pd.Series, other: pd.Series) -> tuple[str, float]:
    """Two-sided test of two contenders' final best values, each indexed by seed.

    Paired by seed (Wilcoxon signed-rank) when both have a value on the same seeds;
    otherwise unpaired (Mann-Whitney U). Identical samples give p = 1.
    """
    best, other = best.dropna().astype(float), other.dropna().astype(float)
    if len(best) == 0 or len(other) == 0:
        return "none", math.nan
    if sorted(best.index) == sorted(other.index):
        differences = (best - other.loc[best.index]).to_numpy()
        if np.all(differences == 0):
            return "wilcoxon", 1.0
        return "wilcoxon", float(stats.wilcoxon(differences).pvalue)
    if np.array_equal(np.sort(best.to_numpy()), np.sort(other.to_numpy())):
        return "mannwhitney", 1.0
    return "mannwhitney", float(stats.mannwhitneyu(best, other).pvalue)


def significance(finals: pd.DataFrame, direction: str) -> pd.DataFrame:
    """Each contender against the best one (lowest mean rank), Holm-corrected.

    Columns :data:`SIGNIFICANCE_COLUMNS`; the best contender's row names no test.
    """
    if finals.empty:
        return pd.DataFrame(columns=list(SIGNIFICANCE_COLUMNS))
    order = leaderboard_order(finals, direction)
    leader = order[0]
    values = {c: finals[finals["contender"] == c].set_index("seed")["best_value"] for c in order}
    tests = {c: compare(values[leader], values[c]) for c in order[1:]}
    adjusted = dict(zip(tests, holm([p for _, p in tests.values()]), strict=True))
    rows = [
        {
            "contender": leader,
            "versus": "",
            "test": "best",
            "p_value": math.nan,
            "p_holm": math.nan,
            "significant": False,
        }
    ]
    for contender, (test, p_value) in tests.items():
        rows.append(
            {
                "contender": contender,
                "versus": leader,
                "test": test,
                "p_value": p_value,
                "p_holm": adjusted[contender],
                "significant": bool(adjusted[contender] < ALPHA),
            }
        )
    return pd.DataFrame(rows, columns=list(SIGNIFICANCE_COLUMNS))
