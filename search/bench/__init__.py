"""Benchmark mode: contenders (``engine:algorithm``) x seeds, each an ordinary study.

:mod:`search.bench.config` holds a benchmark's settings and builds them from the training
options (the command line's, a suite's), :mod:`search.bench.compare` runs the studies and
writes the tables and plots, and :mod:`search.bench.stats` compares the contenders. The face
stays light (pandas and SciPy load with ``compare``): the CLI reads the defaults without them.
"""

from __future__ import annotations

from search.bench.config import DEFAULT_SEEDS, BenchConfig, bench_folder

__all__ = ["DEFAULT_SEEDS", "BenchConfig", "bench_folder"]
