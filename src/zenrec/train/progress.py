"""Training progress: one event type for every listener, and the two ways it is shown.

The training loop (:func:`zenrec.train.loop.fit_loop`) reports a
:class:`TrainEvent` after every step and every epoch; a fit that only
estimates its cost (EASE, ItemKNN) reports one ``"estimate"`` event.  The
listeners:

* a callback (``TrainOptions(callback=fn)``) gets every event;
* the ``zenrec.train`` logger gets one INFO line per epoch and one every
  ``interval`` seconds inside a long epoch (:func:`format_event`);
* with ``progress=True``, stderr shows a rich bar updated per step when it
  is a terminal, else the same plain lines as the logger (once: not when
  the logger already shows INFO), so ``2> log.txt`` and CI logs see them.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TextIO

__all__ = ["TrainEvent", "Callback", "Reporter", "ProgressLines", "ProgressBar", "format_event", "format_seconds",
           "progress_interval"]

log = logging.getLogger("zenrec.train")

#: seconds between two plain progress lines inside an epoch (``ZENREC_PROGRESS_INTERVAL`` overrides)
DEFAULT_INTERVAL = 10.0


@dataclass(frozen=True)
class TrainEvent:
    """What a fit reports: a step or epoch of the training loop, its end, or a cost estimate.

    ``kind`` is ``"step"`` (after every training step), ``"epoch"`` (after
    an epoch and its validation), ``"end"`` (training finished; ``epoch`` is
    the last one run, ``best_epoch`` the one whose weights were kept) or
    ``"estimate"`` (``message`` holds the estimate, before a large fit).
    Epochs and steps count from 1; ``steps`` is None until known.  ``rate``
    is steps per second of this epoch's training, ``samples_rate`` examples
    per second when the batches tell their size; ``eta`` is the seconds left
    in this epoch (step events) and ``eta_run`` an upper bound on the seconds
    left in the run: to the last epoch early stopping may still reach.
    """

    kind: Literal["step", "epoch", "end", "estimate"]
    model: str
    epoch: int = 0
    epochs: int = 0
    step: int = 0
    steps: int | None = None
    loss: float | None = None
    valid: float | None = None
    best: float | None = None
    best_epoch: int | None = None
    stop_by: int | None = None
    rate: float | None = None
    samples_rate: float | None = None
    eta: float | None = None
    eta_run: float | None = None
    elapsed: float = 0.0
    message: str = ""


#: a listener of :class:`TrainEvent` (``TrainOptions.callback``)
Callback = Callable[[TrainEvent], Any]


def progress_interval() -> float:
    """Seconds between plain progress lines inside an epoch: ``$ZENREC_PROGRESS_INTERVAL`` or 10."""
    raw = os.environ.get("ZENREC_PROGRESS_INTERVAL")
    try:
        value = float(raw) if raw else DEFAULT_INTERVAL
    except ValueError:
        value = DEFAULT_INTERVAL
    return value if value >= 0 and math.isfinite(value) else DEFAULT_INTERVAL


def format_seconds(seconds: float | None) -> str:
    """``14s``, ``3m05s``, ``2h04m``; ``?`` for None."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _rate(ev: TrainEvent) -> str:
    if ev.rate is None:
        return ""
    out = f" {ev.rate:.1f} it/s" if ev.rate < 100 else f" {ev.rate:,.0f} it/s"
    if ev.samples_rate is not None:
        out += f" ({ev.samples_rate:,.0f} samples/s)"
    return out


