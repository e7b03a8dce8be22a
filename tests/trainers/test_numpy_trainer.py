"""The numpy trainer's own parts (search/trainers/numpy/), on every backend.

What every trainer keeps, this one's agreement with Keras ``fit`` included, is tested in
``test_trainers.py``; its populations in ``test_population.py``. Here: its network and
training loop, and what it refuses (those models go to ``fit``). The CLI's choice of Keras'
numpy backend for it, in fresh processes, is tested in ``tests/system/test_numpy_backend.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import pytest
from trainer_cases import small_build

import search.trainers
from search.trainers.numpy import NumpyTrainer
from search.trainers.numpy.loop import ahead, background, layers
from search.trainers.numpy.loop import epoch as loop
from search.trainers.numpy.members import Lockstep
from search.trainers.numpy.net import Net


def test_a_member_whose_rows_ran_out_sits_the_step_out() -> None:
    """Folds whose sizes differ have different step counts: the shorter one must not move."""
    build = small_build(batch=19, learning_rate=0.05)
    model = build()[0]
    net = Net(model)
    x = np.random.default_rng(0).normal(size=(20, 13)).astype(np.float32)
    y = x @ np.arange(13, dtype=np.float32)
    empty = np.arange(0)
    alone = Lockstep(net, [net.weights(model)], x, y, [(np.arange(19), empty)], 19, seed=1)
    together = Lockstep(
        net,
        [net.weights(model)] * 2,
        x,
        y,
        [(np.arange(19), empty), (np.arange(20), empty)],
        19,
        seed=1,
    )
    alone.epoch()
    together.epoch()
    # 19 rows make one full batch (order does not matter); 20 rows make two steps.
    assert together.step.tolist() == [1, 2]
    for single, pair in zip(alone.params, together.params, strict=True):
        np.testing.assert_allclose(pair[0], single[0], rtol=1e-5, atol=1e-7)
        assert not np.allclose(pair[1], single[0])


def test_the_loop_is_compiled_ahead_for_the_one_signature_it_is_called_with() -> None:
    """The run command compiles the loop before its first trial (``compile_ahead``): for
    the types the trainer passes, so that training with dropout, several members, a member
    stopped and validation compiles nothing more (another signature would be compiled
    again, seconds of a new install's first run)."""
    search.trainers.compile_ahead("numpy")
    background.wait()
    assert loop.train_epoch.signatures == [ahead.TRAIN_EPOCH]
    assert loop.evaluate.signatures == [ahead.EVALUATE]
    build = small_build(dropout=0.25, batch=8)
    model = build()[0]
    net = Net(model)
    x = np.random.default_rng(0).normal(size=(40, 13)).astype(np.float32)
    y = x @ np.arange(13, dtype=np.float32)
    folds = [(np.arange(30), np.arange(30, 40)), (np.arange(10, 40), np.arange(10))]
    lockstep = Lockstep(net, [net.weights(model), net.drawn(1)], x, y, folds, 8, seed=1)
    lockstep.epoch()
    lockstep.keep([1])
    for _ in lockstep.epochs(3):
        pass
    assert loop.train_epoch.signatures == [ahead.TRAIN_EPOCH]
    assert loop.evaluate.signatures == [ahead.EVALUATE]


@pytest.mark.slow
def test_a_new_install_compiles_the_loop_in_a_process_of_its_own(tmp_path: Path) -> None:
    """With an empty cache, ``compile_ahead`` compiles the loop in a process of its own,
    which writes numba's cache; this process then loads both entry points from it rather
    than compiling them again (numba's own counts of cache hits and misses)."""
    script = (
        "import search.trainers\n"
        "from search.trainers.numpy.loop import background, epoch\n"
        "search.trainers.compile_ahead('numpy')\n"
        "background.wait()\n"
        "for entry in (epoch.train_epoch, epoch.evaluate):\n"
        "    print(sum(entry.stats.cache_hits.values()), sum(entry.stats.cache_misses.values()))\n"
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["1", "0", "1", "0"], done.stderr
    written = {p.name.split("-")[0] for p in tmp_path.rglob("*.nbi")}
    assert {"epoch.train_epoch", "epoch.evaluate"} <= written


@pytest.mark.parametrize(
    ("code", "reference"),
    [(2, np.tanh), (3, lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0))))],
    ids=["tanh", "elu"],
)
def test_the_loop_activations_round_as_float32_does(
    code: int, reference: Callable[[np.ndarray], np.ndarray]
) -> None:
    """tanh and elu are computed from one exp in float64 (libm's float32 tanh and expm1 cost
    up to five times as much): over signs, tiny, ordinary and overflowing inputs each result
    is the float64 value rounded to float32, within one unit in the last place."""
    rng = np.random.default_rng(0)
    powers = np.float32(10.0) ** -np.arange(1, 38, dtype=np.float32)
    z = np.concatenate(
        [
            rng.normal(0, 3, 20_000),
            powers,
            -powers,
            [0.0, 1e-4, -1e-4, 20, -20, 100, -100, 3e38, -3e38],
        ]
    ).astype(np.float32)
    got = np.array([layers.activate(code, value) for value in z], dtype=np.float32)
    want = reference(z.astype(np.float64)).astype(np.float32)
    ulps = np.abs(got.astype(np.float64) - want) / np.spacing(np.abs(want))
    assert np.isfinite(got).all() and ulps.max() <= 1.0, z[np.argmax(ulps)]


