"""Faults for test_faults.py to inject into a real `sentikit fit` (listed as a callback in its config).

`KillAt(step)` sends the process SIGKILL at a training step, as `kill -9` would. `KillAt(step,
during_save=True)` waits for the first checkpoint write after that step, writes half of the file and
then sends SIGKILL: a process killed in the middle of a save.
"""

import os
import signal

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback


def kill_now() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class KillAt(Callback):
    def __init__(self, step: int, during_save: bool = False) -> None:
        self.step, self.during_save = step, during_save

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if not self.during_save:
            return
        io = trainer.strategy.checkpoint_io
        save = io.save_checkpoint

        def save_then_die(checkpoint, path, storage_options=None):
            if trainer.global_step < self.step:
                return save(checkpoint, path, storage_options)
            save(checkpoint, path, storage_options)
            with open(path, "r+b") as handle:  # a kill mid-write leaves the first part of the file
                handle.truncate(os.path.getsize(path) // 2)
            kill_now()

        io.save_checkpoint = save_then_die

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not self.during_save and trainer.global_step >= self.step:
            kill_now()
