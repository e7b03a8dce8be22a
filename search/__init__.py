"""search: one search-space definition, keras-tuner or Optuna, TensorBoard, leaderboards."""

from __future__ import annotations

import os

# TensorFlow's C++ start-up chatter (oneDNN notices, CPU feature lines) is noise for a CLI user.
# oneDNN's custom ops are off too: they make float results depend on the thread schedule, and
# for models this small they bring no speed.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

__version__ = "0.1.0"
