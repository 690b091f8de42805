"""The checkpoint callback: best and last checkpoints, written atomically, with the tokenizer beside them."""

from __future__ import annotations

import os

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint

from sentikit.tokenizer import save_tokenizer


class SentikitCheckpoint(ModelCheckpoint):
    """`ModelCheckpoint` that also writes `tokenizer.json` into the checkpoint folder, and never leaves a
    half-written checkpoint in place of a good one: each file is written under a temporary name and
    renamed into place (a rename is atomic on one file system)."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        tokenizer = getattr(trainer.datamodule, "tokenizer", None)
        if stage == "fit" and trainer.is_global_zero and self.dirpath and tokenizer is not None:
            save_tokenizer(tokenizer, os.path.join(self.dirpath, "tokenizer.json"))

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        partial = filepath + ".partial"
        super()._save_checkpoint(trainer, partial)
        if trainer.is_global_zero:
            os.replace(partial, filepath)
        self._last_checkpoint_saved = filepath
