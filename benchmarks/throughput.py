#!/usr/bin/env python
"""Training throughput (tokens/s): sentikit's Lightning training path vs a hand-written PyTorch loop.

Both sides train a fresh `SentimentClassifier` (same seed: same initial weights, same dropout masks)
on one fixed list of SST-2 batches from `SentimentDataModule`, set up as in `configs/sst2-<cell>.yaml`.
The hand loop repeats what `configure_optimizers` and Lightning's automatic optimisation do (AdamW,
no decay on vectors, warmup + cosine `LambdaLR` per step, gradient clipping at norm 1.0), so a gap is
the per-step overhead of Lightning and of sentikit's own callbacks and logging; the largest gap between
the two sides' final weights shows they did the same work. Start-up and the first `--warmup` batches
are not timed; the sides alternate `--repeats` times and medians are reported, so a busy machine slows
both alike. Tokens are real tokens (the sum of `batch["lengths"]`), not padded positions. Target: lightning / hand >= 0.95.

    python benchmarks/throughput.py               # lstm, 220 batches, 5 repeats (about 3 minutes here)
    python benchmarks/throughput.py --cell gru --batches 420 --repeats 3
    python benchmarks/throughput.py --quick       # a smoke run for CI: a few batches, figures meaningless
"""

from __future__ import annotations

import argparse
import itertools
import logging
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import datasets
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
import yaml
from pytorch_lightning.loggers import CSVLogger
from torch.utils.data import DataLoader

from sentikit.training.lightning_cli import every_run_callbacks
from sentikit.data.datamodule import SentimentDataModule
from sentikit.training.denormals import flush_denormals
from sentikit.nn.classifier import SentimentClassifier
from sentikit.nn.optim import learning_rate_multiplier

REPO = Path(__file__).resolve().parents[1]


def fixed_batches(data: dict, count: int) -> tuple[list[dict[str, torch.Tensor]], SentimentDataModule]:
    """The first `count` training batches the data module serves (epoch after epoch if need be)."""
    data = dict(data, data_files={split: str(REPO / path) for split, path in data["data_files"].items()})
    dm = SentimentDataModule(**data)
    loader, batches = dm.train_dataloader(), []
    for epoch in range(count // len(loader) + 1):
        loader.batch_sampler.set_epoch(epoch)
        batches += list(itertools.islice(loader, count - len(batches)))
    return batches, dm


def run_by_hand(model: SentimentClassifier, batches: list, warmup: int, seed: int) -> float:
    """Seconds for batches[warmup:] in a plain loop that mirrors `configure_optimizers` and `training_step`."""
    hp = model.hparams
    decay = [p for p in model.parameters() if p.dim() > 1]
    no_decay = [p for p in model.parameters() if p.dim() <= 1]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": hp.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=hp.learning_rate
    )
    total, warmup_steps = len(batches), int(hp.warmup_fraction * len(batches))  # Lightning's estimated_stepping_batches
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: learning_rate_multiplier(k, warmup_steps, total, hp.schedule))
    model.train()
    torch.manual_seed(seed)
    with flush_denormals():  # as `FlushDenormals` does on the Lightning side
        for step, batch in enumerate(batches):
            if step == warmup:
                start = time.perf_counter()
            embedded = model.embedding(model.drop_words(batch["token_ids"]))
            loss = F.cross_entropy(model.classify(embedded, batch["lengths"]), batch["labels"])
            if hp.adversarial > 0:
                pushed = embedded + model.adversarial_perturbation(embedded, loss)
                loss = loss + F.cross_entropy(model.classify(pushed, batch["lengths"]), batch["labels"])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad()
            scheduler.step()
    return time.perf_counter() - start


class StepTimer(pl.Callback):
    """Times from the start of batch `warmup` to the end of the last batch, leaving out start-up; reseeds
    at the first batch so that dropout draws the same masks as the hand loop."""

    def __init__(self, warmup: int, last: int, seed: int) -> None:
        self.warmup, self.last, self.seed = warmup, last, seed

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if batch_idx == 0:
            torch.manual_seed(self.seed)
        if batch_idx == self.warmup:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if batch_idx == self.last:
            self.seconds = time.perf_counter() - self.start


