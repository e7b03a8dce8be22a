"""The tutorial's small MLP with dropout, with its depth and widths made tunable."""

from __future__ import annotations

from typing import Any

import keras

from search.space import Space

MAX_LAYERS = 3


class MLP(Space):
    """1-3 hidden Dense layers; units and dropout per layer exist only for layers in use."""

    kinds = ("regression", "binary", "multiclass")
    description = "MLP with dropout; tunes 1-3 layers, units, activation, dropout, L2, optimizer"
    shown_first = ("layers", "units_0", "optimizer", "learning_rate")

    def build(self, hp: Any) -> keras.Model:
        layers = hp.Int("layers", 1, MAX_LAYERS, default=2)
        activation = hp.Choice("activation", ["relu", "tanh", "elu"], default="relu")
        l2 = hp.Float("l2", 1e-6, 1e-2, sampling="log", default=1e-6)
        inputs = keras.Input((self.task.n_features,), name="features")
        x = inputs
        for i in range(layers):
            # Layer i exists when there are more than i layers: its units and dropout are
            # conditional, so the samplers never see values of layers that are not built.
            with hp.conditional_scope("layers", list(range(i + 1, MAX_LAYERS + 1))):
                units = hp.Int(f"units_{i}", 16, 256, step=2, sampling="log", default=64)
                # A step exact in binary: with 0.1, keras-tuner's rounding stops at 0.4 while
                # Optuna reaches 0.5, and the two engines would search different ranges.
                dropout = hp.Float(f"dropout_{i}", 0.0, 0.5, step=0.125, default=0.125)
            x = keras.layers.Dense(
                units,
                activation=activation,
                kernel_regularizer=keras.regularizers.L2(l2),
                name=f"dense_{i}",
            )(x)
            if dropout:
                x = keras.layers.Dropout(dropout, name=f"dropout_{i}")(x)
        outputs = self.output_layer()(x)
        return self.compile(keras.Model(inputs, outputs, name="mlp"), hp)
