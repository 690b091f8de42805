"""Tail averaging: the plain mean of the weights over the last part of training.

An EMA with decay 0.99 spans about 100 steps, and under a schedule that decays to zero it scores as the
last weights do; a long decay (0.999) still carries the weights it started from (a share of
`decay ** steps`), early ones included. A uniform mean from a start step on weighs every late step alike
and none before it. This is stochastic weight averaging (Izmailov et al. 2018) without its learning-rate
change: the schedule stays as configured, and the mean gathers the steps where it runs low.
"""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import WeightAveraging

from sentikit.errors import ConfigError


class TailAveraging(WeightAveraging):
    """Average the weights after each of the last `fraction` of the run's optimizer steps.

    Until the first of those steps there is no average: validation, checkpoints and early stopping see
    the weights being trained. From then on they see the mean (Lightning's `WeightAveraging` swaps it in),
    and when training ends the model keeps it."""

    def __init__(self, fraction: float = 0.4, device: torch.device | str | int | None = None, use_buffers: bool = True):
        if not 0 < fraction <= 1:
            raise ConfigError(f"weight_averaging fraction must be in (0, 1], the share of steps to average; got {fraction}")
        super().__init__(device=device, use_buffers=use_buffers)
        self.fraction = fraction
        self.start_step: int | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        total = trainer.estimated_stepping_batches
        if not math.isfinite(total):
            raise ConfigError("weight_averaging TailAveraging needs a run of known length: set trainer.max_epochs or max_steps")
        self.start_step = int(total) - max(1, round(self.fraction * total))

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        return step_idx is not None and self.start_step is not None and step_idx >= self.start_step

    @property
    def started(self) -> bool:
        """Whether the mean holds any step yet (before that it holds the initial weights)."""
        return self._average_model is not None and int(self._average_model.n_averaged) > 0

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.started:
            super().on_validation_epoch_start(trainer, pl_module)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.started:
            super().on_validation_epoch_end(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.started:
            super().on_train_end(trainer, pl_module)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        # Before the tail a checkpoint holds the trained weights alone, as it would without averaging.
        if self.started:
            super().on_save_checkpoint(trainer, pl_module, checkpoint)

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        # A checkpoint from before the tail has no average to restore: the mean starts empty, as it should.
        if "averaging_state" in checkpoint:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)
