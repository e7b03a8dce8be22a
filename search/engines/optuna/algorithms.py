"""Which Optuna sampler and pruner each name of ours means (search.engines.base lists the
names), seeded from the study's seed."""

from __future__ import annotations

import numpy as np
import optuna

from search.engines.base import EngineConfig
from search.errors import SearchError


def trial_sampler_seed(seed: int, held: int) -> int:
    """The seed of the sampler that proposes a study's trial after ``held`` trials.

    Mixed, not added: with ``seed + held`` the study of seed 1 drew at its trial t what the
    study of seed 0 drew at t + 1, so a benchmark's seeds repeated one search shifted by a
    trial (seeds 0 and 1 of random search shared 199 of 200 configurations).
    """
    return int(np.random.SeedSequence([seed, held]).generate_state(1)[0])


def sampler(algorithm: str, seed: int) -> optuna.samplers.BaseSampler:
    """The sampler of ``algorithm``, seeded with ``seed``."""
    if algorithm == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if algorithm in ("random", "pbt"):  # PBT's first population: drawn at random
        return optuna.samplers.RandomSampler(seed=seed)
    if algorithm == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if algorithm == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
    if algorithm == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if algorithm == "nsga3":
        return optuna.samplers.NSGAIIISampler(seed=seed)
    try:
        import torch  # noqa: F401 - Optuna's GPSampler needs it
    except ImportError:
        raise SearchError(
            "algorithm 'gp' needs PyTorch: pip install '.[gp]' (or choose tpe, random, cmaes, qmc)"
        ) from None
    return optuna.samplers.GPSampler(seed=seed)


def pruner(config: EngineConfig) -> optuna.pruners.BasePruner:
    """The pruner the study's config names (``none``: Optuna's ``NopPruner``)."""
    if config.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=config.epochs // 5)
    if config.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=config.epochs)
    if config.pruner == "successive-halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    if config.pruner == "wilcoxon":
        # Optuna's defaults: pruned when the one-sided test's p-value is under 0.1 (with 5
        # folds, all worse gives p = 1/32); at least 2 folds compared.
        return optuna.pruners.WilcoxonPruner(p_threshold=0.1, n_startup_steps=2)
    return optuna.pruners.NopPruner()
