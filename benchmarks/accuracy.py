#!/usr/bin/env python
"""SST-2 accuracy of RNN vs LSTM vs GRU, trained from scratch with the same data, tokenizer, budget and seed.

Each cell is trained through the real `sentikit fit` path (the `configs/sst2-<cell>.yaml` files differ only
in `model.cell`); the best checkpoint by validation accuracy is then evaluated on validation (872
sentences) and test (1,821 sentences). Prints one table row per cell.

    python benchmarks/accuracy.py                   # full budget of the configs (about 25 minutes here)
    python benchmarks/accuracy.py --cells gru lstm  # a subset
    python benchmarks/accuracy.py --quick           # a smoke run: 10 batches per cell, figures meaningless
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from sentikit.cli import SentikitCLI
from sentikit.data import SentimentDataModule
from sentikit.model import SentimentClassifier

REPO = Path(__file__).resolve().parents[1]


def train_and_evaluate(cell: str, root: Path, extra: list[str]) -> dict[str, float]:
    args = ["fit", "-c", str(REPO / f"configs/sst2-{cell}.yaml"), "--trainer.default_root_dir", str(root / cell)]
    args += ["--trainer.enable_progress_bar", "false", "--trainer.callbacks", "[]", "--trainer.enable_model_summary", "false"]
    start = time.perf_counter()
    cli = SentikitCLI(SentimentClassifier, SentimentDataModule, trainer_defaults={"use_distributed_sampler": False}, args=args + extra)
    minutes = (time.perf_counter() - start) / 60
    trainer, checkpoint = cli.trainer, cli.trainer.checkpoint_callback
    best_epoch = int(_load_epoch(checkpoint.best_model_path))
    (validation,) = trainer.validate(cli.model, datamodule=cli.datamodule, ckpt_path="best", verbose=False)
    (test,) = trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path="best", verbose=False)
    return {
        "parameters": cli.model.num_parameters,
        "epochs": trainer.current_epoch,
        "best_epoch": best_epoch + 1,
        "val_acc": validation["val_acc"],
        "val_f1": validation["val_f1"],
        "test_acc": test["test_acc"],
        "minutes": minutes,
    }


def _load_epoch(path: str) -> int:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)["epoch"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", nargs="+", default=["rnn", "lstm", "gru"], choices=["rnn", "lstm", "gru"])
    parser.add_argument("--out", type=Path, default=None, help="where runs go (default: a temporary folder)")
    parser.add_argument("--quick", action="store_true", help="10 training batches per cell, one epoch")
    args = parser.parse_args()
    extra = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "10"] if args.quick else []
    root = args.out or Path(tempfile.mkdtemp(prefix="sentikit-accuracy-"))
    rows = {cell: train_and_evaluate(cell, root, extra) for cell in args.cells}

    print(f"\nSST-2, from scratch, same budget ({'quick smoke run' if args.quick else 'configs/sst2-*.yaml'}); runs in {root}")
    print(f"| cell | parameters | epochs (best) | val acc | val macro-F1 | test acc | train minutes |")
    print(f"|---|---:|---:|---:|---:|---:|---:|")
    for cell, r in rows.items():
        print(
            f"| {cell} | {r['parameters']:,} | {r['epochs']} ({r['best_epoch']}) | {100 * r['val_acc']:.2f}% "
            f"| {100 * r['val_f1']:.2f}% | {100 * r['test_acc']:.2f}% | {r['minutes']:.1f} |"
        )


if __name__ == "__main__":
    main()
