"""Benchmark mode: contenders (``engine:algorithm``) x seeds, each an ordinary study, and the
statistics that compare them (:mod:`search.bench.stats`)."""

from __future__ import annotations

from search.bench.compare import BenchConfig, BenchResult, parse_contenders, run, studies

__all__ = ["BenchConfig", "BenchResult", "parse_contenders", "run", "studies"]
