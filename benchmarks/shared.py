"""Two hidden layers of 64 ReLU units with dropout; continuous settings vary."""

from __future__ import annotations

from typing import Any

import keras

from search.space import Space, loss_for, metrics_for


class Shared(Space):
    kinds = ("regression", "binary", "multiclass")
    description = "a fixed 64-64 MLP; tunes dropout, L2, Adam's learning rate and clipping"

    def build(self, hp: Any) -> keras.Model:
        l2 = hp.Float("l2", 1e-6, 1e-2, sampling="log")
        inputs = keras.Input((self.task.n_features,), name="features")
        x = inputs
        for i in range(2):
            x = keras.layers.Dense(
                64, "relu", kernel_regularizer=keras.regularizers.L2(l2), name=f"dense_{i}"
            )(x)
            rate = hp.Float(f"dropout_{i}", 0.1, 0.5, step=0.1)
            x = keras.layers.Dropout(rate, name=f"dropout_{i}")(x)
        model = keras.Model(inputs, self.output_layer()(x), name="shared")
        hp.Fixed("batch_size", 32)
        rate = hp.Float("learning_rate", 1e-4, 1e-1, sampling="log")
        clipnorm = hp.Choice("clipnorm", [0.0, 1.0, 5.0]) or None
        model.compile(
            optimizer=keras.optimizers.Adam(rate, clipnorm=clipnorm),
            loss=loss_for(self.task.kind),
            metrics=metrics_for(self.task.kind),
        )
        return model
