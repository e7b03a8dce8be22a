"""A study's seed decides its search, and two seeds give two searches: a benchmark's seeds
are independent draws of an algorithm, not one search shifted by a trial."""

from __future__ import annotations

from pathlib import Path

import search

TRIALS = 6


def proposals(out: Path, algorithm: str, seed: int) -> list[tuple[object, ...]]:
    study = search.Study(
        "boston",
        "mlp",
        algorithm=algorithm,
        seed=seed,
        epochs=1,
        cv=1,
        top_k=0,
        ensemble_size=0,
        tensorboard=False,
        out=str(out / str(seed)),
    )
    trials = study.run(TRIALS, progress=False).leaderboard.sort_values("trial")
    columns = ["learning_rate", "units_0", "l2", "optimizer"]
    return [tuple(row) for row in trials[columns].itertuples(index=False)]


def test_two_seeds_share_no_configuration(tmp_path: Path) -> None:
    # Random search (and TPE's first trials, which are random search's): every sampler is
    # reseeded per trial the same way.
    first, second = (proposals(tmp_path, "random", seed) for seed in (0, 1))
    # Reseeded with seed + trials held, seed 1's trial t was seed 0's trial t + 1.
    assert not set(first) & set(second), (first, second)
    assert proposals(tmp_path / "again", "random", 0) == first
