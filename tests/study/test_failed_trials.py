"""Diverging models fail their trials, the samplers go on through them, and a run of failed
trials stops the search at ``--max-failures``.

No process is killed here: each study runs in this process through ``search.cli.main``, as
the command would (its exit code and what it prints), and is read back from its files.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import call_cli, describe
from spaces_fixtures import HALF_DIVERGING, write_space

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("engine", "algorithm"),
    [("keras-tuner", "bayesian"), ("optuna", "gp"), ("optuna", "tpe")],
    ids=["keras-tuner-bayesian", "optuna-gp", "optuna-tpe"],
)
def test_samplers_keep_working_through_many_failed_trials(
    tmp_path: Path, engine: str, algorithm: str
) -> None:
    if algorithm == "gp":
        pytest.importorskip("torch", reason="Optuna's GP sampler needs torch: tox -e gp")
    space = write_space(tmp_path / "diverging.py", HALF_DIVERGING)
    out = tmp_path / "out"
    args = ["boston", "--space", space, "--engine", engine, "--algorithm", algorithm]
    args += ["--trials", "12", "--epochs", "2", "--max-failures", "0", "--cv", "1"]
    args += ["--top-k", "1", "--ensemble", "1", "--ensemble-size", "0", "--out", out]
    args += ["--no-tensorboard"]
    proc = call_cli(args)
    assert proc.returncode == 0, describe(proc)
    table = pd.read_csv(out / "boston" / f"diverging-{engine}-{algorithm}" / "leaderboard.csv")
    failed = table[table["state"] == "failed"]
    assert len(table) == 12 and len(failed) >= 3
    assert failed["error"].str.contains("nan|inf").all()
    assert failed["diverge"].astype(bool).all()
    assert (table["state"] == "complete").sum() >= 1


def test_max_failures_stops_the_search_and_says_why(tmp_path: Path) -> None:
    space = write_space(
        tmp_path / "diverging.py",
        HALF_DIVERGING.replace('hp.Boolean("diverge")', 'hp.Fixed("diverge", True)'),
    )
    out = tmp_path / "out"
    args = ["boston", "--space", space, "--trials", "20", "--epochs", "2"]
    args += ["--max-failures", "3", "--cv", "1", "--out", out, "--no-tensorboard"]
    proc = call_cli(args)
    assert proc.returncode == 1, describe(proc)
    assert "stopped after 3 consecutive failed trials" in proc.stderr
    table = pd.read_csv(out / "boston" / "diverging-optuna-tpe" / "leaderboard.csv")
    assert len(table) == 3 and (table["state"] == "failed").all()
