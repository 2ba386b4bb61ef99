"""Experiments that run models: leaderboards (:mod:`~zenrec.experiments.leaderboard`) and tuning
(:mod:`~zenrec.experiments.tune`).  They sit above the models; the evaluation kernels they use sit below.

Submodules are imported where used, so ``import zenrec.experiments`` stays light.
"""