def format_event(ev: TrainEvent) -> str:
    """The plain line of an event, e.g. ``sasrec epoch 3/200 step 120/480 25.1 it/s eta 14s loss 5.1200``."""
    if ev.kind == "estimate":
        return ev.message
    head = f"{ev.model} epoch {ev.epoch}/{ev.epochs}"
    loss = "" if ev.loss is None else f" loss {ev.loss:.4f}"
    if ev.kind == "step":
        total = "?" if ev.steps is None else str(ev.steps)
        return f"{head} step {ev.step}/{total}{_rate(ev)} eta {format_seconds(ev.eta)}{loss}"
    valid = ""
    if ev.valid is not None:
        valid = f" valid ndcg@10 {ev.valid:.4f} (best {ev.best:.4f} at epoch {ev.best_epoch})"
    if ev.kind == "end":
        kept = f"; kept epoch {ev.best_epoch}'s weights" if ev.best_epoch is not None else ""
        return f"{ev.model} trained {ev.epoch} of at most {ev.epochs} epochs in {format_seconds(ev.elapsed)}{kept}"
    bound = ""
    if ev.stop_by is not None and ev.epoch < ev.stop_by:
        bound = f"; stops by epoch {ev.stop_by} at the latest (~{format_seconds(ev.eta_run)} left)"
    return f"{head} step {ev.step}/{ev.step}{_rate(ev)} done{loss}{valid}{bound}"


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no such method, or a closed stream
        return False


def _logger_shows_info() -> bool:
    """True when the ``zenrec.train`` logger's INFO lines reach a handler (then they are not written twice)."""
    return log.isEnabledFor(logging.INFO) and log.hasHandlers()


class ProgressLines:
    """Plain lines: every epoch, the end, and a step line every ``interval`` seconds inside an epoch.

    Each line goes to the ``zenrec.train`` logger at INFO; with ``stream``
    (stderr when progress is asked for and it is not a terminal) it is also
    written there, unless the logger already shows INFO lines.
    """

    def __init__(self, stream: TextIO | None = None, interval: float | None = None) -> None:
        self.stream = stream
        self.interval = progress_interval() if interval is None else interval
        self._last = time.perf_counter()

    def __call__(self, ev: TrainEvent) -> None:
        """Show ``ev`` when it is due."""
        now = time.perf_counter()
        if ev.kind == "step":
            if now - self._last < self.interval or (ev.steps is not None and ev.step >= ev.steps):
                return
        self._last = now
        line = format_event(ev)
        log.info("%s", line)
        if self.stream is not None and not _logger_shows_info():
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        """Nothing to release."""


class ProgressBar:
    """A rich bar on stderr over the steps of the current epoch, with the epoch's lines printed above it."""

    def __init__(self, name: str, console: Any = None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.p = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                          TimeElapsedColumn(), console=console or Console(stderr=True), transient=True)
        self.task = self.p.add_task(name, total=None, rate="", info="")
        self.p.start()

    def __call__(self, ev: TrainEvent) -> None:
        """Move the bar on a step; print the line of an epoch or of the end above it."""
        if ev.kind == "step":
            info = "" if ev.loss is None else f"loss {ev.loss:.4f}"
            self.p.update(self.task, description=f"{ev.model} epoch {ev.epoch}/{ev.epochs}", completed=ev.step,
                          total=ev.steps, rate=_rate(ev).strip(), info=info)
        elif ev.kind in ("epoch", "end", "estimate") and not _logger_shows_info():
            self.p.console.print(format_event(ev), highlight=False, soft_wrap=True)

    def close(self) -> None:
        """Remove the bar."""
        self.p.stop()


class Reporter:
    """Every listener of one fit: the logger's lines, stderr's bar or lines (``progress``) and a callback."""

    def __init__(self, name: str, progress: bool = False, callback: Callback | None = None,
                 interval: float | None = None) -> None:
        self.listeners: list[Any] = []
        # stderr itself, not rich's guess: FORCE_COLOR in a CI log must still give plain lines
        if progress and _isatty(sys.stderr):
            self.listeners += [ProgressBar(name), ProgressLines(None, interval)]
        else:
            self.listeners.append(ProgressLines(sys.stderr if progress else None, interval))
        if callback is not None:
            self.listeners.append(callback)

    def __call__(self, ev: TrainEvent) -> None:
        """Pass ``ev`` to every listener."""
        for listener in self.listeners:
            listener(ev)

    def close(self) -> None:
        """Release the bar, if any."""
        for listener in self.listeners:
            if isinstance(listener, (ProgressBar, ProgressLines)):
                listener.close()
