"""The one-study report's figures that Optuna's plots leave hard to read: the value axis of the
history put on a log scale where the values span more than a decade, and the slices drawn
as a grid of small plots with a legible size each (Optuna's draw them in one row).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import optuna

from search.results.plots import pyplot

# A value axis whose positive values span more than this ratio is drawn on a log scale:
# the first trials' values can be tens of times the good ones, which then lie flat.
LOG_SPAN = 10.0
# Slice plots per row of the grid, and the size of each (inches).
SLICE_COLUMNS = 3
SLICE_SIZE = (3.4, 2.8)


def spans_decades(values: list[float]) -> bool:
    """Whether ``values`` are all positive and the largest is over ``LOG_SPAN`` times the
    smallest (a log axis shows them; a linear one flattens the small ones)."""
    finite = [v for v in values if math.isfinite(v)]
    return bool(finite) and min(finite) > 0 and max(finite) / min(finite) > LOG_SPAN


def log_value_axis(axes: Any, values: list[float]) -> None:
    """Put ``axes``' value (y) axis on a log scale where ``values`` span decades, its ticks
    written as plain numbers (40, 100, 600) rather than powers of ten."""
    if spans_decades(values):
        from matplotlib.ticker import FormatStrFormatter

        axes.set_yscale("log")
        axes.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        axes.yaxis.set_minor_formatter(FormatStrFormatter("%g"))


def slice_grid(
    trials: list[optuna.trial.FrozenTrial],
    params: list[str],
    value: Any,
    target_name: str,
) -> Any:
    """A figure of one slice plot per parameter in ``params``: each complete trial's value
    (``value(trial)``) against the parameter's value, coloured by trial number, in rows of
    ``SLICE_COLUMNS``; the value axis on a log scale where the values span decades."""
    plt = pyplot()
    rows = math.ceil(len(params) / SLICE_COLUMNS)
    columns = min(len(params), SLICE_COLUMNS)
    figure, grid = plt.subplots(
        rows,
        columns,
        figsize=(SLICE_SIZE[0] * columns, SLICE_SIZE[1] * rows),
        squeeze=False,
        sharey=True,
        layout="constrained",  # each slice's parameter name clear of the row below
    )
    values = [float(value(t)) for t in trials]
    numbers = np.array([t.number for t in trials], dtype=float)
    points = None
    for axes, name in zip(grid.flat, params, strict=False):
        points = _slice(axes, trials, name, values, numbers)
    for axes in list(grid.flat)[len(params) :]:
        axes.set_visible(False)
    for axes in grid[:, 0]:
        axes.set_ylabel(target_name)
    log_value_axis(grid.flat[0], values)  # shared by every slice
    if points is not None:
        figure.colorbar(points, ax=grid, label="trial", shrink=0.6)
    return figure


def _slice(
    axes: Any,
    trials: list[optuna.trial.FrozenTrial],
    name: str,
    values: list[float],
    numbers: np.ndarray,
) -> Any:
    """One parameter's slice on ``axes``: the trials without it (a conditional parameter
    whose scope was off) are left out; a categorical one's choices sit at 0, 1, ..."""
    has = [name in t.params for t in trials]
    seen = [t.params[name] for t in trials if name in t.params]
    distribution = next(t.distributions[name] for t in trials if name in t.params)
    y = np.array([v for v, keep in zip(values, has, strict=True) if keep])
    colours = numbers[np.array(has, dtype=bool)]
    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        choices = [c for c in distribution.choices if c in seen]
        x = np.array([choices.index(v) for v in seen], dtype=float)
        axes.set_xticks(range(len(choices)), [str(c) for c in choices], rotation=30)
    else:
        x = np.array(seen, dtype=float)
        if getattr(distribution, "log", False):
            axes.set_xscale("log")
    # One colour scale for every slice: the figure's one colour bar reads for all of them.
    points = axes.scatter(
        x, y, c=colours, cmap="viridis", vmin=numbers.min(), vmax=numbers.max(), s=18
    )
    axes.set_xlabel(name)
    axes.grid(alpha=0.3)
    return points
