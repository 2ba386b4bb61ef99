"""Evaluation: ranking kernels, metrics, the full-ranking evaluator, leaderboards and tuning.

Submodules are imported where used (``zenrec.evaluate.evaluator`` etc.), so
that models can use the ranking kernels without import cycles.
"""
