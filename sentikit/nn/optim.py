"""The optimiser every sentikit model trains with: AdamW, linear warmup, then a decay to zero."""

from __future__ import annotations

import math
from typing import Any, Literal

import pytorch_lightning as pl
import torch

from sentikit.errors import ConfigError

Schedule = Literal["cosine", "linear", "constant"]


def check_optimizer_options(learning_rate: float, weight_decay: float, warmup_fraction: float) -> None:
    """Refuse settings `adamw_with_schedule` cannot use when the model is built, not at the first step."""
    if learning_rate <= 0 or weight_decay < 0 or not 0 <= warmup_fraction < 1:
        raise ConfigError(
            f"need learning_rate > 0, weight_decay >= 0 and 0 <= warmup_fraction < 1; "
            f"got {learning_rate}, {weight_decay}, {warmup_fraction}"
        )


def adamw_with_schedule(
    module: pl.LightningModule, learning_rate: float, weight_decay: float, warmup_fraction: float, schedule: Schedule
) -> dict[str, Any]:
    """AdamW with linear warmup and `schedule` decay over the trainer's whole run, stepped per batch.

    Matrices (weights, embeddings) decay; vectors (every bias, `bias_ih_l0` included) do not."""
    decay = [p for p in module.parameters() if p.dim() > 1]
    no_decay = [p for p in module.parameters() if p.dim() <= 1]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=learning_rate
    )
    total = module.trainer.estimated_stepping_batches
    total = int(total) if math.isfinite(total) else None
    warmup = int(warmup_fraction * total) if total else 0
    schedule = schedule if total else "constant"

    def multiplier(step: int) -> float:
        return learning_rate_multiplier(step, warmup, total, schedule)

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, multiplier)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def learning_rate_multiplier(step: int, warmup: int, total: int | None, schedule: Schedule) -> float:
    """Linear warmup over `warmup` steps, then `schedule` decay to zero at step `total`."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant" or total is None:
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "linear":
        return 1.0 - progress
    return 0.5 * (1.0 + math.cos(math.pi * progress))
