"""HPOBench's MLP grid (Eggensperger et al., 2021): depth, width, batch, L2, learning rate."""

from __future__ import annotations

from search.tabular_space import TabularSpace


class HPOBench(TabularSpace):
    """The 30000 configurations of the hpobench-* tables (5 runs each)."""

    table = "hpobench"
    description = "tabular HPOBench MLP grid: depth, width, batch size, L2 alpha, learning rate"
    shown_first = ("learning_rate_init", "width", "depth")
    grid = {
        "alpha": (
            1e-8,
            7.742637e-8,
            5.994842e-7,
            4.641589e-6,
            3.5938137e-5,
            2.7825593e-4,
            2.1544348e-3,
            1.6681006e-2,
            1.2915497e-1,
            1.0,
        ),
        "batch_size": (4, 6, 10, 16, 25, 40, 64, 101, 161, 256),
        "depth": (1, 2, 3),
        "learning_rate_init": (
            1e-5,
            3.5938137e-5,
            1.2915497e-4,
            4.641589e-4,
            1.6681006e-3,
            5.9948424e-3,
            2.1544347e-2,
            7.742637e-2,
            2.7825594e-1,
            1.0,
        ),
        "width": (16, 25, 40, 64, 101, 161, 256, 406, 645, 1024),
    }
