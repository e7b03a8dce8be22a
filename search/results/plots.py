"""The benchmark's PNG plots (matplotlib, Agg backend: no display needed).

Every figure is saved to a temporary file and renamed over its path, as every results file is.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from search.files import atomic_path

GRID_POINTS = 200


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(figure: Any, path: Path) -> None:
    """Save ``figure`` as PNG atomically, then close it."""
    try:
        with atomic_path(path) as temporary:
            figure.savefig(temporary, format="png", dpi=110, bbox_inches="tight")
    finally:
        pyplot().close(figure)


def _band(curves: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median and interquartile band over runs (rows), ignoring runs without a value yet."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a column where no run has a value
        return (
            np.nanmedian(curves, axis=0),
            np.nanpercentile(curves, 25, axis=0),
            np.nanpercentile(curves, 75, axis=0),
        )


def _baseline_line(axes: Any, label: str, value: float) -> None:
    """A baseline's value as a dashed horizontal line, for orientation."""
    axes.axhline(value, color="black", linestyle="--", linewidth=1, label=label)


def by_trial(runs: pd.DataFrame, contender: str) -> tuple[np.ndarray, np.ndarray]:
    """Trial numbers 1..N and each run's best-so-far at each of them (NaN past its end)."""
    group = runs[runs["contender"] == contender]
    n = int(group["trial"].max()) if len(group) else 0
    x = np.arange(1, n + 1)
    curves = []
    for _, run in group.groupby("seed"):
        curve = np.full(n, np.nan)
        curve[run["trial"].to_numpy(dtype=int) - 1] = run["best_so_far"].to_numpy(dtype=float)
        curves.append(curve)
    return x, np.array(curves)


def by_time(runs: pd.DataFrame, contender: str, end: float) -> tuple[np.ndarray, np.ndarray]:
    """A time grid 0..end and each run's best-so-far at each time (a step function).

    A run that has ended keeps its final value (it can no longer improve) until the
    contender's last run ends; past that the curve stops, so a slower contender's line is
    longer.
    """
    x = np.linspace(0.0, end, GRID_POINTS)
    group = runs[runs["contender"] == contender]
    last = float(group["elapsed"].max()) if len(group) else 0.0
    curves = []
    for _, run in group.groupby("seed"):
        times = run["elapsed"].to_numpy(dtype=float)
        values = run["best_so_far"].to_numpy(dtype=float)
        index = np.searchsorted(times, x, side="right") - 1
        curve = np.where(index >= 0, values[np.clip(index, 0, None)], np.nan)
        curve[x > last] = np.nan
        curves.append(curve)
    return x, np.array(curves)


def curves(
    runs: pd.DataFrame,
    path: Path,
    objective: str,
    title: str,
    direction: str,
    baseline: tuple[str, float] | None = None,
) -> None:
    """Best-so-far against trials and against wall seconds: median and IQR per contender.

    ``baseline`` (a name and a value of the objective's metric on the test split) is drawn
    as a horizontal line for orientation: it is not a validation value.
    """
    plt = pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5), sharey=True)
    end = float(runs["elapsed"].max()) if len(runs) else 1.0
    for contender in runs["contender"].drop_duplicates():
        for axes, (x, values) in (
            (left, by_trial(runs, contender)),
            (right, by_time(runs, contender, end)),
        ):
            if values.size == 0:
                continue
            middle, low, high = _band(values)
            (line,) = axes.plot(x, middle, label=contender, linewidth=1.6)
            axes.fill_between(x, low, high, color=line.get_color(), alpha=0.15, linewidth=0)
    if baseline is not None:
        for axes in (left, right):
            _baseline_line(axes, f"{baseline[0]}, test split ({baseline[1]:.4g})", baseline[1])
    observed = runs["best_so_far"].dropna()
    if len(observed) and observed.min() > 0 and observed.max() / observed.min() > 20:
        left.set_yscale("log")  # early best values can be orders of magnitude worse
    left.set_xlabel("trial")
    right.set_xlabel("wall seconds since the study started")
    left.set_ylabel(
        f"best {objective} so far ({'lower' if direction == 'min' else 'higher'} is better)"
    )
    left.set_title("by trial (median, interquartile band over seeds)")
    right.set_title("by wall time (median, interquartile band over seeds)")
    left.legend(fontsize=8)
    for axes in (left, right):
        axes.grid(alpha=0.3)
    figure.suptitle(title)
    save(figure, path)


