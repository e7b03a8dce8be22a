"""A user's mistake ends as one line on stderr, exit code 2, and nothing written.

Every case runs the CLI's entry point (``search.cli.main``) in this process, its stdout and
stderr captured. It must exit 2 with exactly one non-empty line on stderr,
``search: error: ...`` naming the problem, no traceback, and leave the ``--out`` folder as
it was: absent (or empty) when it did not exist, unchanged when it held a study. A few of
these cases run as real ``python -m search`` processes too (``tests/system/test_cli.py``).
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from conftest import STUDY_SEED, Study, call_cli, describe
from spaces_fixtures import EMPTY_RANGE, NO_SPACE_CLASS, RAISES_ON_IMPORT, SYNTAX_ERROR, WIDE

from search.tasks import load_task


@dataclass
class Ctx:
    """Where a case writes its inputs (``tmp``) and the results root it passes (``out``)."""

    tmp: Path
    out: Path
    request: pytest.FixtureRequest

    def file(self, name: str, text: str) -> Path:
        path = self.tmp / name
        path.write_text(text, encoding="utf-8")
        return path

    def csv(self, rows: list[str], header: str = "a,b,y") -> list[str]:
        """``csv --data FILE --target y`` over a header and ``rows``."""
        path = self.file("data.csv", "\n".join([header, *rows]) + "\n")
        return ["csv", "--data", str(path), "--target", "y"]

    def with_study(self) -> Study:
        """A copy of the shared finished boston/mlp study under ``out``."""
        source: Study = self.request.getfixturevalue("boston_study")
        shutil.copytree(source.out, self.out)
        return Study(self.out, source.task, source.study)


Args = Callable[[Ctx], list[str]]


def good_rows(n: int = 12) -> list[str]:
    return [f"{i},{i * i % 7},{i % 3}" for i in range(n)]


def replaced(row: int, text: str) -> list[str]:
    rows = good_rows()
    rows[row] = text
    return rows


def boston_features(ctx: Ctx, drop: tuple[str, ...] = (), header: bool = True) -> Path:
    """The boston test features as a CSV file, without the columns in ``drop`` (and without
    its header row if ``header`` is false)."""
    task = load_task("boston")
    frame = pd.DataFrame(task.x_test, columns=list(task.spec.feature_names))
    frame = frame.drop(columns=list(drop))
    path = ctx.tmp / "features.csv"
    frame.to_csv(path, index=False, header=header)
    return path


def unwritable(ctx: Ctx) -> list[str]:
    blocker = ctx.file("file.txt", "a regular file\n")
    ctx.out = blocker / "out"
    return ["boston", "--space", "mlp"]


def under_proc(ctx: Ctx) -> list[str]:
    # Root may write anywhere by its permissions, but nothing can be created in /proc.
    ctx.out = Path("/proc/search-results")
    return ["boston", "--space", "mlp"]


def without_dask(ctx: Ctx) -> list[str]:
    """As where the dask extra is not installed: ``distributed`` cannot be imported."""
    ctx.request.getfixturevalue("monkeypatch").setitem(sys.modules, "distributed", None)
    return ["boston", "--space", "mlp", "--cluster", "local"]


# The options of the shared boston/mlp study (conftest's STUDY_ARGS) that its identity
# holds: a resume that keeps them is refused for the one option it changes.
SAME = ["--epochs", "2", "--cv", "1", "--seed", str(STUDY_SEED)]


def case(name: str, args: Args, keyword: str, marks: object = ()) -> object:
    """One row of the table: the id, the arguments (before --out) and the keyword."""
    return pytest.param(name, args, keyword, id=name, marks=marks)


CASES = [
    case("unknown-task", lambda c: ["nope"], "unknown task"),
    case("unknown-space", lambda c: ["boston", "--space", "nope"], "unknown space"),
    case("unknown-engine", lambda c: ["boston", "--engine", "nope"], "unknown engine"),
    case("unknown-algorithm", lambda c: ["boston", "--algorithm", "nope"], "unknown algorithm"),
    case(
        "algorithm-of-the-other-engine",
        lambda c: ["boston", "--engine", "keras-tuner", "--algorithm", "tpe"],
        "unknown algorithm 'tpe'",
    ),
    case("unknown-pruner", lambda c: ["boston", "--pruner", "nope"], "unknown pruner"),
    case(
        "pbt-on-keras-tuner",
        lambda c: ["boston", "--space", "mlp", "--engine", "keras-tuner", "--algorithm", "pbt"],
        "'pbt' is for the optuna engine",
    ),
    case(
        "pbt-with-a-pruner",
        lambda c: ["boston", "--space", "mlp", "--algorithm", "pbt", "--pruner", "median"],
        "does not apply to --algorithm pbt",
    ),
    case(
        "pbt-quantile-over-a-half",
        lambda c: ["boston", "--space", "mlp", "--algorithm", "pbt", "--pbt-quantile", "0.6"],
        "--pbt-quantile must be at most 0.5",
    ),
    case(
        "pbt-with-the-keras-trainer",
        lambda c: ["boston", "--space", "mlp", "--algorithm", "pbt", "--trainer", "keras"],
        "trains with the numpy trainer",
    ),
    case(
        "keras-tuner-with-median-pruner",
        lambda c: ["boston", "--engine", "keras-tuner", "--pruner", "median"],
        "pruner 'median'",
    ),
    case(
        "keras-tuner-with-wilcoxon-pruner",
        lambda c: ["boston", "--engine", "keras-tuner", "--pruner", "wilcoxon"],
        "pruner 'wilcoxon' is for the optuna engine",
    ),
    case(
        "wilcoxon-pruner-on-a-holdout",
        lambda c: ["boston", "--space", "mlp", "--pruner", "wilcoxon", "--cv", "1"],
        "use --cv 4 or more, or another pruner",
    ),
    case("trials-zero", lambda c: ["boston", "--trials", "0"], "--trials"),
    case("cluster-without-the-extra", without_dask, "pip install 'search[dask]'"),
    case(
        "cluster-not-an-address",
        lambda c: ["boston", "--cluster", "nowhere"],
        "no Dask scheduler address",
    ),
    case(
        "bench-cluster-not-an-address",
        lambda c: ["bench", "--suite", "small", "--cluster", "tcp://host"],
        "no Dask scheduler address",
    ),
    case("population-zero", lambda c: ["boston", "--population", "0"], "--population"),
    case("ensemble-zero", lambda c: ["boston", "--ensemble", "0"], "--ensemble"),
    case(
        "ensemble-size-negative", lambda c: ["boston", "--ensemble-size", "-1"], "--ensemble-size"
    ),
    case(
        "ensemble-size-fraction", lambda c: ["boston", "--ensemble-size", "2.5"], "--ensemble-size"
    ),
    case("trials-negative", lambda c: ["boston", "--trials", "-1"], "--trials"),
    case("epochs-not-a-number", lambda c: ["boston", "--epochs", "abc"], "--epochs"),
    case("patience-negative", lambda c: ["boston", "--patience", "-3"], "--patience"),
    case(
        "validation-split-above-1",
        lambda c: ["boston", "--validation-split", "1.5"],
        "--validation",
    ),
    case("too-many-folds", lambda c: ["linear", "--cv", "1000"], "too many folds"),
    case("space-does-not-fit-task", lambda c: ["boston", "--space", "logistic"], "does not fit"),
    case(
        "space-file-missing",
        lambda c: ["boston", "--space", str(c.tmp / "missing.py")],
        "does not exist",
    ),
    case(
        "space-file-syntax-error",
        lambda c: ["boston", "--space", str(c.file("broken.py", SYNTAX_ERROR))],
        "syntax error",
    ),
    case(
        "space-file-without-space-class",
        lambda c: ["boston", "--space", str(c.file("empty_space.py", NO_SPACE_CLASS))],
        "subclass",
    ),
    case(
        "space-file-raises-on-import",
        lambda c: ["boston", "--space", str(c.file("boom.py", RAISES_ON_IMPORT))],
        "failed to import",
    ),
    case("csv-without-data", lambda c: ["csv", "--target", "y"], "--data"),
    case("csv-option-on-builtin-task", lambda c: ["boston", "--target", "y"], "does not take"),
    case(
        "csv-missing-target-column",
        lambda c: [*c.csv(good_rows())[:-1], "nope"],
        "target column 'nope'",
    ),
    case(
        "csv-empty-file",
        lambda c: ["csv", "--data", str(c.file("e.csv", "")), "--target", "y"],
        "empty",
    ),
    case("csv-header-only", lambda c: c.csv([]), "no data rows"),
    case("csv-non-numeric-feature", lambda c: c.csv(replaced(4, "x,1,0")), "not numeric"),
    case("csv-missing-value", lambda c: c.csv(replaced(5, ",1,0")), "missing value"),
    case(
        "csv-one-class-target", lambda c: c.csv([f"{i},{i},1" for i in range(12)]), "single value"
    ),
    case("csv-infinite-value", lambda c: c.csv(replaced(3, "inf,1,0")), "infinite"),
    case("csv-unknown-kind", lambda c: [*c.csv(good_rows()), "--kind", "bogus"], "--kind"),
    case(
        "study-name-with-slash",
        lambda c: ["boston", "--space", "mlp", "--study", "a/b"],
        "invalid study",
    ),
    case(
        "csv-repeated-column",
        lambda c: c.csv(good_rows(), header="a,a,y"),
        "repeats column 'a'",
    ),
    case(
        "study-name-empty",
        lambda c: ["boston", "--space", "mlp", "--study", ""],
        "invalid study name ''",
    ),
    case(
        "study-name-dot-dot",
        lambda c: ["boston", "--space", "mlp", "--study", ".."],
        "invalid study",
    ),
    case(
        "unknown-objective", lambda c: ["boston", "--objective", "val_bogus"], "unknown objective"
    ),
    case("out-under-a-regular-file", unwritable, "not writable"),
    case("out-under-proc", under_proc, "not writable"),
    case(
        "resume-with-another-engine",
        lambda c: [
            "boston",
            "--space",
            "mlp",
            "--engine",
            "keras-tuner",
            "--study",
            c.with_study().study,
        ],
        "engine",
    ),
    case(
        "fresh-with-a-space-that-does-not-fit",
        lambda c: ["boston", "--space", "logistic", "--study", c.with_study().study, "--fresh"],
        "does not fit",
    ),
    case(
        "resume-with-other-epochs",
        lambda c: ["boston", "--space", "mlp", "--study", c.with_study().study, "--epochs", "9"],
        "was run with --epochs 2; this run asks --epochs 9: pass --fresh to start over or "
        "--study NAME for a new study",
    ),
    case(
        "resume-with-other-patience",
        lambda c: [
            "boston",
            "--space",
            "mlp",
            "--study",
            c.with_study().study,
            *SAME,
            "--patience",
            "3",
        ],
        "was run with --patience 20; this run asks --patience 3",
    ),
    case(
        "resume-with-another-space-of-the-same-name",
        lambda c: [
            "boston",
            "--space",
            str(c.file("mlp.py", WIDE)),
            "--study",
            c.with_study().study,
            *SAME,
        ],
        "was run with another space 'mlp': it declared 'activation' "
        "(Choice ['relu', 'tanh', 'elu'])",
    ),
    case(
        "space-whose-first-build-raises",
        lambda c: ["boston", "--space", str(c.file("empty.py", EMPTY_RANGE))],
        "min_value 16 is greater than the max_value 8",
    ),
    case(
        "space-whose-first-build-raises-keras-tuner",
        lambda c: [
            "boston",
            "--space",
            str(c.file("empty.py", EMPTY_RANGE)),
            "--engine",
            "keras-tuner",
        ],
        "min_value 16 is greater than the max_value 8",
    ),
    case("leaderboard-without-studies", lambda c: ["leaderboard"], "no finished studies"),
    case(
        "predict-without-study",
        lambda c: ["predict", "boston", "--data", str(boston_features(c))],
        "no finished study",
    ),
    case(
        "predict-without-a-feature-column",
        lambda c: [
            "predict",
            "boston",
            "--data",
            str(boston_features(c, drop=("CRIM",))),
            "--study",
            c.with_study().study,
            "--output",
            str(c.tmp / "predictions.csv"),
        ],
        "lacks feature column 'CRIM'",
    ),
    case(
        "predict-a-file-without-header",
        lambda c: [
            "predict",
            "boston",
            "--data",
            str(boston_features(c, header=False)),
            "--study",
            c.with_study().study,
            "--output",
            str(c.tmp / "predictions.csv"),
        ],
        "has no header row",
    ),
    case(
        "csv-without-header",
        lambda c: c.csv(good_rows(), header="0.5,1,0"),
        "has no header row",
    ),
    case(
        "bench-unknown-contender",
        lambda c: ["bench", "boston", "--space", "mlp", "--contenders", "optuna:tpe,optuna:nope"],
        "unknown contender 'optuna:nope'",
    ),
    case(
        "bench-contender-twice",
        lambda c: ["bench", "boston", "--space", "mlp", "--contenders", "optuna:tpe,optuna:tpe"],
        "twice",
    ),
    case(
        "bench-seeds-zero",
        lambda c: ["bench", "boston", "--space", "mlp", "--seeds", "0"],
        "--seeds",
    ),
    case(
        "bench-trials-and-time-budget",
        lambda c: ["bench", "boston", "--space", "mlp", "--trials", "3", "--time-budget", "60"],
        "not allowed with",
    ),
    case(
        "bench-time-budget-not-a-number",
        lambda c: ["bench", "boston", "--space", "mlp", "--time-budget", "soon"],
        "--time-budget",
    ),
    case(
        "bench-space-does-not-fit-task",
        lambda c: ["bench", "boston", "--space", "logistic", "--contenders", "optuna:tpe"],
        "does not fit",
    ),
    case(
        "bench-unknown-pruner",
        lambda c: ["bench", "boston", "--space", "mlp", "--pruner", "nope"],
        "unknown pruner",
    ),
    case(
        "bench-suite-missing",
        lambda c: ["bench", "--suite", str(c.tmp / "none.toml")],
        "neither a built-in suite",
    ),
    case(
        "bench-suite-unknown-key",
        lambda c: [
            "bench",
            "--suite",
            str(c.file("s.toml", "[[entry]]\ntask = 'wine'\nspace = 'mlp'\nepoch = 3\n")),
        ],
        "unknown key 'epoch'",
    ),
    case(
        "bench-suite-unknown-task",
        lambda c: ["bench", "--suite", str(c.file("s.toml", "[[entry]]\ntask='x'\nspace='mlp'\n"))],
        "unknown task 'x'",
    ),
    case("bench-suite-and-task", lambda c: ["bench", "boston", "--suite", "small"], "leave out"),
    case("bench-jobs-zero", lambda c: ["bench", "--suite", "small", "--jobs", "0"], "--jobs"),
    case("report-without-study", lambda c: ["report", "boston"], "no finished study"),
    case(
        "report-unknown-study",
        lambda c: ["report", "boston", "--study", "nope"],
        "no study 'nope'",
    ),
]


Tree = dict[str, tuple[int, int]] | None


def tree(root: Path) -> Tree:
    """Every file under ``root`` with its size and mtime; None when ``root`` does not exist."""
    if not root.exists():
        return None
    return {
        str(path.relative_to(root)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(root.rglob("*"))
    }


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 20
    assert len({case.id for case in CASES}) == len(CASES)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("name", "args", "keyword"), CASES)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    name: str, args: Args, keyword: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    ctx = Ctx(tmp=tmp_path / "inputs", out=tmp_path / "out", request=request)
    ctx.tmp.mkdir()
    argv = [*args(ctx), "--out", str(ctx.out)]
    before = tree(ctx.out)
    proc = call_cli(argv)

    assert proc.returncode == 2, describe(proc)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, describe(proc)
    assert lines[0].startswith("search: error: "), describe(proc)
    assert keyword.lower() in lines[0].lower(), describe(proc)
    assert "Traceback" not in proc.stderr + proc.stdout
    after = tree(ctx.out)
    assert after == before or (before is None and after == {}), f"{name} wrote {after}"
    assert not (ctx.tmp / "predictions.csv").exists()
