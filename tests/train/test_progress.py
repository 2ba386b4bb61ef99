"""Training progress: events per step and epoch, plain lines off a terminal, the zenrec.train logger."""

from __future__ import annotations

import io
import logging
import re

import pytest

from zenrec.train.progress import ProgressLines, TrainEvent, format_event, format_seconds

torch = pytest.importorskip("torch")

from zenrec.train.loop import fit_loop, make_optimizer  # noqa: E402


def _run(values: list[float] | None, epochs: int, patience: int = 2, **kw):
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 1)
    opt = make_optimizer(net.parameters(), "sgd", 0.01)
    x, y = torch.randn(40, 3), torch.randn(40, 1)
    it = iter(values or [])

    def batches(epoch: int):
        for s in range(0, 40, 10):  # 4 steps of 10 examples
            yield x[s : s + 10], y[s : s + 10]

    def loss_fn(batch):
        xb, yb = batch
        return ((net(xb) - yb) ** 2).mean()

    validate = (lambda: next(it)) if values is not None else None
    return fit_loop(net, opt, batches, loss_fn, epochs, validate, patience, name="toy", **kw)


def test_callback_gets_every_step_and_epoch_with_totals_rates_and_the_stopping_bound():
    events: list[TrainEvent] = []
    res = _run([0.1, 0.3, 0.2, 0.25, 0.9], epochs=10, patience=2, callback=events.append, steps=4)
    assert res.epochs == 4
    steps = [e for e in events if e.kind == "step"]
    epochs = [e for e in events if e.kind == "epoch"]
    assert [(e.epoch, e.step, e.steps) for e in steps[:5]] == [(1, 1, 4), (1, 2, 4), (1, 3, 4), (1, 4, 4), (2, 1, 4)]
    assert len(steps) == 16 and all(e.rate > 0 and e.samples_rate == pytest.approx(10 * e.rate) for e in steps)
    assert steps[0].eta is not None and steps[3].eta == 0
    assert [e.valid for e in epochs] == [0.1, 0.3, 0.2, 0.25]
    assert [(e.best, e.best_epoch, e.stop_by) for e in epochs][1:] == [(0.3, 2, 4)] * 3
    assert events[-1].kind == "end" and (events[-1].epoch, events[-1].best_epoch) == (4, 2)


def test_without_a_hint_the_first_epoch_counts_its_steps():
    events: list[TrainEvent] = []
    _run(None, epochs=2, callback=events.append)
    steps = [e for e in events if e.kind == "step"]
    assert [e.steps for e in steps] == [None] * 4 + [4] * 4
    assert [e.stop_by for e in events if e.kind == "epoch"] == [2, 2]


def test_plain_lines_every_epoch_and_every_interval_inside_one():
    stream = io.StringIO()
    lines = ProgressLines(stream, interval=0.0)
    _run([0.1, 0.2], epochs=2, callback=lines, steps=4)
    text = stream.getvalue().splitlines()
    step = [t for t in text if re.fullmatch(r"toy epoch \d/2 step \d/4 [\d.,]+ it/s \([\d,]+ samples/s\) eta \S+ "
                                            r"loss [\d.]+", t)]
    assert len(step) == 6  # steps 1–3 of both epochs: the last step's line is the epoch's
    assert re.search(r"^toy epoch 2/2 step 4/4 .* done loss [\d.]+ valid ndcg@10 0\.2000 \(best 0\.2000 at epoch 2\)$",
                     stream.getvalue(), re.M)
    assert text[-1] == "toy trained 2 of at most 2 epochs in 0s; kept epoch 2's weights"
    quiet = io.StringIO()
    _run([0.1, 0.2], epochs=2, callback=ProgressLines(quiet, interval=3600))
    assert [t.split(" step")[0] for t in quiet.getvalue().splitlines()[:2]] == ["toy epoch 1/2", "toy epoch 2/2"]


def test_the_zenrec_train_logger_gets_epoch_lines_at_info(caplog):
    with caplog.at_level(logging.INFO, logger="zenrec.train"):
        _run([0.1, 0.3], epochs=2)
    msgs = [r.getMessage() for r in caplog.records if r.name == "zenrec.train"]
    assert any(m.startswith("toy epoch 1/2 step 4/4") and "valid ndcg@10 0.1000" in m for m in msgs)
    assert msgs[-1].startswith("toy trained 2 of at most 2 epochs")


def test_plain_lines_are_not_written_twice_when_the_logger_shows_them(caplog):
    stream = io.StringIO()
    with caplog.at_level(logging.INFO, logger="zenrec.train"):
        _run([0.1], epochs=1, callback=ProgressLines(stream, interval=3600))
    assert stream.getvalue() == ""
    assert any("toy epoch 1/1" in r.getMessage() for r in caplog.records)


def test_format():
    ev = TrainEvent("step", "sasrec", epoch=3, epochs=200, step=120, steps=480, loss=5.12, rate=25.14, eta=14.2)
    assert format_event(ev) == "sasrec epoch 3/200 step 120/480 25.1 it/s eta 14s loss 5.1200"
    assert [format_seconds(s) for s in (None, 4.4, 185, 7450)] == ["?", "4s", "3m05s", "2h04m"]
