"""Each command as a real ``python -m search`` process: exit codes, what it prints, what it
writes, and a user's mistake as one line on stderr.

The rules behind them (every task, engine and algorithm; resume; seeds; each kind of bad
input) are checked through the CLI's entry point in the test process
(``tests/cli/test_commands.py``, ``tests/cli/test_bad_input.py``); these check that a real
process does the same: the console entry, its own stdout and stderr, its exit code.
``tensorboard`` is served as a real process in ``tests/results/test_tensorboard.py``, and
``bench --suite`` with its job processes in ``tests/bench/test_suite.py``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest
from conftest import describe, run_cli
from spaces_fixtures import RAISES_ON_IMPORT

from search.engines import ENGINES, PRUNERS
from search.space_lookup import BUILTIN_SPACES
from search.tasks import load_task, task_names

pytestmark = pytest.mark.slow

SMALL = ("--trials", "2", "--epochs", "2", "--top-k", "1", "--seed", "7", "--no-tensorboard")
STUDIES = ("linear-optuna-tpe", "mlp-optuna-tpe")


def assert_ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, describe(proc)
    assert "Traceback" not in proc.stderr, describe(proc)


@pytest.fixture(scope="module")
def boston(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """``python -m search boston``: every space that fits the task, with Optuna."""
    out = tmp_path_factory.mktemp("boston")
    return run_cli(["boston", *SMALL, "--out", out]), out


def test_run_writes_every_study_and_prints_its_results(
    boston: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    proc, out = boston
    assert_ok(proc)
    for study in STUDIES:
        table = pd.read_csv(out / "boston" / study / "leaderboard.csv")
        assert len(table) == 2 and table["trial"].is_unique
        assert (table["state"] == "complete").any(), table
        assert (out / "boston" / study / "best.keras").is_file()
        assert f"boston/{study}:" in proc.stdout
    studies = pd.read_csv(out / "leaderboard.csv")
    assert sorted(studies["study"]) == sorted(STUDIES)
    assert f"  {out / 'leaderboard.csv'}" in proc.stdout.splitlines()


def test_leaderboard_prints_the_tables(
    boston: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    _, out = boston
    proc = run_cli(["leaderboard", "boston", "--out", out])
    assert_ok(proc)
    header = proc.stdout.splitlines()[0].split()
    assert header[:3] == ["task", "study", "trials"]
    for study in STUDIES:
        assert f"boston/{study}:" in proc.stdout


def test_predict_writes_its_file_and_says_so(
    boston: tuple[subprocess.CompletedProcess[str], Path], tmp_path: Path
) -> None:
    _, out = boston
    task = load_task("boston")
    data = tmp_path / "features.csv"
    pd.DataFrame(task.x_test, columns=list(task.spec.feature_names)).to_csv(data, index=False)
    output = tmp_path / "predictions.csv"
    proc = run_cli(["predict", "boston", "--data", data, "--output", output, "--out", out])
    assert_ok(proc)
    predictions = pd.read_csv(output)
    assert len(predictions) == len(task.x_test) and predictions["prediction"].notna().all()
    assert f"wrote {len(predictions)} predictions" in proc.stderr


def test_report_writes_its_page(boston: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    _, out = boston
    proc = run_cli(["report", "boston", "--study", "mlp-optuna-tpe", "--out", out])
    assert_ok(proc)
    assert proc.stdout.startswith("report of boston/mlp-optuna-tpe:")
    assert (out / "boston" / "mlp-optuna-tpe" / "report" / "report.html").is_file()


def test_list_names_everything() -> None:
    proc = run_cli(["list"])
    assert_ok(proc)
    first_words = {line.split()[0] for line in proc.stdout.splitlines() if line.strip()}
    assert set(task_names()) <= first_words
    assert set(BUILTIN_SPACES) <= first_words
    assert {f"{e}:{a}" for e, table in ENGINES.items() for a in table} <= first_words
    assert set(PRUNERS) <= first_words


def mistakes() -> list[object]:
    """One of each way the CLI refuses a mistake: argparse, before the task loads, after
    Keras is imported, in another command, and after starting worker processes."""
    return [
        pytest.param(["boston", "--epochs", "abc"], "--epochs", id="usage"),
        pytest.param(["nope"], "unknown task", id="unknown-task"),
        pytest.param(["boston", "--space", "{raises}"], "failed to import", id="space-raises"),
        pytest.param(["boston", "--space", "logistic"], "does not fit", id="space-does-not-fit"),
        pytest.param(["predict", "boston", "--data", "{data}"], "no finished study", id="predict"),
        pytest.param(
            ["bench", "boston", "--space", "mlp", "--contenders", "optuna:nope"],
            "unknown contender 'optuna:nope'",
            id="bench",
        ),
        pytest.param(["report", "boston", "--study", "nope"], "no study 'nope'", id="report"),
        pytest.param(
            ["boston", "--engine", "keras-tuner", "--population", "4", "--workers", "2"],
            "--population with --workers",
            id="keras-tuner-population-with-workers",
        ),
    ]


@pytest.mark.parametrize(("args", "keyword"), mistakes())
def test_a_mistake_is_one_line_exit_2_and_writes_nothing(
    args: list[str], keyword: str, tmp_path: Path
) -> None:
    raises = tmp_path / "boom.py"
    raises.write_text(RAISES_ON_IMPORT, encoding="utf-8")
    data = tmp_path / "features.csv"
    data.write_text("a,b\n1,2\n", encoding="utf-8")
    argv = [arg.format(raises=raises, data=data) for arg in args]
    proc = run_cli([*argv, "--out", tmp_path / "out"])
    assert proc.returncode == 2, describe(proc)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("search: error: "), describe(proc)
    assert keyword.lower() in lines[0].lower(), describe(proc)
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (tmp_path / "out").exists()
