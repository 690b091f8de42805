"""Callbacks of every `sentikit fit`: checkpoints written atomically with the tokenizer beside them, and
a meter of what each epoch cost."""

from __future__ import annotations

import os
import resource
import shutil
import sys
import time
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, ModelCheckpoint

from sentikit.atomic import sync_folder
from sentikit.errors import ConfigError
from sentikit.data.tokenizer import save_tokenizer


class SentikitCheckpoint(ModelCheckpoint):
    """`ModelCheckpoint` that also writes `tokenizer.json` into the checkpoint folder, and never leaves a
    half-written checkpoint in place of a good one: each file is written under a temporary name and
    renamed into place (a rename is atomic on one file system), so a kill or a full disk during a save
    leaves the previous file whole.

    Before training starts it checks that the folder can be written and has room for the checkpoints
    (`checkpoint_bytes`), so that an unwritable or full output folder fails at once, not after an epoch."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        try:
            super().setup(trainer, pl_module, stage)  # creates the folder
        except OSError as error:
            raise ConfigError(f"cannot create the checkpoint folder {self.dirpath}: {error.strerror or error}") from None
        if stage != "fit" or not trainer.is_global_zero or not self.dirpath:
            return
        # best and last, and one more written beside them before it replaces one
        check_room(self.dirpath, checkpoint_bytes(pl_module) * (3 if self.save_last else 2))
        tokenizer = getattr(trainer.datamodule, "tokenizer", None)
        if tokenizer is not None:
            save_tokenizer(tokenizer, os.path.join(self.dirpath, "tokenizer.json"))

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resume in a folder that was moved or copied (a run trained on a GPU machine and brought back).

        Lightning restores the best score and the top-k record only when the checkpoint folder has the
        same absolute path it had when saved. Elsewhere it keeps the old best path alone, so the next
        epoch, however bad, would replace `best.ckpt`, and a run with no epoch left has no best score.
        When the recorded best checkpoint is found by name in this folder, the record is moved here."""
        saved_in = state_dict.get("dirpath")
        if self.dirpath and saved_in and saved_in != self.dirpath:

            def here(path: str) -> str:
                return os.path.join(self.dirpath, os.path.basename(path)) if path else path

            best = state_dict.get("best_model_path") or ""
            if best and os.path.isfile(here(best)):
                state_dict = {
                    **state_dict,
                    "dirpath": self.dirpath,
                    "best_model_path": here(best),
                    "kth_best_model_path": here(state_dict.get("kth_best_model_path") or ""),
                    "last_model_path": here(state_dict.get("last_model_path") or ""),
                    "best_k_models": {here(k): v for k, v in (state_dict.get("best_k_models") or {}).items()},
                }
        super().load_state_dict(state_dict)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_every_time(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_every_time(trainer)

    def _save_last_every_time(self, trainer: pl.Trainer) -> None:
        """Lightning 2.6 writes `last.ckpt` only when a top-k checkpoint was written at the same step, so
        after an epoch that did not improve, `last.ckpt` would still hold an older state and a resume
        would repeat (and re-randomise) epochs. Here it is written at every save point."""
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        partial = filepath + ".partial"
        try:
            super()._save_checkpoint(trainer, partial)
            if trainer.is_global_zero:
                # Lightning writes without a sync: flush the file, then the rename, to the disk, so that
                # a power loss cannot leave a renamed but empty checkpoint.
                with open(partial, "rb") as written:
                    os.fsync(written.fileno())
                os.replace(partial, filepath)
                sync_folder(os.path.dirname(filepath) or ".")
        except OSError as error:
            if trainer.is_global_zero and os.path.exists(partial):
                os.remove(partial)
            kept = " (the previous one is kept)" if os.path.exists(filepath) else ""
            raise ConfigError(f"could not write the checkpoint {filepath}{kept}: {error.strerror or error}") from None
        self._last_checkpoint_saved = filepath


def checkpoint_bytes(pl_module: pl.LightningModule) -> int:
    """About the size of one checkpoint: the weights, AdamW's two moments, and a copy of the weights for
    weight averaging, in the parameters' own precision."""
    weights = sum(p.numel() * p.element_size() for p in pl_module.parameters())
    return 4 * weights


def check_writable(folder: str | os.PathLike, what: str = "checkpoint folder") -> None:
    """Create `folder` if needed and write a file into it, or fail with a message naming it."""
    probe = os.path.join(folder, f".sentikit-write-test-{os.getpid()}")  # one per process: DDP ranks check at once
    try:
        os.makedirs(folder, exist_ok=True)
        with open(probe, "wb") as handle:
            handle.write(b"0")
        os.remove(probe)
    except OSError as error:
        raise ConfigError(f"cannot write into the {what} {folder}: {error.strerror or error}") from None


def check_room(folder: str | os.PathLike, needed: int) -> None:
    """Fail with a clear message unless `folder` takes a new file and has `needed` bytes free."""
    check_writable(folder)
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise ConfigError(
            f"the checkpoint folder {folder} has {free / 2**20:.1f} MB free, but checkpoints of this model need "
            f"about {needed / 2**20:.1f} MB: free some space or point --checkpoint.dirpath elsewhere"
        )


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
