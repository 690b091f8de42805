"""One line per epoch in a job log.

The rich progress bar draws only on a terminal: with stdout sent to a file (`sentikit fit ... > log`, a
batch scheduler) a run would print nothing between the model summary and its end. `EpochLines` prints,
when stdout is not a terminal, one plain line per training epoch, so a log shows the run moving:

    epoch 2/3 step 1054 train_loss 0.3121 val_acc 0.8532 tokens/s 12,345 elapsed 0:06:12

and, for a run over several data sources, each source's validation accuracy after the overall one
(`val_acc 0.8532 (sst2 0.8612, imdb 0.8490)`).
"""

from __future__ import annotations

import sys
import time

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback


class EpochLines(Callback):
    """Print one line per training epoch to stdout when it is not a terminal (rank zero only).

    The speed is `TrainingMeter`'s `train_tokens_per_sec`, summed over every process, which it logs in the
    same hook just before (`every_run_callbacks` puts it first): the tokens are counted once, not twice.

    Args:
        always: print even on a terminal (where the progress bar already shows the same figures).
    """

    def __init__(self, always: bool = False) -> None:
        self.always = always
        self._run_started = 0.0

    @property
    def enabled(self) -> bool:
        return self.always or not sys.stdout.isatty()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._run_started = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.enabled and trainer.is_global_zero:
            speed = trainer.callback_metrics.get("train_tokens_per_sec")
            elapsed = time.perf_counter() - self._run_started
            print(epoch_line(trainer, None if speed is None else float(speed), elapsed), flush=True)


def epoch_line(trainer: pl.Trainer, tokens_per_sec: float | None, elapsed: float) -> str:
    """`epoch E/N step S train_loss L val_acc A tokens/s T elapsed H:MM:SS`; a figure not logged
    (no validation this epoch, no loss logged yet, no speed measured) reads `-`."""
    metrics = trainer.callback_metrics

    def figure(name: str) -> str:
        value = metrics.get(name)
        return f"{float(value):.4f}" if value is not None else "-"

    sources = [(name.split("/", 1)[1], figure(name)) for name in metrics if name.startswith("val_acc/")]
    per_source = f" ({', '.join(f'{source} {value}' for source, value in sources)})" if sources else ""
    speed = f"{tokens_per_sec:,.0f}" if tokens_per_sec is not None else "-"
    epochs = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
    minutes, seconds = divmod(int(elapsed), 60)
    hours, minutes = divmod(minutes, 60)
    return (
        f"epoch {trainer.current_epoch + 1}{epochs} step {trainer.global_step} "
        f"train_loss {figure('train_loss')} val_acc {figure('val_acc')}{per_source} "
        f"tokens/s {speed} elapsed {hours}:{minutes:02d}:{seconds:02d}"
    )