def test_boxes(
    finals: pd.DataFrame,
    path: Path,
    metric: str,
    title: str,
    baseline: tuple[str, float] | None,
) -> None:
    """The test metric of each run's selected model, one box per contender."""
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(max(6, 1.3 * finals["contender"].nunique() + 2), 5))
    names = list(finals["contender"].drop_duplicates())
    data = [
        finals[finals["contender"] == name]["test_value"].astype(float).dropna().to_numpy()
        for name in names
    ]
    axes.boxplot(data, showmeans=True)
    axes.set_xticks(range(1, len(names) + 1), names, rotation=20, ha="right")
    for position, values in enumerate(data, start=1):
        axes.scatter(np.full(len(values), position), values, s=12, alpha=0.6, zorder=3)
    if baseline is not None:
        _baseline_line(axes, f"{baseline[0]} ({baseline[1]:.4g})", baseline[1])
        axes.legend(fontsize=8)
    axes.set_ylabel(f"test {metric} of the model selected by validation")
    axes.set_title(title)
    axes.grid(alpha=0.3, axis="y")
    save(figure, path)


def critical_difference(
    mean_ranks: pd.Series,
    p_values: pd.DataFrame,
    path: Path,
    label: str,
    test: dict[str, float],
    alpha: float = 0.05,
) -> None:
    """The critical-difference diagram of scikit-posthocs: the contenders on the mean-rank
    axis, a bar joining those that the post-hoc test cannot tell apart at ``alpha``, and
    Nemenyi's critical difference as a line above the axis."""
    import scikit_posthocs  # loaded with the first diagram: it imports statsmodels

    plt = pyplot()
    figure, ax = plt.subplots(figsize=(8, 1.2 + 0.35 * len(mean_ranks)))
    cd = test.get("critical_difference")
    scikit_posthocs.critical_difference_diagram(
        mean_ranks,
        p_values,
        ax=ax,
        alpha=alpha,
        cd=cd if cd is not None and np.isfinite(cd) else None,
        label_fmt_left="{label} ({rank:.2f})",
        label_fmt_right="({rank:.2f}) {label}",
    )
    # scikit-posthocs draws the critical difference at a height of 0.5 (its label at 0.65)
    # above the axis, over the tick labels: both lifted clear of them.
    from matplotlib.transforms import offset_copy

    lifted = offset_copy(ax.transData, figure, y=14, units="points")
    for text in ax.texts:
        if text.get_text().startswith("CD ="):
            text.set_transform(lifted)
    for line in ax.lines:
        if list(line.get_ydata()) == [0.5, 0.5]:
            line.set_transform(lifted)
            line.set_clip_on(False)  # it now lies above the axes' box
    ax.set_title(
        f"{label}: mean rank (1 is the best) over {int(test['blocks'])} (task, seed) blocks; "
        f"Friedman p = {test['friedman_p']:.3g}; bars join contenders the Nemenyi test does "
        f"not separate at {alpha}",
        fontsize=8,
        pad=40,
    )
    save(figure, path)


def ranks_over_budget(
    budget: pd.DataFrame, path: Path, label: str, clock: str = "wall time"
) -> None:
    """Mean rank against the fraction of the budget: of the trials (left), of the wall time
    (right); one line per contender, 1 (the best) at the top."""
    plt = pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    # ``clock``: what the seconds axis reads ("simulated time" on tabular benchmarks).
    titles = {"trials": "fraction of the trials", "seconds": f"fraction of the {clock}"}
    for ax, (axis, title) in zip(axes, titles.items(), strict=True):
        table = budget[budget["axis"] == axis]
        for contender, rows in table.groupby("contender", sort=False):
            ax.plot(rows["fraction"], rows["mean_rank"], marker="o", label=contender)
        ax.set_xscale("log")
        ax.set_xticks([0.1, 0.25, 0.5, 1.0], ["10%", "25%", "50%", "100%"])
        ax.set_xlabel(title)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mean rank over (task, seed) blocks")
    axes[0].invert_yaxis()  # shared: the best (rank 1) at the top of both
    # Beside the plots, where it hides no line.
    axes[1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    figure.suptitle(f"{label}: rank over the budget", fontsize=10)
    save(figure, path)
