"""``python -m search report``: one study of either engine as PNG plots and one HTML page."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import optuna
import pytest
from conftest import Study, run_main

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
