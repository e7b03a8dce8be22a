"""Population-based training (``--algorithm pbt``): the study's trials trained as one
population by the numpy trainer, the worst copying the best every few epochs.

Each member (a trial) trains in a :class:`~search.trainers.numpy.members.Lockstep` of its
own, a row per fold x execution, ``interval`` epochs at a time. After each interval the
members are ranked by their objective (the mean over their folds at that epoch); each of the
bottom ``quantile`` copies a top member's weights, optimizer state, curves and
hyperparameters (exploit), then explores: each hyperparameter is perturbed
(:mod:`.explore`) unless the new value would change the shapes of the
weights or the optimizer's kind (its state): layers, units and the optimizer go with the
weights they were copied with. A member's result is its best epoch since its last exploit
(the mean over its folds), so its weights there were last trained with the hyperparameters
its trial records; those weights are kept (``pbt/<trial>.npy``) for scoring (docs/pbt.md
says why). ``pbt.csv`` holds the schedule, written at every interval; the population's
state is saved at each interval (:mod:`.state`), so a rerun after a kill continues from the
last one.
"""

from search.study.pbt.population import check_space, interval_of, kept_model, train

__all__ = ["check_space", "interval_of", "kept_model", "train"]
