"""One study as PNG plots and a self-contained HTML page (``python -m search report``).

The trials (read from the study's engine storage by :mod:`search.study.stored`) are copied
into an in-memory Optuna study, so studies of both engines go through the same code: Optuna's
importance evaluator and its matplotlib plots. The page embeds the images as base64 and needs
no other file.
"""

from __future__ import annotations

import base64
import html
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from search.engines.optuna.view import to_optuna
from search.engines.records import FINISHED, TrialRecord
from search.files import read_json, write_text
from search.layout import STUDY_JSON, TRIAL_TABLE
from search.results.plots import pyplot, save
from search.results.report_plots import log_value_axis, slice_grid

PLOTS = ("history", "importances", "parallel", "slice")
# The parallel-coordinates plot shows the most important parameters only: with every one
# (13 axes for the mlp space) its ticks overlap and no line can be followed.
PARALLEL_PARAMETERS = 4
# Inches per axis of the parallel-coordinates plot, and its height.
PARALLEL_WIDTH, PARALLEL_HEIGHT = 2.0, 4.5


def importances(
    study: optuna.Study, target: Callable[[Any], float] | None = None
) -> dict[str, float]:
    """fANOVA importances (seeded) over the parameters every complete trial has (of the
    first objective, ``target``, in a study of several)."""
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    return optuna.importance.get_param_importances(study, evaluator=evaluator, target=target)


def render(folder: Path, records: list[TrialRecord], config: dict[str, Any]) -> list[Path]:
    """Write ``report/{history,importances,parallel,slice}.png`` and ``report/report.html``
    for the study in ``folder``: its trials (``records``) and its config from study.json."""
    objectives = list(config.get("objectives") or [config["objective"]])
    study = to_optuna(records, config.get("directions") or config["direction"])
    # With several objectives Optuna's plots take one: the first (the Pareto plot takes all).
    first = (lambda t: t.values[0]) if len(objectives) > 1 else None
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    out = folder / "report"
    images: dict[str, Path] = {}
    notes: dict[str, str] = {}
    weights: dict[str, float] = {}
    for name, make in makers(study, complete, objectives, first, weights).items():
        needed = 2 if name in ("importances", "parallel") else 1
        if len(complete) < needed:
            notes[name] = f"needs at least {needed} complete trials; the study has {len(complete)}"
            continue
        if name == "importances":
            try:
                weights.update(importances(study, first))
            except (RuntimeError, ValueError) as error:
                notes[name] = f"no importances: {error}"
                continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna's matplotlib plots are "experimental"
            figure = _figure(make())
        images[name] = out / f"{name}.png"
        save(figure, images[name])
    page = out / "report.html"
    write_text(page, _html(folder, config, records, images, notes, weights))
    return [*images.values(), page]


def makers(
    study: optuna.Study,
    complete: list[optuna.trial.FrozenTrial],
    objectives: list[str],
    first: Callable[[Any], float] | None,
    weights: dict[str, float],
) -> dict[str, Callable[[], Any]]:
    """What draws each plot, in order: ``weights`` (the importances) is filled by the time
    the parallel-coordinates plot is drawn, which shows the most important parameters."""
    from optuna.visualization import matplotlib as plots

    target = objectives[0]
    value = first or (lambda t: t.value)
    values = [float(value(t)) for t in complete]

    def history() -> Any:
        axes = plots.plot_optimization_history(study, target=first, target_name=target)
        log_value_axis(axes, values)
        return axes

    def parallel() -> Any:
        # Without importances (too few trials), the parameters every complete trial has.
        chosen = list(weights) or sorted(set.intersection(*(set(t.params) for t in complete)))
        params = chosen[:PARALLEL_PARAMETERS]
        axes: Any = plots.plot_parallel_coordinate(
            study, params=params, target=first, target_name=target
        )
        axes.get_figure().set_size_inches(PARALLEL_WIDTH * (len(params) + 1), PARALLEL_HEIGHT)
        return axes

    def slices() -> Any:
        params = sorted({name for t in complete for name in t.params}, key=_order(weights))
        return slice_grid(complete, params, value, target)

    drawn: dict[str, Callable[[], Any]] = {
        "history": history,
        "importances": lambda: plots.plot_param_importances(
            study,
            evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0),
            target=first,
            target_name=target,
        ),
        "parallel": parallel,
        "slice": slices,
    }
    if len(objectives) > 1:
        drawn["pareto"] = lambda: plots.plot_pareto_front(study, target_names=objectives)
    return drawn


