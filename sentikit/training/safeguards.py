"""Callbacks that keep a long run's work safe: an exact resume after a kill, and a stop at the first
non-finite loss before diverged weights can be validated or saved."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from sentikit.errors import ConfigError


class TrainingDiverged(ConfigError):
    """The loss or the weights stopped being finite numbers: a setting to change, not a bug to report."""


class RandomState(Callback):
    """Saves the random generators' states (torch, CUDA, NumPy, Python) in every checkpoint and puts them
    back when training resumes from one.

    Lightning restores weights, optimiser, schedule and loop counters, but not the generators: after a
    resume the dropout and word-dropout masks would be drawn from a fresh seed and the run would drift
    from the one that was interrupted. Checkpoints are written at the end of an epoch's validation, and
    nothing draws a random number between that moment and the next epoch's start, so the states are
    restored there (after the resumed run's sanity check, which draws its own). The batches themselves
    come from `(seed, epoch)` (`sampler.EpochOrder`) and need nothing saved.

    The states are plain tensors, lists and numbers, so checkpoints still load with `weights_only=True`.
    Under DDP each process resumes with rank 0's states; processes are seeded alike, so they match."""

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        kind, keys, position, has_gauss, gauss = np.random.get_state()
        version, python_state, gauss_next = random.getstate()
        states: dict[str, Any] = {
            "torch": torch.get_rng_state(),
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, gauss],
            "python": [version, list(python_state), gauss_next],
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            states["cuda"] = torch.cuda.get_rng_state_all()
        return states

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._pending is None:
            return
        states, self._pending = self._pending, None
        torch.set_rng_state(states["torch"])
        kind, keys, position, has_gauss, gauss = states["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
        version, python_state, gauss_next = states["python"]
        random.setstate((version, tuple(python_state), gauss_next))
        if "cuda" in states and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(states["cuda"])


class StopOnNonFiniteLoss(Callback):
    """Stops training at the first step whose loss is NaN or infinite, with the step and the likely cause
    named, instead of training on (every later step is NaN too) and validating or saving NaN weights.

    The loss is checked after every step; the weights before every validation, which catches the one
    case the loss cannot: a last step of the epoch whose finite loss had an infinite gradient. Both stop
    with `TrainingDiverged`, which the command line prints as one line. No checkpoint is written from
    the diverged state; the last good `last.ckpt` stays in place. Under DDP every process stops at the
    same step (a NaN on any one of them is shared)."""

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        diverged = trainer.strategy.reduce_boolean_decision(not bool(torch.isfinite(loss.detach())), all=False)
        if diverged:
            raise TrainingDiverged(
                f"training stopped at step {trainer.global_step} (epoch {trainer.current_epoch}, batch {batch_idx}): "
                f"the loss is {float(loss):.4g}. {likely_cause(trainer, pl_module)} No checkpoint was written from it."
            )

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.training:
            return
        bad = [name for name, p in pl_module.named_parameters() if not bool(torch.isfinite(p.detach()).all())]
        if trainer.strategy.reduce_boolean_decision(bool(bad), all=False):
            raise TrainingDiverged(
                f"training stopped at step {trainer.global_step} (epoch {trainer.current_epoch}): the weights "
                f"{', '.join(bad[:3]) or 'of another process'} are no longer finite. {likely_cause(trainer, pl_module)} "
                "No checkpoint was written from them."
            )


def likely_cause(trainer: pl.Trainer, pl_module: pl.LightningModule) -> str:
    """The setting most likely to blame, in the order users usually get them wrong."""
    learning_rate = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None
    configured = getattr(pl_module.hparams, "learning_rate", learning_rate)
    if configured is not None and configured > 0.05:
        return f"The likely cause is the learning rate ({configured:g}): try model.learning_rate around 1e-3."
    if not trainer.gradient_clip_val:
        return "The likely cause is an exploding gradient: set trainer.gradient_clip_val (1.0 is a good start) or lower model.learning_rate."
    if str(trainer.precision).startswith("16"):
        return "The likely cause is float16 overflow: use trainer.precision bf16-mixed or 32-true, or lower model.learning_rate."
    return f"Lower model.learning_rate (now {configured:g}) or trainer.gradient_clip_val ({trainer.gradient_clip_val:g})."
