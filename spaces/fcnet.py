"""HPOLib's FC-Net grid (Klein & Hutter, 2019): a two-layer MLP's 9 hyperparameters."""

from __future__ import annotations

from search.tabular_space import TabularSpace


class FCNet(TabularSpace):
    """The 62208 configurations of the fcnet-* tables (4 runs each)."""

    table = "fcnet"
    description = "tabular FC-Net grid: 2 layers' units, activations, dropout; lr, schedule, batch"
    shown_first = ("init_lr", "n_units_1", "n_units_2", "batch_size")
    grid = {
        "activation_fn_1": ("relu", "tanh"),
        "activation_fn_2": ("relu", "tanh"),
        "batch_size": (8, 16, 32, 64),
        "dropout_1": (0.0, 0.3, 0.6),
        "dropout_2": (0.0, 0.3, 0.6),
        "init_lr": (5e-4, 1e-3, 5e-3, 1e-2, 5e-2, 1e-1),
        "lr_schedule": ("cosine", "const"),
        "n_units_1": (16, 32, 64, 128, 256, 512),
        "n_units_2": (16, 32, 64, 128, 256, 512),
    }