@pytest.mark.parametrize("stop_after", [None, 4])
def test_one_member_trains_ahead_to_the_same_bits(
    stop_after: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A single member's next epoch trains on the spare core while this one is validated
    and read: every log and weight must equal those of epoch after epoch on one core, and a
    caller that stops the member gets no further epoch (the one trained ahead is waited for)."""
    build = small_build(units=64, dropout=0.25, batch=16, learning_rate=0.01)
    model = build()[0]
    net = Net(model)
    x = np.random.default_rng(0).normal(size=(120, 13)).astype(np.float32)
    y = x @ np.arange(13, dtype=np.float32)
    rows = [(np.arange(96), np.arange(96, 120))]

    def run(threads: str) -> tuple[list[np.ndarray], np.ndarray, int]:
        monkeypatch.setenv("NUMBA_NUM_THREADS", threads)
        trainer = Lockstep(net, [net.weights(model)], x, y, rows, 16, seed=3)
        steps = trainer.step  # the member's update count, which keep() leaves behind
        seen = []
        for epoch, logs in enumerate(trainer.epochs(10)):
            seen.append(logs.copy())
            if epoch + 1 == stop_after:
                trainer.keep([])
        return seen, trainer.flat, int(steps[0])

    ahead, ahead_weights, ahead_steps = run("2")
    alone, alone_weights, alone_steps = run("1")
    assert len(ahead) == len(alone) == (stop_after or 10)
    for mine, theirs in zip(ahead, alone, strict=True):
        np.testing.assert_array_equal(mine, theirs)
    np.testing.assert_array_equal(ahead_weights, alone_weights)  # (none left after a stop)
    # 96 rows make 6 steps an epoch; after a stop, the epoch trained ahead has ended whole.
    assert alone_steps == 6 * len(alone)
    assert ahead_steps == 6 * (len(ahead) + (stop_after is not None))


def test_variables_stay_views_of_the_flat_parameters() -> None:
    """The compiled loop updates the flat (members x parameters) array; the weights a caller
    reads back are per-variable views of it, which must never silently become copies."""
    build = small_build(batch=8, learning_rate=0.05)
    model = build()[0]
    net = Net(model)
    x = np.random.default_rng(0).normal(size=(24, 13)).astype(np.float32)
    y = x @ np.arange(13, dtype=np.float32)
    rows = [(np.arange(16), np.arange(16, 24))] * 3
    trainer = Lockstep(net, [net.weights(model)] * 3, x, y, rows, 8, seed=1)
    for _ in range(2):
        trainer.epoch()
        assert all(np.shares_memory(view, trainer.flat) for view in trainer.params)
        assert sum(view[0].size for view in trainer.params) == trainer.flat.shape[1]
        trainer.keep([0, 2])  # the next epoch trains two members
    kernel = trainer.params[0]
    np.testing.assert_array_equal(kernel[1].reshape(-1), trainer.flat[1, : kernel[1].size])


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        (keras.layers.BatchNormalization, "BatchNormalization"),
        (lambda: keras.layers.Dense(8, activation="softplus"), "softplus"),
    ],
    ids=["batchnorm", "softplus"],
)
def test_unsupported_layers_are_named(extra: Callable[[], keras.layers.Layer], reason: str) -> None:
    """What the numpy trainer cannot train says why (``test_trainers.py`` checks that such a
    model is trained by ``fit``)."""
    build = small_build(extra=extra())
    assert reason in (NumpyTrainer().unsupported(build()[0], None) or "")


def test_optimizers_outside_keras_rules_are_refused() -> None:
    build = small_build(optimizer=lambda rate: keras.optimizers.Adam(rate, amsgrad=True))
    assert "AMSGrad" in (NumpyTrainer().unsupported(build()[0], None) or "")
    build = small_build(optimizer=keras.optimizers.Adagrad)
    assert "Adagrad" in (NumpyTrainer().unsupported(build()[0], None) or "")
