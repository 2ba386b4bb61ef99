"""Run by torchrun from tests/train/test_distributed.py: fit models on a saved dataset in this process.

``ddp_fit.py DATA MODELS_JSON SEED OUT`` (``MODELS_JSON``: ``{name: params}``): for each model every process
writes ``OUT/<name>.rank<R>.json`` (its training summary and the scores of a few users), and process 0 saves the
model in ``OUT/<name>``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from zenrec.data.dataset import Dataset
from zenrec.models import TrainOptions, create_model
from zenrec.train.distributed import is_main_process

data, models, seed, out = Dataset.load(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
for name, params in models.items():
    model = create_model(name, **params).fit(data.interactions, None, TrainOptions(seed=seed, threads=1))
    rank = 0 if is_main_process() else 1
    scores = model.score(np.arange(5))
    (out / f"{name}.rank{rank}.json").write_text(json.dumps({"training": model.training_, "scores": scores.tolist()}))
    if is_main_process():
        model.save(out / name)
