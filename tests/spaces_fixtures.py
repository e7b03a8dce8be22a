"""The search spaces tests write into files, as a user would: each constant is the whole text
of one space module, passed to ``--space FILE`` (or ``search.Study(task, "FILE")``) after
:func:`write_space` has written it.

Two kinds: the harness's own :class:`search.space.Space` subclasses (their modules start with
``SPACE_IMPORTS``), and keras-tuner's ``build_model(hp)`` functions and HyperModels as
keras-tuner's README and guides publish them. A test that needs a variant (another learning
rate, a fixed choice) replaces text in a constant; each constant says what it is for.
"""

from __future__ import annotations

from pathlib import Path

# What every Space module of the harness's kind imports.
SPACE_IMPORTS = (
    "from __future__ import annotations\n\n"
    "import keras\n\n"
    "from search.space import Space, loss_for, metrics_for\n\n\n"
)


def write_space(path: Path, source: str) -> Path:
    """Write one space module's ``source`` to ``path``; returns ``path``."""
    path.write_text(source, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- Space subclasses

# A one-hidden-layer regression space defined in a file of its own (the README's example
# defines the same class in its own code block; tests/study/test_api.py compares the two).
WIDE = """
import keras

import search


class Wide(search.Space):
    kinds = ("regression",)

    def build(self, hp):
        inputs = keras.Input((self.task.n_features,))
        units = hp.Int("units", 16, 128, step=16)
        x = keras.layers.Dense(units, activation=hp.Choice("act", ["relu", "tanh"]))(inputs)
        return self.compile(keras.Model(inputs, self.output_layer()(x)), hp)
"""

# The MLP space where each trial's seed decides how the trial ends (the TensorBoard tests).
FATED = (
    SPACE_IMPORTS
    + '''import random

from search.spaces.mlp import MLP


class Fated(MLP):
    """The MLP space, where each trial's seed decides how the trial ends.

    The trainer seeds Python's random with the trial's seed just before it builds the model,
    so the first draw here is a function of the study seed and the trial number alone, not
    of the sampler. A draw under 0.25 sets every weight to 1e30: the first loss overflows
    and the trial fails. One under 0.5 freezes a huge output bias (learning rate 0): the
    trial is far worse than any other, so a pruner stops it. Other trials train with Adam,
    whatever optimizer was sampled, so that none of them diverges by chance.
    """

    def build(self, hp):
        fate = random.random()
        model = super().build(hp)
        if fate < 0.25:
            for weight in model.trainable_weights:
                weight.assign(keras.ops.full(weight.shape, 1e30))
            return model
        if fate < 0.5:
            model.get_layer("output").bias.assign([1e4])
        optimizer = keras.optimizers.SGD(0.0) if fate < 0.5 else keras.optimizers.Adam(1e-2)
        model.compile(optimizer, loss_for("regression"), metrics=metrics_for("regression"))
        return model
'''
)

# Softmax regression from zero weights: its validation accuracy moves over the epochs (a
# maximised objective).
SOFTMAX = (
    SPACE_IMPORTS
    + """
class Softmax(Space):
    kinds = ("multiclass",)
    description = "softmax regression from zero weights, plain SGD"

    def build(self, hp):
        hp.Choice("batch_size", [64])
        inputs = keras.Input((self.task.n_features,))
        outputs = self.output_layer(kernel_initializer="zeros")(inputs)
        model = keras.Model(inputs, outputs)
        model.compile(
            optimizer=keras.optimizers.SGD(0.01),
            loss=loss_for("multiclass"),
            metrics=metrics_for("multiclass"),
        )
        return model
"""
)

# A hyperparameter named like a leaderboard column (epochs).
COLLIDING = (
    SPACE_IMPORTS
    + """
class Colliding(Space):
    kinds = ("regression",)
    description = "tunes a hyperparameter called epochs"

    def build(self, hp):
        hp.Int("epochs", 5, 9, step=2)
        hp.Choice("batch_size", [64])
        inputs = keras.Input((self.task.n_features,))
        model = keras.Model(inputs, self.output_layer()(inputs))
        model.compile("adam", loss=loss_for("regression"), metrics=metrics_for("regression"))
        return model
"""
)

# Plain SGD over the learning rates that replace {rates}: 1e6 blows the loss up to NaN.
DIVERGING = (
    SPACE_IMPORTS
    + """
class Diverging(Space):
    kinds = ("regression",)
    description = "plain SGD; a learning rate of 1e6 blows the loss up to NaN"

    def build(self, hp):
        rate = hp.Choice("learning_rate", [{rates}])
        units = hp.Int("units", 4, 64)  # enough configurations for keras-tuner to go on
        hp.Choice("batch_size", [64])
        inputs = keras.Input((self.task.n_features,))
        hidden = keras.layers.Dense(units, activation="relu")(inputs)
        model = keras.Model(inputs, self.output_layer()(hidden))
        model.compile(
            optimizer=keras.optimizers.SGD(rate),
            loss=loss_for("regression"),
            metrics=metrics_for("regression"),
        )
        return model
"""
)

# Half of the configurations diverge at once: SGD at a learning rate of 1e6 where the
# sampler draws diverge=True.
HALF_DIVERGING = (
    SPACE_IMPORTS
    + """
class Diverging(Space):
    kinds = ("regression",)

    def build(self, hp):
        diverge = hp.Boolean("diverge")
        units = hp.Int("units", 4, 128, step=4)
        inputs = keras.Input((self.task.n_features,))
        hidden = keras.layers.Dense(units, activation="relu")(inputs)
        model = keras.Model(inputs, self.output_layer()(hidden))
        rate = 1e6 if diverge else 1e-2
        model.compile(keras.optimizers.SGD(rate), loss_for("regression"),
                      metrics=metrics_for("regression"))
        hp.Fixed("batch_size", 64)
        return model
"""
)

# Trains well on its first build (the trial) and diverges on every later one (the
# retraining of the best); tests replace the condition to choose which builds diverge.
RETRAIN_DIVERGES = (
    SPACE_IMPORTS
    + """
BUILDS = []


class RetrainDiverges(Space):
    kinds = ("regression",)
    description = "trains well during the search; the retraining of the best diverges"

    def build(self, hp):
        hp.Choice("batch_size", [64])
        BUILDS.append(1)
        # Build 1 lists the hyperparameters (the study's identity), build 2 is the trial.
        rate = 1e-3 if len(BUILDS) <= 2 else 1e6
        inputs = keras.Input((self.task.n_features,))
        model = keras.Model(inputs, self.output_layer()(inputs))
        model.compile(
            optimizer=keras.optimizers.SGD(rate),
            loss=loss_for("regression"),
            metrics=metrics_for("regression"),
        )
        return model
"""
)

# Two multiclass spaces far apart in accuracy: one that learns, one that never moves.
ACCURATE = (
    SPACE_IMPORTS
    + """
class Accurate(Space):
    kinds = ("multiclass",)
    description = "softmax regression that learns"

    def build(self, hp):
        hp.Choice("batch_size", [64])
        inputs = keras.Input((self.task.n_features,))
        model = keras.Model(inputs, self.output_layer()(inputs))
        model.compile(
            optimizer=keras.optimizers.Adam(0.01),
            loss=loss_for("multiclass"),
            metrics=metrics_for("multiclass"),
        )
        return model
"""
)

CONSTANT = (
    SPACE_IMPORTS
    + """
class Constant(Space):
    kinds = ("multiclass",)
    description = "zero weights that never move: uniform probabilities, always class 0"

    def build(self, hp):
        hp.Choice("batch_size", [64])
        inputs = keras.Input((self.task.n_features,))
        outputs = self.output_layer(kernel_initializer="zeros")(inputs)
        model = keras.Model(inputs, outputs)
        model.compile(
            optimizer=keras.optimizers.SGD(0.0),
            loss=loss_for("multiclass"),
            metrics=metrics_for("multiclass"),
        )
        return model
"""
)

# Space files that are not spaces (refused with one line).
SYNTAX_ERROR = "def build(:\n    pass\n"
NO_SPACE_CLASS = "VALUE = 1\n"
RAISES_ON_IMPORT = "raise RuntimeError('boom')\n"

# ------------------------------------------------------------------ keras-tuner's own spaces

# keras-tuner's README quick start, as published.
QUICKSTART = """\
import keras_tuner
import keras

def build_model(hp):
  model = keras.Sequential()
  model.add(keras.layers.Dense(
      hp.Choice('units', [8, 16, 32]),
      activation='relu'))
  model.add(keras.layers.Dense(1, activation='relu'))
  model.compile(loss='mse')
  return model
"""

# The getting-started guide's larger function (LOSS is replaced by the loss a test needs).
GUIDE = """\
import keras
from keras import layers


def build_model(hp):
    model = keras.Sequential()
    model.add(layers.Flatten())
    # Tune the number of layers.
    for i in range(hp.Int("num_layers", 1, 3)):
        model.add(
            layers.Dense(
                # Tune number of units separately.
                units=hp.Int(f"units_{i}", min_value=32, max_value=512, step=32),
                activation=hp.Choice("activation", ["relu", "tanh"]),
            )
        )
    if hp.Boolean("dropout"):
        model.add(layers.Dropout(rate=0.25))
    model.add(layers.Dense(10, activation="softmax"))
    learning_rate = hp.Float("lr", min_value=1e-4, max_value=1e-2, sampling="log")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="LOSS",
        metrics=["accuracy"],
    )
    return model
"""

# A HyperModel whose fit tunes the epochs and the batch size, as keras-tuner's guide shows.
TUNED_FIT = """\
import keras
import keras_tuner


class Tuned(keras_tuner.HyperModel):
    def build(self, hp):
        model = keras.Sequential(
            [keras.layers.Dense(hp.Int("units", 8, 32, step=8), activation="relu"),
             keras.layers.Dense(1)]
        )
        model.compile(optimizer="adam", loss="mse")
        return model

    def fit(self, hp, model, *args, **kwargs):
        kwargs["epochs"] = hp.Int("epochs", 2, 4)
        return model.fit(*args, batch_size=hp.Choice("batch_size", [16, 64]), **kwargs)
"""

# keras-tuner's guide tunes training in fit by passing the values to model.fit itself:
# epochs and batch size from hp, and a callback of its own. The harness's epochs and
# callbacks must not collide with them.
GUIDE_FIT = """\
import keras
import keras_tuner


class GuideFit(keras_tuner.HyperModel):
    def build(self, hp):
        model = keras.Sequential(
            [keras.layers.Dense(hp.Int("units", 8, 16, step=8), activation="relu"),
             keras.layers.Dense(1)]
        )
        model.compile(optimizer="adam", loss="mse")
        return model

    def fit(self, hp, model, *args, **kwargs):
        return model.fit(
            *args,
            epochs=hp.Int("n_epochs", 2, 3),
            batch_size=hp.Choice("batch_size", [16, 64]),
            callbacks=[keras.callbacks.TerminateOnNaN()],
            **kwargs,
        )
"""

# A HyperModel whose fit raises in every trial: a user's bug, not a diverging configuration.
FAILING_FIT = """\
import keras
import keras_tuner


class Failing(keras_tuner.HyperModel):
    def build(self, hp):
        model = keras.Sequential([keras.layers.Dense(hp.Int("units", 8, 64, step=8))])
        model.compile(optimizer="adam", loss="mse")
        return model

    def fit(self, hp, model, *args, **kwargs):
        raise RuntimeError("the user's fit is broken")
"""

# A space whose first build raises: its range is empty.
EMPTY_RANGE = WIDE.replace('hp.Int("units", 16, 128, step=16)', 'hp.Int("units", 16, 8)')
