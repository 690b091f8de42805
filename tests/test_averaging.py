"""Tail averaging: the model ends as the plain mean of its weights over the last steps, and nothing
before those steps (validation, checkpoints, resuming) sees a mean that does not exist yet."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from sentikit.averaging import TailAveraging
from sentikit.errors import ConfigError

STEPS_PER_EPOCH = 8


class Regression(pl.LightningModule):
    """A linear model on fixed data, which records its weight at each validation."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(4, 1)
        self.validated: list[torch.Tensor] = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.linear(x), y)

    def validation_step(self, batch, batch_idx):
        if batch_idx == 0:
            self.validated.append(self.linear.weight.detach().clone())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


def loader() -> DataLoader:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(4 * STEPS_PER_EPOCH, 4, generator=generator)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.3 * torch.randn(len(x), 1, generator=generator)
    return DataLoader(TensorDataset(x, y), batch_size=4)


class WeightRecorder(pl.Callback):
    """The weight after every optimizer step, before any averaging swaps it."""

    def __init__(self) -> None:
        self.weights: list[torch.Tensor] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.weights.append(pl_module.linear.weight.detach().clone())


def trainer(tmp_path, epochs: int, *callbacks, **kwargs) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=epochs, callbacks=list(callbacks), default_root_dir=tmp_path, logger=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, **kwargs,
    )


def test_the_trained_model_is_the_mean_of_its_weights_over_the_last_fraction_of_steps(tmp_path):
    model, recorder = Regression(), WeightRecorder()
    # The recorder runs first, so it sees each step's trained weight before the mean is updated.
    trainer(tmp_path, 4, recorder, TailAveraging(fraction=0.25), enable_checkpointing=False).fit(model, loader())

    assert len(recorder.weights) == 4 * STEPS_PER_EPOCH
    tail = torch.stack(recorder.weights[-STEPS_PER_EPOCH:])
    torch.testing.assert_close(model.linear.weight.detach(), tail.mean(0))
    assert not torch.allclose(model.linear.weight.detach(), recorder.weights[-1])


def test_validation_sees_the_trained_weights_until_the_tail_and_the_mean_within_it(tmp_path):
    model, recorder = Regression(), WeightRecorder()
    fit = trainer(tmp_path, 4, recorder, TailAveraging(fraction=0.5), enable_checkpointing=False)
    fit.fit(model, loader(), loader())

    first, second, third, fourth = model.validated
    torch.testing.assert_close(first, recorder.weights[STEPS_PER_EPOCH - 1])
    torch.testing.assert_close(second, recorder.weights[2 * STEPS_PER_EPOCH - 1])
    torch.testing.assert_close(third, torch.stack(recorder.weights[2 * STEPS_PER_EPOCH : 3 * STEPS_PER_EPOCH]).mean(0))
    torch.testing.assert_close(fourth, torch.stack(recorder.weights[2 * STEPS_PER_EPOCH :]).mean(0))


class Crash(pl.Callback):
    """Fails as the given epoch starts, as a killed run would, after the previous epoch's checkpoint."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch:
            raise RuntimeError("interrupted")


@pytest.mark.parametrize("stop_after", [1, 3], ids=["before the tail", "within the tail"])
def test_a_run_resumed_from_its_checkpoint_ends_with_the_same_mean_as_one_never_stopped(tmp_path, stop_after):
    whole = Regression()
    trainer(tmp_path / "whole", 4, TailAveraging(fraction=0.5), enable_checkpointing=False).fit(whole, loader())

    checkpoint = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "parts", save_last=True)
    with pytest.raises(RuntimeError, match="interrupted"):
        trainer(tmp_path / "parts", 4, TailAveraging(fraction=0.5), checkpoint, Crash(stop_after)).fit(Regression(), loader())
    saved = torch.load(tmp_path / "parts" / "last.ckpt", weights_only=False)
    assert saved["global_step"] == stop_after * STEPS_PER_EPOCH
    assert ("averaging_state" in saved) == (stop_after > 2)

    resumed = Regression()
    trainer(tmp_path / "parts", 4, TailAveraging(fraction=0.5), enable_checkpointing=False).fit(
        resumed, loader(), ckpt_path=tmp_path / "parts" / "last.ckpt"
    )
    torch.testing.assert_close(resumed.linear.weight, whole.linear.weight)


@pytest.mark.parametrize("fraction", [0, -0.1, 1.5])
def test_a_fraction_outside_zero_to_one_is_refused(fraction):
    with pytest.raises(ConfigError, match="fraction"):
        TailAveraging(fraction=fraction)
