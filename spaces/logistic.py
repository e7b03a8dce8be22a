"""Logistic regression: sigmoid for binary tasks, softmax regression for multiclass ones."""

from __future__ import annotations

from typing import Any

import keras

from search.space import Space


class Logistic(Space):
    """One dense layer with a sigmoid or softmax, with tuned L1/L2 penalties."""

    kinds = ("binary", "multiclass")
    description = "logistic / softmax regression; tunes optimizer, lr, clipping, L1/L2, batch"

    def build(self, hp: Any) -> keras.Model:
        l1 = hp.Float("l1", 1e-6, 1e-1, sampling="log", default=1e-6)
        l2 = hp.Float("l2", 1e-6, 1e-1, sampling="log", default=1e-6)
        inputs = keras.Input((self.task.n_features,), name="features")
        outputs = self.output_layer(kernel_regularizer=keras.regularizers.L1L2(l1, l2))(inputs)
        return self.compile(keras.Model(inputs, outputs, name="logistic"), hp)
