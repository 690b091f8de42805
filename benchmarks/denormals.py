#!/usr/bin/env python
"""What flushing denormals to zero (`sentikit.training.denormals`) buys a CPU training step, side by side.

Each run trains a fresh model (same seed, same weights) on the first `--batches` IMDB training batches
as `configs/imdb-gru.yaml` serves them (reviews cut at 800 tokens) in buckets of `--batch_size` (64, the
figures in docs/results.md; the config now batches 32): forward, backward, clipping and an AdamW step, the first
two batches untimed. Runs with and without the flush alternate
`--repeats` times and medians are printed, so a busy machine slows both alike. The model is that
config's (two-layer BiGRU, 256 units) with the cell and the pooling varied:

- `pooling: last` (the default, and what the gates split needs): the gradient reaches the early words
  only through the final state, shrinking at every step, and turns denormal a few hundred steps back;
- `pooling: max` (the shipped IMDB setting) hands every position a gradient of its own.

`--after N` first trains each model on the N batches that follow (with the flush, once per case, the
same start for both modes), to see whether training outgrows the denormals: a gated cell learns to
carry the gradient back, a plain RNN's keeps vanishing.

    python benchmarks/denormals.py                # IMDB train from data/imdb/ (about 5 minutes here)
    python benchmarks/denormals.py --cells rnn gru --pooling last --after 200
    python benchmarks/denormals.py --quick        # SST-2 from data/, 4 batches: for CI, figures meaningless
    python benchmarks/denormals.py --data PATH    # another parquet file with `text` and `label` columns
                                                  # (or a folder with train.parquet)

IMDB is not shipped: data/README.md says how to save a copy in data/imdb/.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import itertools
import logging
import statistics
import sys
import time
import typing
from pathlib import Path

import datasets
import torch
import torch.nn.functional as F
import yaml

from sentikit.data.datamodule import SentimentDataModule
from sentikit.training.denormals import flush_denormals
from sentikit.nn.encoder import Cell
from sentikit.nn.classifier import SentimentClassifier

REPO = Path(__file__).resolve().parents[1]
IMDB_TRAIN = REPO / "data/imdb/train.parquet"  # a local copy, not shipped (data/README.md)
SST2_TRAIN = REPO / "data/sst2/train.parquet"
UNTIMED = 2


def seconds_to_train(model: SentimentClassifier, batches: list[dict[str, torch.Tensor]]) -> float:
    """Seconds for batches[UNTIMED:], trained as `training_step` and Lightning's optimisation do."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=model.hparams.learning_rate)
    model.train()
    start = time.perf_counter()
    for step, batch in enumerate(batches):
        if step == UNTIMED:
            start = time.perf_counter()
        loss = F.cross_entropy(model(batch["token_ids"], batch["lengths"]), batch["labels"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cells = list(typing.get_args(Cell))
    parser.add_argument("--cells", nargs="+", choices=cells, default=cells)
    parser.add_argument("--pooling", nargs="+", choices=("last", "max"), default=["last", "max"])
    parser.add_argument("--batches", type=int, default=8, help=f"training batches per run, {UNTIMED} of them untimed")
    parser.add_argument("--repeats", type=int, default=2, help="runs per mode, alternating")
    parser.add_argument("--after", type=int, default=0, help="batches of training before the timed ones")
    parser.add_argument("--batch_size", type=int, default=64, help="reviews per batch (the figures in docs/results.md: 64)")
    parser.add_argument("--data", type=Path, default=IMDB_TRAIN, help=f"training reviews: a parquet file, or a folder with train.parquet (default: {IMDB_TRAIN})")
    parser.add_argument("--quick", action="store_true", help="SST-2 (unless --data is given), 4 batches, a tiny model")
    args = parser.parse_args()
    if args.batches <= UNTIMED:
        parser.error(f"--batches must be over {UNTIMED}")
    datasets.disable_progress_bars()
    logging.getLogger("sentikit").setLevel(logging.WARNING)

    config = yaml.safe_load((REPO / "configs/imdb-gru.yaml").read_text())
    train = args.data / "train.parquet" if args.data.is_dir() else args.data
    if args.quick and args.data == IMDB_TRAIN:
        train = SST2_TRAIN  # the smoke run does not need IMDB
    if not train.is_file():
        sys.exit(f"denormals.py: {train} not found (data/README.md says how to save a copy of IMDB in data/imdb/; or pass --data PATH)")
    data = dict(config["data"], dataset=None, data_files={"train": str(train)}, batch_size=args.batch_size)
    if args.quick:
        data.update(batch_size=8, vocab_size=2_000)
        config["model"].update(hidden_size=16, embedding_dim=8)
        args.batches, args.repeats, args.after = 4, 1, min(args.after, 2)
    dm = SentimentDataModule(**data)
    loader = dm.train_dataloader()
    loader.batch_sampler.set_epoch(0)
    batches = list(itertools.islice(loader, args.batches + args.after))
    batches, earlier = batches[: args.batches], batches[args.batches :]
    tokens = sum(int(batch["lengths"].sum()) for batch in batches[UNTIMED:])
    longest = max(int(batch["lengths"].max()) for batch in batches[UNTIMED:])

    print(f"\nTraining on {len(batches) - UNTIMED} timed batches of {train.parent.name}/{train.name} ({tokens:,} tokens, the longest "
          f"review {longest}), {config['model']['num_layers']}-layer bidirectional, {config['model']['hidden_size']} "
          f"units, {torch.get_num_threads()} threads; tokens/s, medians of {args.repeats}"
          + (f"; each model trained on {len(earlier)} other batches first" if earlier else "") + "\n")  # fmt: skip
    print("| cell | pooling | denormals kept | flushed | speed-up |")
    print("|---|---|---:|---:|---:|")
    for pooling, cell in itertools.product(args.pooling, args.cells):
        torch.manual_seed(0)
        first = SentimentClassifier(dm.vocabulary_size, dm.classes, **dict(config["model"], cell=cell, pooling=pooling))
        if earlier:
            with flush_denormals():
                seconds_to_train(first, earlier)
        seconds: dict[bool, list[float]] = {False: [], True: []}
        for repeat in range(args.repeats):
            for flushed in (False, True) if repeat % 2 == 0 else (True, False):  # who goes first alternates
                torch.manual_seed(0)
                with flush_denormals() if flushed else contextlib.nullcontext():
                    seconds[flushed].append(seconds_to_train(copy.deepcopy(first), batches))
        kept, flushed = (tokens / statistics.median(seconds[mode]) for mode in (False, True))
        print(f"| {cell} | {pooling} | {kept:,.0f} | {flushed:,.0f} | {flushed / kept:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
