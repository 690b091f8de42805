"""Denormals are flushed to zero while sentikit trains or explains on the CPU, and only then."""

import threading

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from sentikit.training.lightning_cli import every_run_callbacks
from sentikit.training.denormals import denormals_flushed, flush_denormals
from sentikit.nn.classifier import SentimentClassifier

pytestmark = pytest.mark.skipif(not torch.set_flush_denormal(False), reason="this CPU has no flush-to-zero mode")

TINY = torch.finfo(torch.float32).tiny  # the smallest normal float32; half of it is a denormal


def test_inside_the_block_denormals_become_zero_and_afterwards_they_survive_again():
    assert not denormals_flushed() and (torch.tensor(TINY) * 0.5).item() > 0
    with flush_denormals():
        assert denormals_flushed()
        assert (torch.tensor(TINY) * 0.5).item() == 0.0
        assert (torch.tensor(TINY) * 2.0).item() == TINY * 2  # normal numbers are untouched
    assert not denormals_flushed()


def test_a_block_restores_the_mode_it_found_even_when_it_raises():
    torch.set_flush_denormal(True)
    try:
        with flush_denormals():
            pass
        assert denormals_flushed(), "a block inside flushing code must leave flushing on"
    finally:
        torch.set_flush_denormal(False)
    with pytest.raises(RuntimeError, match="boom"), flush_denormals():
        raise RuntimeError("boom")
    assert not denormals_flushed()


def test_the_mode_belongs_to_the_thread_that_sets_it():
    """A thread already running (a server's worker pool) keeps its own mode: which is why the explainer
    sets it around each call, on the thread that makes it, not once at start-up."""
    go, seen = threading.Event(), {}

    def worker() -> None:
        go.wait()
        seen["worker"] = denormals_flushed()

    thread = threading.Thread(target=worker)
    thread.start()
    with flush_denormals():
        go.set()
        thread.join()
        assert denormals_flushed()
    assert seen["worker"] is False


class Probe(pl.Callback):
    """Records the mode at each training batch; fails at batch `fail_at` if given."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.seen, self.fail_at = [], fail_at

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        self.seen.append(denormals_flushed())
        if batch_idx == self.fail_at:
            raise RuntimeError("the run breaks here")


def fit(probe: Probe) -> None:
    torch.manual_seed(0)
    model = SentimentClassifier(50, ["negative", "positive"], cell="gru", embedding_dim=8, hidden_size=6)
    batches = [
        {"token_ids": torch.randint(2, 50, (4, 9)), "lengths": torch.tensor([9, 7, 4, 2]), "labels": torch.tensor([0, 1, 1, 0])}
        for _ in range(3)
    ]
    trainer = pl.Trainer(
        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        accelerator="cpu", callbacks=[probe, *every_run_callbacks()],
    )  # fmt: skip
    trainer.fit(model, train_dataloaders=DataLoader(batches, batch_size=None))


def test_every_sentikit_trainer_trains_with_denormals_flushed_and_restores_the_mode_after():
    probe = Probe()
    fit(probe)
    assert probe.seen == [True, True, True]
    assert not denormals_flushed()


def test_a_failed_run_restores_the_mode_too():
    probe = Probe(fail_at=1)
    with pytest.raises(RuntimeError, match="the run breaks here"):
        fit(probe)
    assert probe.seen == [True, True]
    assert not denormals_flushed()


def test_the_explainer_flushes_while_it_reads_a_review_and_only_then(monkeypatch):
    from test_explain import REVIEW, explainer

    ex = explainer("gru")
    seen = []
    read = ex.model.explain
    monkeypatch.setattr(ex.model, "explain", lambda *args: seen.append(denormals_flushed()) or read(*args))
    report = ex.explain(REVIEW)
    assert seen == [True] and report["method"] == "gates"
    assert not denormals_flushed()
