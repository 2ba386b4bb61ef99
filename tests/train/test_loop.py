"""The shared training loop: best weights restored, patience, reduce-on-plateau, checkpoint and resume."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from zenrec.train.loop import fit_loop, make_optimizer  # noqa: E402


def _setup(values: list[float]):
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 1)
    opt = make_optimizer(net.parameters(), "sgd", 0.1)
    x, y = torch.randn(16, 3), torch.randn(16, 1)
    snapshots: list[torch.Tensor] = []
    it = iter(values)

    def batches(epoch: int):
        yield x, y

    def loss_fn(batch):
        xb, yb = batch
        return ((net(xb) - yb) ** 2).mean()

    def validate() -> float:
        snapshots.append(net.weight.detach().clone())
        return next(it)

    return net, opt, batches, loss_fn, validate, snapshots


def test_stops_after_patience_and_restores_the_best_epoch():
    net, opt, batches, loss_fn, validate, snaps = _setup([0.1, 0.3, 0.2, 0.25, 0.29, 0.9])
    res = fit_loop(net, opt, batches, loss_fn, epochs=10, validate=validate, patience=3)
    assert (res.epochs, res.best_epoch, res.best_value) == (5, 2, 0.3)
    assert torch.equal(net.weight, snaps[1])  # the weights validated at epoch 2
    assert [r["epoch"] for r in res.history] == [1, 2, 3, 4, 5]
    assert all(r["train_seconds"] <= r["seconds"] for r in res.history)


def test_checkpoint_resumes_where_it_stopped(tmp_path):
    ck = tmp_path / "ck.pt"
    net, opt, batches, loss_fn, _, _ = _setup([])
    fit_loop(net, opt, batches, loss_fn, epochs=3, checkpoint=ck)
    after3 = net.weight.detach().clone()
    net2, opt2, batches2, loss_fn2, _, _ = _setup([])
    res = fit_loop(net2, opt2, batches2, loss_fn2, epochs=5, checkpoint=ck)
    assert [r["epoch"] for r in res.history] == [4, 5]
    net3, opt3, batches3, loss_fn3, _, _ = _setup([])
    fit_loop(net3, opt3, batches3, loss_fn3, epochs=5)
    assert torch.allclose(net2.weight, net3.weight) and not torch.equal(after3, net3.weight)
