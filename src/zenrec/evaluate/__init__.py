"""Evaluation over scorers: metrics (:mod:`~zenrec.evaluate.metrics`), the full-ranking protocol
(:mod:`~zenrec.evaluate.evaluator`) and the online analysis of served lists (:mod:`~zenrec.evaluate.online`).

This package sits below the models: it scores anything with ``score(users)`` and never imports a model.
Leaderboards and tuning, which fit models, are :mod:`zenrec.experiments`.
"""
