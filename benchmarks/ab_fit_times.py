"""Fit times of two trees of zenrec, alternated on one machine: LogisticMF on the ml-100k general split, then
four SASRec epochs on the sequential split (one thread).  Prints one JSON line per run.

Run it once per tree, alternating, with that tree's sources first on the path::

    for i in 1 2 3; do for t in OLD NEW; do PYTHONPATH=$t/src python benchmarks/ab_fit_times.py $t; done; done

The SASRec validation curve is printed too: trees that compute the same model print the same curve.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np


def main() -> None:
    from zenrec.data import split_dataset
    from zenrec.datasets import load_ml100k
    from zenrec.models import TrainOptions, create_model

    ds = load_ml100k()
    general = split_dataset(ds, "general", seed=2020)
    t0 = time.perf_counter()
    lmf = create_model("lmf").fit(general.train, general.valid, TrainOptions(seed=2020))
    lmf_s = time.perf_counter() - t0
    seq = split_dataset(ds, "sequential")
    sasrec = create_model("sasrec", epochs=4, patience=100).fit(seq.train, seq.valid,
                                                                TrainOptions(seed=2020, threads=1))
    cumulative = [r["train_seconds"] for r in sasrec.train_history_]
    print(json.dumps({
        "tree": sys.argv[1] if len(sys.argv) > 1 else "",
        "lmf_fit_s": round(lmf_s, 2), "lmf_epochs": lmf.epochs_trained_,
        "sasrec_epoch_s": round(float(np.median(np.diff([0.0, *cumulative]))), 2),
        "sasrec_valid": [round(r["valid"], 5) for r in sasrec.train_history_],
    }))


if __name__ == "__main__":
    main()
