"""Run by torchrun from tests/train/test_distributed.py: a linear model trained by fit_loop on 2 processes.

Writes ``OUT/rank<R>.json``: the final weights, the loop's result and the epochs each process ran.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def data():
    """64 examples of y = x·w + noise (fixed), and the model's starting weights."""
    import torch

    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 5, generator=g)
    y = x @ torch.arange(1.0, 6.0) + 0.1 * torch.randn(64, generator=g)
    return x, y


def make_net():
    import torch

    torch.manual_seed(0)
    return torch.nn.Linear(5, 1)


def loss_of(net, x, y):
    return ((net(x).squeeze(1) - y) ** 2).mean()


def main(out: Path, patience: int) -> None:
    import torch

    from zenrec.train.distributed import setup, shard
    from zenrec.train.loop import fit_loop

    run = setup("cpu", 1)
    assert run is not None and run.world == 2
    x, y = data()
    net = make_net()
    if run.rank == 1:  # a different start: DDP copies process 0's weights
        torch.nn.init.constant_(net.weight, 5.0)
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    perm_gen = torch.Generator().manual_seed(1)
    ran = []

    def batches(epoch):
        ran.append(epoch)
        perm = torch.randperm(len(x), generator=perm_gen)
        for b in shard(perm, 8, run.rank, run.world):
            yield x[b], y[b]

    values = iter([0.5, 0.6, 0.4, 0.3, 0.2, 0.1, 0.05, 0.01])  # best at epoch 2, then worse and worse

    def validate():
        return next(values)

    result = fit_loop(net, opt, batches, lambda b: loss_of(net, *b), 8, validate, patience, distributed=run)
    (out / f"rank{run.rank}.json").write_text(json.dumps({
        "weight": net.weight.detach().ravel().tolist(), "bias": float(net.bias.detach()),
        "epochs": result.epochs, "best_epoch": result.best_epoch, "best_value": result.best_value,
        "ran": ran, "valid": [r.get("valid") for r in result.history]}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
