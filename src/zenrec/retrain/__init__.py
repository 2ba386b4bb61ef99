"""Retraining from the event store, gated by an evaluation against the served version.

The job itself is :func:`zenrec.retrain.job.retrain` (see that module for the
four steps); the training log and the evaluation window live in
:mod:`~zenrec.retrain.log` and :mod:`~zenrec.retrain.window`.  This package
only re-exports them.
"""

from zenrec.retrain.job import DECISIONS, RetrainReport, retrain
from zenrec.retrain.log import TRAINING_LOG_FILE, TrainingLog, gather_training_log, read_store_events
from zenrec.retrain.window import (
    EvalWindow,
    WindowChoice,
    build_window,
    evaluate_window,
    parse_metric,
    select_window,
    window_scorer,
)

__all__ = [
    "retrain",
    "RetrainReport",
    "TrainingLog",
    "EvalWindow",
    "WindowChoice",
    "read_store_events",
    "gather_training_log",
    "select_window",
    "build_window",
    "window_scorer",
    "evaluate_window",
    "parse_metric",
    "TRAINING_LOG_FILE",
    "DECISIONS",
]
