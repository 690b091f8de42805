"""Denormal floats flushed to zero on the CPU while sentikit trains or explains.

A float32 smaller than about 1.2e-38 is stored as a denormal, and x86 CPUs take a slow path for
arithmetic on it, many times slower than on normal numbers. A recurrence makes them in its backward
pass. The gradient that reaches the early words of a long review through the final state shrinks by
the gates' factor at every step; a few hundred steps back it is below 1e-38, and most of the backward
sweep's products work on such numbers. Long reviews read through the final state (`pooling: last`,
the default) train several times slower for it (`benchmarks/denormals.py` measures it; docs/results.md
has the figures). A GRU soon learns to carry its gradient back and outgrows them; a plain RNN's keeps
vanishing. Explaining pays too: the gates split of a long review replays the same recurrence.

Flushing them to zero (the CPU's FTZ and DAZ modes) costs nothing a float32 model can tell apart: a
weight's gradient sums every step's share, and a share below 1e-38 vanishes in that sum beside the
shares of the words near the end, flushed or not. CUDA devices handle denormals at full speed and
are not affected by this setting.

The mode is a per-thread CPU register, not a torch setting, so it is set around the work, on the thread
that does it, and put back afterwards: a Gradio handler runs on a worker thread, and code that imports
sentikit keeps its own floating-point behaviour.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

_SMALLEST_NORMAL = torch.finfo(torch.float32).tiny


def denormals_flushed() -> bool:
    """Whether this thread flushes denormals to zero: torch can set the mode but not report it, so halve
    the smallest normal float32 and see whether a denormal survives."""
    return (torch.tensor(_SMALLEST_NORMAL) * 0.5).item() == 0.0


@contextmanager
def flush_denormals() -> Iterator[None]:
    """Flush denormals to zero on this thread inside the block, then restore the mode found on entry.
    Where the CPU has no such mode (`torch.set_flush_denormal` returns False), the block runs as is."""
    was_on = denormals_flushed()
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(was_on)


class FlushDenormals(Callback):
    """`flush_denormals` from a trainer's `setup` to its `teardown` (or to the exception that ends it):
    `fit`, `validate`, `test` and `predict` alike, on every DDP process, each of which sets up its own."""

    def __init__(self) -> None:
        self._flushing = ExitStack()

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._flushing.enter_context(flush_denormals())

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._flushing.close()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._flushing.close()
