"""The tables the loop reads (built by :class:`search.trainers.numpy.tables.Tables`), and
the codes in them.

- ``layers`` (L, 7) int64: kernel offset, bias offset (-1: none), inputs, outputs, activation
  code, and the range [first, end) of the dropouts applied to the layer's input;
- ``drops`` (D,) int64: each dropout's first column in ``uniforms``;
- ``variables`` (V, 2) int64: each variable's offset and size in a member's flat vector;
- ``flags``: output kind, from logits, optimizer, nesterov, momentum, batch size;
- ``hyper`` float32: momentum, rho, beta_1, beta_2, epsilon, clip low, clip high.
"""

from __future__ import annotations

ACTIVATIONS = {"linear": 0, "relu": 1, "tanh": 2, "elu": 3, "sigmoid": 4}
OUTPUTS = {"linear": 0, "sigmoid": 1, "softmax": 2}
OPTIMIZERS = {"SGD": 0, "RMSprop": 1, "Adam": 2}
# A row's values: loss first, then the metric kinds a net can log (METRIC_CODES).
METRIC_CODES = {"mse": 1, "mae": 2, "logloss": 3, "accuracy": 4}
VALUES = 5
# A layer of at least this many weights multiplies through BLAS; a smaller one costs less
# in a plain loop than in a BLAS call. A single unit (a regression's output) is a dot product
# per row at any width: its loops run over the inputs, which LLVM vectorises, where the
# loops over a layer's outputs were one unit long (2-3x slower for the whole epoch of a
# 13-128-1 net).
BLAS_WEIGHTS = 256
