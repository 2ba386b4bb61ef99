"""Keep the garbage collector's full passes off the request path.

A loaded model, torch, pandas and the web stack leave millions of long-lived
objects in the interpreter.  CPython's cyclic collector walks all of them in
every full (generation 2) pass, which here took 60–130 ms: long enough to
stall every request in flight and dominate the p99 of the event-to-visible
path.  :func:`freeze_heap` collects once when the server is ready (and again
after a hot swap drops a version) and then freezes what is left
(:func:`gc.freeze`), so later passes only walk objects created since.
Objects stay freed by reference counting as usual; only cycles among frozen
objects wait for the next :func:`freeze_heap`.
"""

from __future__ import annotations

import gc
import time

__all__ = ["freeze_heap"]


def freeze_heap() -> float:
    """Unfreeze, collect everything, freeze the survivors; returns the milliseconds it took."""
    t0 = time.perf_counter()
    gc.unfreeze()  # a version swapped out may have left cycles among frozen objects
    gc.collect()
    gc.freeze()
    return (time.perf_counter() - t0) * 1000.0