def run_lightning(model: SentimentClassifier, batches: list, warmup: int, seed: int) -> float:
    """Seconds for batches[warmup:] through `Trainer.fit` with the callbacks every `sentikit fit` adds (the
    epoch meter, the random-state saver, the divergence check and the denormal flush), minus the progress
    bar, checkpoints and validation, which the hand loop does not do either."""
    timer = StepTimer(warmup, len(batches) - 1, seed)
    callbacks = [timer, *every_run_callbacks()]
    with tempfile.TemporaryDirectory(prefix="sentikit-throughput-") as logs:
        trainer = pl.Trainer(
            max_epochs=1, gradient_clip_val=1.0, log_every_n_steps=50, logger=CSVLogger(logs), callbacks=callbacks,
            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
            limit_val_batches=0, use_distributed_sampler=False, accelerator="cpu", devices=1,
        )  # fmt: skip
        trainer.fit(model, train_dataloaders=DataLoader(batches, batch_size=None))
    return timer.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cell", choices=["rnn", "lstm", "gru"], default="lstm", help="which configs/sst2-<cell>.yaml")
    parser.add_argument("--batches", type=int, default=220, help="training batches per run, warm-up included")
    parser.add_argument("--warmup", type=int, default=20, help="untimed batches at the start of every run")
    parser.add_argument("--repeats", type=int, default=5, help="runs per side, alternating hand and lightning")
    parser.add_argument("--quick", action="store_true", help="12 batches (2 untimed), 1 repeat")
    args = parser.parse_args()
    if args.quick:
        args.batches, args.warmup, args.repeats = 12, 2, 1
    if not 0 <= args.warmup < args.batches:
        parser.error(f"--warmup must lie in 0..{args.batches - 1}")
    datasets.disable_progress_bars()
    for name in ("sentikit", "pytorch_lightning", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # Lightning notices about the deliberately bare set-up (no workers, no validation, few batches).
    warnings.filterwarnings("ignore", message=".*(many workers|no `val_dataloader`|logging interval|LeafSpec).*")

    config = yaml.safe_load((REPO / f"configs/sst2-{args.cell}.yaml").read_text())
    seed = config.get("seed_everything", 42)
    batches, dm = fixed_batches(config["data"], args.batches)
    tokens = sum(int(batch["lengths"].sum()) for batch in batches[args.warmup :])
    steps = len(batches) - args.warmup

    def fresh_model() -> SentimentClassifier:
        torch.manual_seed(seed)
        return SentimentClassifier(vocab_size=dm.vocabulary_size, label_names=dm.classes, **config["model"])

    runners = {"hand": run_by_hand, "lightning": run_lightning}
    seconds: dict[str, list[float]] = {side: [] for side in runners}
    for repeat in range(args.repeats):
        models = {"hand": fresh_model(), "lightning": fresh_model()}
        for side in sorted(runners, reverse=repeat % 2 == 1):  # who goes first alternates
            seconds[side].append(runners[side](models[side], batches, args.warmup, seed))
        pairs = zip(models["hand"].parameters(), models["lightning"].parameters())
        gap = max((h - l).abs().max().item() for h, l in pairs)

    print(f"\nSST-2 training, configs/sst2-{args.cell}.yaml: {steps} timed batches of {len(batches)} "
          f"({tokens:,} tokens), median of {args.repeats} runs per side, alternating, {torch.get_num_threads()} threads")  # fmt: skip
    print(f"largest weight difference between the sides after training: {gap:.2g}\n")
    print("| side | tokens/s | steps/s | runs (s) |")
    print("|---|---:|---:|---|")
    median = {side: statistics.median(runs) for side, runs in seconds.items()}
    for side, runs in seconds.items():
        print(f"| {side} | {tokens / median[side]:,.0f} | {steps / median[side]:.2f} | {', '.join(f'{s:.1f}' for s in runs)} |")
    overhead = 1000 * (median["lightning"] - median["hand"]) / steps
    print(f"\nlightning / hand: {median['hand'] / median['lightning']:.3f} (target >= 0.95); Lightning's overhead {overhead:+.1f} ms per step")


if __name__ == "__main__":
    main()
