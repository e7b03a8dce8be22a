"""Linear regression trained by gradient descent: the tutorial's Boston and y = 5x + 10 model."""

from __future__ import annotations

from typing import Any

import keras

from search.space import Space


class Linear(Space):
    """One dense unit over the standardised features, with tuned L1/L2 penalties."""

    kinds = ("regression",)
    description = "linear regression (one Dense unit); tunes optimizer, lr, clipping, L1/L2, batch"

    def build(self, hp: Any) -> keras.Model:
        l1 = hp.Float("l1", 1e-6, 1e-1, sampling="log", default=1e-6)
        l2 = hp.Float("l2", 1e-6, 1e-1, sampling="log", default=1e-6)
        inputs = keras.Input((self.task.n_features,), name="features")
        outputs = self.output_layer(kernel_regularizer=keras.regularizers.L1L2(l1, l2))(inputs)
        return self.compile(keras.Model(inputs, outputs, name="linear"), hp)
