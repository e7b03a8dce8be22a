"""``python -m search report``: one study of either engine as PNG plots and one HTML page."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path
from typing import Any

import optuna
import pytest
from conftest import Study, chromium, run_main

from search.engines import TrialRecord
from search.engines.optuna import view as report
from search.results.report import PLOTS

State = optuna.trial.TrialState

PNG = b"\x89PNG\r\n\x1a\n"


def test_records_become_an_optuna_study_with_covering_distributions() -> None:
    records = [
        TrialRecord(0, "complete", 3.0, {"units": 16, "lr": 1e-4, "act": "relu", "deep": True}),
        TrialRecord(1, "complete", 2.0, {"units": 64, "lr": 1e-1, "act": "tanh", "deep": False}),
        # A conditional parameter is absent where its scope was inactive.
        TrialRecord(2, "pruned", None, {"units": 32, "lr": 1e-2, "act": "relu", "extra": 0.5}),
        TrialRecord(3, "failed", None, {"units": 16, "lr": 1e-3, "act": "relu"}),
        TrialRecord(4, "running", None, {"units": 16}),
    ]
    domains = report.distributions(records)
    assert domains["units"] == optuna.distributions.IntDistribution(16, 64)
    assert domains["lr"] == optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)
    assert set(domains["act"].choices) == {"relu", "tanh"}  # type: ignore[attr-defined]
    assert set(domains["deep"].choices) == {False, True}  # type: ignore[attr-defined]

    study = report.to_optuna(records, "min")
    states = [t.state for t in study.trials]
    assert states == [State.COMPLETE, State.COMPLETE, State.PRUNED, State.FAIL]
    assert study.best_trial.params["units"] == 64 and study.best_value == 2.0
    assert [t.user_attrs["trial"] for t in study.trials] == [0, 1, 2, 3]


def _report(source: Study, tmp_path: Path) -> tuple[Path, str]:
    """Report on a copy of the study (the session's study folder stays as it was)."""
    out = tmp_path / "results"
    shutil.copytree(source.out, out)
    assert run_main(["report", source.task, "--study", source.study, "--out", out]) == 0
    folder = out / source.task / source.study / "report"
    return folder, (folder / "report.html").read_text(encoding="utf-8")


@pytest.mark.slow
@pytest.mark.parametrize("fixture", ["boston_study", "boston_kt_study"])
def test_report_of_either_engine(
    fixture: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    study: Study = request.getfixturevalue(fixture)
    folder, page = _report(study, tmp_path)
    for name in PLOTS:
        assert (folder / f"{name}.png").read_bytes()[:8] == PNG, name
    # Self-contained: four images embedded as base64, no other file referenced.
    assert page.count('src="data:image/png;base64,') == 4
    assert not re.search(r'src="(?!data:)', page) and "<link" not in page
    for heading in ("Optimisation history", "Parameter importances", "Parallel coordinates"):
        assert heading in page
    # The leaderboard: one row per trial of the study's own CSV.
    trials = study.trials()
    board = page[page.rindex("<table") :]
    body = board[board.index("<tbody>") : board.index("</tbody>")]
    assert body.count("<tr>") == len(trials)
    header = board[: board.index("<tbody>")]
    assert all(f"<th>{column}</th>" in header for column in ("rank", "trial", "value"))
    assert study.study in page


@pytest.mark.slow
def test_report_without_study_picks_the_best_of_the_task(
    boston_study: Study, tmp_path: Path
) -> None:
    out = tmp_path / "results"
    shutil.copytree(boston_study.out, out)
    assert run_main(["report", "boston", "--out", out]) == 0
    assert (out / "boston" / boston_study.study / "report" / "report.html").exists()


def readable_study(folder: Path, trials: int = 24) -> list[TrialRecord]:
    """A study folder (``study.json`` and ``leaderboard.csv``) of ``trials`` made-up trials
    of an mlp-like space: the values span 10 to about 600 with the learning rate, one
    parameter is conditional, and the table is wider than a page."""
    import random

    from search.files import write_json
    from search.results.leaderboard import trial_table, write_csv
    from search.tasks.scoring import METRICS

    draw = random.Random(0)
    records = []
    for number in range(trials):
        rate = 10 ** draw.uniform(-4, -1)
        params: dict[str, Any] = {
            "learning_rate": rate,
            "units_0": draw.choice([16, 32, 64, 128, 256]),
            "activation": draw.choice(["relu", "tanh", "elu"]),
            "optimizer": draw.choice(["adam", "sgd", "rmsprop", "nesterov"]),
            "layers": draw.randint(1, 2),
            "l2": 10 ** draw.uniform(-6, -2),
            "batch_size": draw.choice([16, 32, 64, 128]),
        }
        if params["layers"] == 2:
            params["dropout_1"] = draw.choice([0.0, 0.125, 0.25])
        value = 10 + 300 * abs(math.log10(rate) + 2.5) + draw.uniform(0, 5)
        metrics = {"val_mse": value, "val_mae": value**0.5}
        records.append(TrialRecord(number, "complete", value, params, metrics, 30, 12, 900, 1.0))
    config = {
        "task": "boston",
        "study": "readable",
        "space": "mlp",
        "engine": "optuna",
        "algorithm": "tpe",
        "pruner": "median",
        "objective": "val_mse",
        "direction": "min",
        "seed": 0,
    }
    write_json(folder / "study.json", {"config": config, "summary": {}})
    write_csv(trial_table(records, {}, ("min",), METRICS["regression"]), folder / "leaderboard.csv")
    return records


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_the_report_plots_read_at_a_glance(tmp_path: Path) -> None:
    """Values over a decade apart on a log axis, the parallel coordinates of the most
    important parameters only, one labelled slice per parameter in a grid."""
    from search.engines.optuna.view import to_optuna
    from search.results.report import PARALLEL_PARAMETERS, importances, makers
    from search.results.report_plots import SLICE_COLUMNS

    records = readable_study(tmp_path)
    study = to_optuna(records, "min")
    weights = importances(study)
    drawn = makers(study, study.trials, ["val_mse"], None, weights)
    assert drawn["history"]().get_yscale() == "log"
    parallel = drawn["parallel"]()
    labels = [tick.get_text() for tick in parallel.get_xticklabels()]
    # Optuna orders the axes by name: the objective, then the most important parameters.
    assert labels[0] == "val_mse"
    assert set(labels[1:]) == set(list(weights)[:PARALLEL_PARAMETERS])
    assert "learning_rate" in labels  # the value follows it
    figure = drawn["slice"]()
    shown = [axes for axes in figure.axes if axes.get_visible() and axes.get_xlabel() != ""]
    parameters = {name for record in records for name in record.params}
    assert {axes.get_xlabel() for axes in shown} == parameters
    assert len({round(axes.get_position().x0, 3) for axes in shown}) == SLICE_COLUMNS
    assert all(axes.get_yscale() == "log" for axes in shown)
    assert shown[0].get_xlabel() == next(iter(weights))  # the most important first
    assert shown[0].get_xscale() == "log"  # the learning rate's values span decades


# Reads, from the report's page, each image's drawn and natural width and whether the page
# and the leaderboard's box scroll sideways.
READ_PAGE = """() => {
    const images = [...document.querySelectorAll('img')].map(image => ({
        name: image.alt, natural: image.naturalWidth, shown: image.getBoundingClientRect().width,
    }));
    const board = document.querySelector('.board');
    return {
        images,
        page_scrolls: document.documentElement.scrollWidth > window.innerWidth,
        board_overflow: getComputedStyle(board).overflowX,
        board_wider: board.scrollWidth > board.clientWidth,
        board_fits: board.getBoundingClientRect().right <= window.innerWidth,
        headers: [...board.querySelectorAll('th')].map(th => th.innerText.trim()),
    };
}"""


@pytest.mark.slow
def test_the_report_in_a_browser(tmp_path: Path) -> None:
    """What a user sees: each plot drawn at (nearly) its own size, not shrunk illegible,
    and the leaderboard scrolling inside its box while the page does not."""
    executable = chromium()
    from playwright.sync_api import sync_playwright

    from search.results.report import render

    records = readable_study(tmp_path)
    config = {"task": "boston", "study": "readable", "objective": "val_mse", "direction": "min"}
    render(tmp_path, records, config)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable)
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        page.goto((tmp_path / "report" / "report.html").as_uri())
        seen = page.evaluate(READ_PAGE)
        browser.close()
    assert sorted(image["name"] for image in seen["images"]) == sorted(PLOTS)
    for image in seen["images"]:
        assert image["natural"] > 0, image
        assert image["shown"] >= 0.9 * image["natural"], image  # at most 10% smaller
    assert not seen["page_scrolls"]
    assert seen["board_overflow"] == "auto" and seen["board_wider"] and seen["board_fits"]
    assert {"rank", "trial", "value", "learning_rate"} <= set(seen["headers"])
