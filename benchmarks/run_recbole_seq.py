"""RecBole 1.2.1 SASRec / GRU4Rec / BERT4Rec on the sequential benchmark's split (run in ``benchmarks/.venv-recbole``).

RecBole's sequential models read one atomic file per dataset and split it
themselves; the three split files are concatenated into that file and
RecBole's leave-one-out split (``LS: valid_and_test``, time order) is used —
with ``timestamp`` = chronological position it gives exactly the same
training events (checked below: every training prefix RecBole builds ends
in a training event).  Training is RecBole's own epoch
(``trainer._train_epoch``, its data augmentation: one example per prefix),
timed alone; validation and test are NOT RecBole's evaluator (which masks
nothing in this protocol) but zenrec's rule: the model's
``full_sort_predict`` from the training (test: training + validation)
history, that user's training (test: + validation) items masked, all items
ranked.  Early stopping on that validation NDCG@10 with patience, a wall
cap, best weights restored for the test.

Two run-time shims from shared/PEERS.md (``torch.load`` with
``weights_only=False``; ``dok_matrix._update``) are applied as in
``run_recbole.py``.

    benchmarks/.venv-recbole/bin/python benchmarks/run_recbole_seq.py --split DIR --name ml-100k \
        --model SASRec [--cap-minutes 10] --topk FILE
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import WORK, peak_rss_mb  # noqa: E402
from _seq_common import K, Stopper, emit, ndcg_hr, read_split, sequences, write_topk  # noqa: E402
from run_recbole import _shims  # noqa: E402

MODEL_PARAMS = {
    "SASRec": {"hidden_size": 64, "inner_size": 64, "n_layers": 2, "n_heads": 1, "loss_type": "CE"},
    "BERT4Rec": {"hidden_size": 64, "inner_size": 64, "n_layers": 2, "n_heads": 1, "loss_type": "CE"},
    "GRU4Rec": {"embedding_size": 64, "hidden_size": 64, "num_layers": 1, "loss_type": "CE"},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", type=Path, required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--model", choices=tuple(MODEL_PARAMS), required=True)
    ap.add_argument("--max-epochs", type=int, default=300)
    ap.add_argument("--patience", type=int, default=10)
    ap.add_argument("--cap-minutes", type=float, default=30.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-len", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=2020)
    ap.add_argument("--topk", type=Path, required=True)
    args = ap.parse_args()

    _shims()
    import numpy as np
    import pandas as pd
    import recbole
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.data.interaction import Interaction
    from recbole.utils import get_model, get_trainer, init_seed

    parts = read_split(args.split, args.name)
    workdir = (WORK / "recbole-seq" / args.name).resolve()
    rb_name = f"{args.name}-seq"
    data_dir = workdir / "data" / rb_name
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)  # RecBole writes log/ and saved/ here
    whole = pd.concat([parts["train"], parts["valid"], parts["test"]], ignore_index=True)
    pd.DataFrame({"user_id:token": whole["user"], "item_id:token": whole["item"],
                  "timestamp:float": whole["ts"]}).to_csv(data_dir / f"{rb_name}.inter", sep="\t", index=False)

    params = {**MODEL_PARAMS[args.model]}
    config_dict = {
        "data_path": str(workdir / "data"),
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
        "MAX_ITEM_LIST_LENGTH": args.max_len,
        "train_neg_sample_args": None,
        "train_batch_size": args.batch_size,
        "eval_batch_size": 1024,
        "metrics": ["NDCG"], "topk": [K], "valid_metric": "NDCG@10",
        "epochs": args.max_epochs, "use_gpu": False, "device": "cpu",
        "seed": args.seed, "reproducibility": True, "show_progress": False,
        "checkpoint_dir": str(workdir / "saved"), "state": "WARNING",
        **params,
    }
    t_load = time.perf_counter()
    config = Config(model=args.model, dataset=rb_name, config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, _valid_data, _test_data = data_preparation(config, dataset)
    load_s = time.perf_counter() - t_load
    torch.set_num_threads(args.threads)

    # the training examples RecBole built must be exactly the training file's prefixes.  RecBole's
    # leave-one-out split holds out only the test target of a user with two examples (one training
    # event), so it would train on that user's validation target: such examples are dropped.
    tr = train_data._dataset
    n_prefixes = int(sum(max(len(s) - 1, 0) for s in sequences(parts["train"]).values()))
    targets = pd.MultiIndex.from_arrays([dataset.id2token("user_id", tr.inter_feat["user_id"].numpy()),
                                         dataset.id2token("item_id", tr.inter_feat["item_id"].numpy())])
    ours = targets.isin(pd.MultiIndex.from_frame(parts["train"][["user", "item"]]))
    dropped = int((~ours).sum())
    if dropped:
        from recbole.data.dataloader import TrainDataLoader

        tr = tr.copy(tr.inter_feat[torch.as_tensor(np.flatnonzero(ours))])
        train_data = TrainDataLoader(config, tr, None, shuffle=config["shuffle"])
        print(f"dropped {dropped} RecBole training examples whose target is not a training event", file=sys.stderr)
    if len(tr) != n_prefixes:
        sys.exit(f"RecBole's training examples ({len(tr)}) differ from the training file's prefixes ({n_prefixes})")

    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, tr).to("cpu")
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)

    seq_train = sequences(parts["train"])
    seq_trainval = sequences(pd.concat([parts["train"], parts["valid"]], ignore_index=True))
    valid_truth = dict(zip(parts["valid"]["user"], parts["valid"]["item"], strict=True))
    test_truth = dict(zip(parts["test"]["user"], parts["test"]["item"], strict=True))

    def rank(hist: dict[str, list[str]], users: list[str]) -> dict[str, list[str]]:
        model.eval()
        out = {}
        with torch.no_grad():
            for s in range(0, len(users), 512):
                us = users[s : s + 512]
                seqs = np.zeros((len(us), args.max_len), dtype=np.int64)
                lens = np.zeros(len(us), dtype=np.int64)
                rows, cols = [], []
                for r, u in enumerate(us):
                    ids = dataset.token2id("item_id", hist[u])
                    last = ids[-args.max_len :]
                    seqs[r, : len(last)] = last
                    lens[r] = len(last)
                    rows += [r] * len(ids)
                    cols += list(ids)
                inter = Interaction({"item_id_list": torch.as_tensor(seqs), "item_length": torch.as_tensor(lens),
                                     "user_id": torch.as_tensor(dataset.token2id("user_id", us))})
                scores = model.full_sort_predict(inter).view(len(us), -1).clone()
                scores[:, 0] = -torch.inf  # RecBole's padding id
                scores[torch.as_tensor(rows), torch.as_tensor(cols)] = -torch.inf  # the history's items
                top = torch.topk(scores, K, dim=1).indices.numpy()
                for r, u in enumerate(us):
                    out[u] = list(dataset.id2token("item_id", top[r]))
        return out

    cap_s = args.cap_minutes * 60.0
    curve, train_s, best_state, best_top = [], 0.0, None, None
    rss_before = peak_rss_mb()
    stopper = Stopper(args.patience, cap_s)
    t0 = time.perf_counter()
    for epoch in range(args.max_epochs):
        t_ep = time.perf_counter()
        loss = trainer._train_epoch(train_data, epoch, show_progress=False)
        train_s += time.perf_counter() - t_ep
        t_val = time.perf_counter()
        top = rank(seq_train, list(valid_truth))
        nd, hr = ndcg_hr(top, valid_truth)
        curve.append({"epoch": epoch + 1, "train_seconds": round(train_s, 3), "valid": round(nd, 6),
                      "valid_hr": round(hr, 6), "valid_seconds": round(time.perf_counter() - t_val, 3),
                      "loss": round(float(loss if not isinstance(loss, tuple) else sum(loss)), 5)})
        print(f"[recbole {args.model}] epoch {epoch + 1} train {train_s:.1f}s valid ndcg@10 {nd:.4f}",
              file=sys.stderr, flush=True)
        improved, stop = stopper.step(epoch + 1, nd)
        if improved:
            best_state, best_top = copy.deepcopy(model.state_dict()), top
        if stop:
            break
    fit_wall = time.perf_counter() - t0
    model.load_state_dict(best_state)
    test_top = rank(seq_trainval, list(test_truth))
    tnd, thr = ndcg_hr(test_top, test_truth)
    write_topk(args.topk, {"valid": best_top, "test": test_top})
    emit({
        "library": "recbole", "version": recbole.__version__, "model": args.model, "dropped_examples": dropped,
        "params": {**params, "MAX_ITEM_LIST_LENGTH": args.max_len, "train_batch_size": args.batch_size},
        "epochs": len(curve), "best_epoch": stopper.best_epoch, "stopped": stopper.reason,
        "best_valid": round(stopper.best, 6), "train_s": round(train_s, 3), "fit_wall_s": round(fit_wall, 3),
        "load_s": round(load_s, 3), "curve": curve, "test_own": {"ndcg@10": round(tnd, 6), "hit@10": round(thr, 6)},
        "rss_before_fit_mb": round(rss_before, 1), "peak_rss_mb": round(peak_rss_mb(), 1),
        "threads": args.threads, "topk_file": str(args.topk),
    })


if __name__ == "__main__":
    main()
