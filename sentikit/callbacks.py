"""Callbacks of every `sentikit fit`: checkpoints written atomically with the tokenizer beside them, and
a meter of what each epoch cost."""

from __future__ import annotations

import os
import resource
import sys
import time
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, ModelCheckpoint

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


class TrainingMeter(Callback):
    """Logs what an epoch of training cost: `train_seconds` (the training batches only, validation
    excluded), `train_tokens_per_sec` (real tokens, the sum of `batch["lengths"]` over every process)
    and `memory_peak_mb` with `memory_start_mb` (CUDA memory allocated by torch on a GPU; the process's
    resident memory on the CPU, rank 0's). `sentikit compare` reads these to compare cells; any logger
    records them, one row per epoch."""

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start_memory = _reset_peak_memory(pl_module.device)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._tokens, self._started = 0, time.perf_counter()
        self._finished = self._started

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        self._tokens += int(batch["lengths"].sum())
        self._finished = time.perf_counter()  # the last batch's end: validation runs after it

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        seconds = max(self._finished - self._started, 1e-9)
        tokens = trainer.strategy.reduce(torch.tensor(float(self._tokens), device=pl_module.device), reduce_op="sum")
        figures = {
            "train_seconds": seconds,
            "train_tokens_per_sec": float(tokens) / seconds,
            "memory_start_mb": self._start_memory,
            "memory_peak_mb": _peak_memory(pl_module.device),
        }
        pl_module.log_dict(figures, on_epoch=True, rank_zero_only=True)


_MB = 2.0**20


def _reset_peak_memory(device: torch.device) -> float:
    """Start counting the peak afresh; returns the memory in use now (MB)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device) / _MB
    try:  # Linux: writing 5 to clear_refs resets the resident high-water mark (VmHWM) to the current RSS
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass  # elsewhere the peak counts from the process's start
    return _resident_mb("VmRSS")


def _peak_memory(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / _MB
    return _resident_mb("VmHWM")


def _resident_mb(field: str) -> float:
    """`VmRSS` (now) or `VmHWM` (peak) of this process from /proc, or the peak from `getrusage`."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (_MB if sys.platform == "darwin" else 1024.0)  # bytes on macOS, kB elsewhere