def _order(weights: dict[str, float]) -> Callable[[str], tuple[float, str]]:
    """A sort key: the most important parameters first, then the others by name."""
    return lambda name: (-weights.get(name, -1.0), name)


def _figure(drawn: Any) -> Any:
    """The figure of an Axes, of an array of Axes or the figure itself, at least 8 inches
    wide."""
    pyplot()  # selects the Agg backend before anything is drawn
    first = drawn.flat[0] if hasattr(drawn, "flat") else drawn
    figure = first.get_figure()  # a figure's is itself
    width, height = figure.get_size_inches()
    figure.set_size_inches(max(width, 8), height)
    return figure


def _html(
    folder: Path,
    config: dict[str, Any],
    records: list[TrialRecord],
    images: dict[str, Path],
    notes: dict[str, str],
    weights: dict[str, float],
) -> str:
    data = read_json(folder / STUDY_JSON)
    summary = data.get("summary", {})
    title = f"{config['task']} / {config['study']}"
    facts = {
        "space": config.get("space"),
        "engine": f"{config.get('engine')} ({config.get('algorithm')}, pruner "
        f"{config.get('pruner')})",
        "objective": f"{config.get('objective')} ({config.get('direction')})",
        "trials": ", ".join(f"{sum(r.state == s for r in records)} {s}" for s in FINISHED),
        "best value": _number(summary.get("best_value")),
        "test": f"{summary.get('test_metric')} {_number(summary.get('test_value'))} "
        f"(baseline {summary.get('baseline')} {_number(summary.get('baseline_value'))})",
        "wall seconds": summary.get("wall_seconds"),
        "seed": config.get("seed"),
    }
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1200px}"
        "table{border-collapse:collapse;font-size:0.85em}td,th{border:1px solid #ccc;"
        "padding:2px 6px;text-align:right}img{max-width:100%}"
        # The leaderboard scrolls inside its box, its header row in view, not the page.
        ".board{overflow:auto;max-height:70vh;border:1px solid #ccc}"
        ".board th{position:sticky;top:0;background:#f4f4f4}</style>",
        "</head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<table>",
        *(
            f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in facts.items()
        ),
        "</table>",
    ]
    headings = {
        "history": "Optimisation history",
        "importances": "Parameter importances (fANOVA)",
        "parallel": "Parallel coordinates",
        "slice": "Slice plots",
        "pareto": "Pareto front",
    }
    for name in [*(["pareto"] if "pareto" in images else []), *PLOTS]:
        parts.append(f"<h2>{headings[name]}</h2>")
        if name in images:
            encoded = base64.b64encode(images[name].read_bytes()).decode("ascii")
            parts.append(f'<img alt="{name}" src="data:image/png;base64,{encoded}">')
        else:
            parts.append(f"<p>{html.escape(notes.get(name, 'not drawn'))}</p>")
        if name == "importances" and weights:
            table = pd.DataFrame({"parameter": list(weights), "importance": list(weights.values())})
            parts.append(table.to_html(index=False, float_format=lambda v: f"{v:.3f}"))
    parts.append("<h2>Leaderboard</h2>")
    board = folder / TRIAL_TABLE
    if board.exists():
        table = pd.read_csv(board)
        rows = table.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.4g}")
        parts.append(f'<div class="board">{rows}</div>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _number(value: Any) -> str:
    if isinstance(value, int | float) and math.isfinite(value):
        return f"{value:.4g}"
    return "n/a"
