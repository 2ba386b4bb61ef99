"""RecTools 0.19.0 SASRec / BERT4Rec on the sequential benchmark's split (run in ``benchmarks/.venv-rectools``).

Trains on the training file only, one Lightning ``fit`` with a callback
that, after every epoch, times the epoch (validation excluded), ranks all
items for the validation users from their training histories with RecTools'
own ``recommend(filter_viewed=True)`` (training items masked — zenrec's
rule), scores NDCG@10, keeps the best weights, and stops on patience or the
wall cap.  The best weights then rank the test users from training +
validation histories.  Prints one JSON line; writes the best epoch's top-10
lists (valid and test) for ``bench_sequential.py`` to score with zenrec's
metric code.

    benchmarks/.venv-rectools/bin/python benchmarks/run_rectools_seq.py --split DIR --name ml-100k \
        --model SASRec [--max-epochs 300] [--patience 10] [--cap-minutes 30] --topk FILE
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import peak_rss_mb  # noqa: E402
from _seq_common import K, Stopper, emit, ndcg_hr, read_split, write_topk  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", type=Path, required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--model", choices=("SASRec", "BERT4Rec"), required=True)
    ap.add_argument("--max-epochs", type=int, default=300)
    ap.add_argument("--patience", type=int, default=10)
    ap.add_argument("--cap-minutes", type=float, default=30.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--max-len", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=2020)
    ap.add_argument("--topk", type=Path, required=True)
    args = ap.parse_args()

    import pandas as pd
    import torch

    torch.set_num_threads(args.threads)
    import rectools
    from pytorch_lightning import Callback, Trainer, seed_everything
    from rectools import Columns
    from rectools.dataset import Dataset
    from rectools.models import BERT4RecModel, SASRecModel
    from rectools.models.nn.item_net import IdEmbeddingsItemNet

    seed_everything(args.seed, workers=True)
    parts = read_split(args.split, args.name)

    def rt_dataset(df: pd.DataFrame) -> Dataset:
        inter = pd.DataFrame({
            Columns.User: df["user"].to_numpy(), Columns.Item: df["item"].to_numpy(), Columns.Weight: 1.0,
            Columns.Datetime: pd.to_datetime(df["ts"].to_numpy(), unit="s"),
        })
        return Dataset.construct(inter)

    t_load = time.perf_counter()
    ds_train = rt_dataset(parts["train"])
    ds_trainval = rt_dataset(pd.concat([parts["train"], parts["valid"]], ignore_index=True))
    valid_truth = dict(zip(parts["valid"]["user"], parts["valid"]["item"], strict=True))
    test_truth = dict(zip(parts["test"]["user"], parts["test"]["item"], strict=True))
    load_s = time.perf_counter() - t_load

    cap_s = args.cap_minutes * 60.0
    state: dict = {"train_s": 0.0, "curve": [], "best_state": None, "stopper": None, "t_epoch": 0.0}
    holder: dict = {}

    unranked: dict[str, int] = {}  # users RecTools gave no list, per part

    def recommend(ds: Dataset, users: list[str], part: str) -> dict[str, list[str]]:
        model = holder["model"]
        fitted = model.is_fitted
        model.is_fitted = True  # recommend() refuses an unfitted model; the weights are the current ones
        try:
            # RecTools drops histories of a single item from its training data, so it cannot rank
            # those users ("cold" to it): they get no list, which counts as a miss
            reco = model.recommend(users=users, dataset=ds, k=K, filter_viewed=True, on_unsupported_targets="ignore")
        finally:
            model.is_fitted = fitted
        reco = reco.sort_values([Columns.User, Columns.Rank], kind="stable")
        out = {u: list(g) for u, g in reco.groupby(Columns.User, sort=False)[Columns.Item]}
        unranked[part] = len(set(users) - set(out))
        return out

    class EpochEval(Callback):
        def on_train_epoch_start(self, trainer, pl_module) -> None:  # noqa: ANN001
            if state["stopper"] is None:
                state["stopper"] = Stopper(args.patience, cap_s)
            state["t_epoch"] = time.perf_counter()

        def on_train_epoch_end(self, trainer, pl_module) -> None:  # noqa: ANN001
            state["train_s"] += time.perf_counter() - state["t_epoch"]
            t_val = time.perf_counter()
            top = recommend(ds_train, list(valid_truth), "valid")
            nd, hr = ndcg_hr(top, valid_truth)
            epoch = len(state["curve"]) + 1
            state["curve"].append({"epoch": epoch, "train_seconds": round(state["train_s"], 3),
                                   "valid": round(nd, 6), "valid_hr": round(hr, 6),
                                   "valid_seconds": round(time.perf_counter() - t_val, 3)})
            improved, stop = state["stopper"].step(epoch, nd)
            if improved:
                state["best_state"] = copy.deepcopy(pl_module.torch_model.state_dict())
                state["best_valid_top"] = top
            pl_module.train()
            print(f"[rectools {args.model}] epoch {epoch} train {state['train_s']:.1f}s valid ndcg@10 {nd:.4f}",
                  file=sys.stderr, flush=True)
            if stop:
                trainer.should_stop = True

    def get_trainer() -> Trainer:
        return Trainer(max_epochs=args.max_epochs, min_epochs=1, accelerator="cpu", devices=1,
                       enable_progress_bar=False, enable_model_summary=False, logger=False,
                       enable_checkpointing=False, callbacks=[EpochEval()], deterministic=False)

    common = dict(
        n_blocks=2, n_heads=1, n_factors=args.factors, session_max_len=args.max_len, dropout_rate=0.2,
        batch_size=args.batch_size, lr=1e-3, loss="softmax", epochs=args.max_epochs,
        item_net_block_types=(IdEmbeddingsItemNet,), get_trainer_func=get_trainer,
        recommend_batch_size=1024, recommend_torch_device="cpu",
    )
    cls = SASRecModel if args.model == "SASRec" else BERT4RecModel
    model = cls(**common)
    holder["model"] = model
    rss_before = peak_rss_mb()
    t0 = time.perf_counter()
    model.fit(ds_train)
    fit_wall = time.perf_counter() - t0
    stopper = state["stopper"]
    model.lightning_model.torch_model.load_state_dict(state["best_state"])
    test_top = recommend(ds_trainval, list(test_truth), "test")
    nd, hr = ndcg_hr(test_top, test_truth)
    write_topk(args.topk, {"valid": state["best_valid_top"], "test": test_top})
    curve = state["curve"]
    emit({
        "library": "rectools", "version": rectools.__version__, "model": args.model,
        "params": {k: v for k, v in common.items() if isinstance(v, (int, float, str))},
        "epochs": len(curve), "best_epoch": stopper.best_epoch, "stopped": stopper.reason,
        "best_valid": round(stopper.best, 6), "train_s": round(state["train_s"], 3),
        "fit_wall_s": round(fit_wall, 3), "load_s": round(load_s, 3), "curve": curve,
        "test_own": {"ndcg@10": round(nd, 6), "hit@10": round(hr, 6)},
        "rss_before_fit_mb": round(rss_before, 1), "peak_rss_mb": round(peak_rss_mb(), 1),
        "threads": args.threads, "topk_file": str(args.topk), "unranked_users": unranked,
    })


if __name__ == "__main__":
    main()
