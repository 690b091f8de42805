#!/usr/bin/env python
"""Padding fraction of IMDB training batches: `BucketBatchSampler` vs plain random batches.

A recurrent model pays for every padded position it carries, so the share of padding in a batch is
wasted work. This script tokenizes IMDB train with the real pipeline (`SentimentDataModule`, word
tokenizer; 10% carved out for validation as in training, leaving 22,500 reviews), cuts batches of 64
both ways, and prints padded positions / all positions (batch size x longest review, summed over the
batches of 5 epochs) per `max_length`.

    python benchmarks/padding.py                  # IMDB train from data/imdb/ (about 15 s here)
    python benchmarks/padding.py --quick          # 3,000 reviews (a seeded sample), for CI; falls back to
                                                  # the shipped SST-2 when data/imdb/ is absent
    python benchmarks/padding.py --data PATH      # another parquet file with `text` and `label` columns

The data are tokenized once, without truncation; each `max_length` then clips the token counts with
`np.minimum`, which is exactly what the pipeline's truncation (`ids[:max_length]`) does to them, and
saves re-tokenizing 25,000 reviews per row. Target: bucketing pads at most 5%.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

import datasets
import numpy as np
import pyarrow.parquet as pq

from sentikit.data.datamodule import SentimentDataModule
from sentikit.data.sampler import BucketBatchSampler

REPO = Path(__file__).resolve().parents[1]
IMDB_TRAIN = REPO / "data/imdb/train.parquet"  # a local copy, not shipped (data/README.md)
BATCH_SIZE, SEED, QUICK_REVIEWS = 64, 42, 3_000
EPOCHS = 5  # the bucketed figure moves by about half a point from epoch to epoch: pool a few
NO_TRUNCATION = 10**9


def padding_fraction(lengths: np.ndarray, batches: list[np.ndarray]) -> float:
    """Padded positions / all positions, where a batch occupies `len(batch) x its longest review`."""
    positions = sum(len(b) * int(lengths[b].max()) for b in batches)
    return 1.0 - sum(int(lengths[b].sum()) for b in batches) / positions


def random_batches(lengths: np.ndarray) -> list[np.ndarray]:
    """What a plain `DataLoader(shuffle=True, batch_size=64)` would serve over `EPOCHS` epochs."""
    rng = np.random.default_rng(SEED)
    orders = [rng.permutation(len(lengths)) for _ in range(EPOCHS)]
    return [order[start : start + BATCH_SIZE] for order in orders for start in range(0, len(order), BATCH_SIZE)]


def bucket_batches(lengths: np.ndarray) -> list[np.ndarray]:
    """What training serves over `EPOCHS` epochs: `BucketBatchSampler` as `SentimentDataModule` builds it."""
    sampler = BucketBatchSampler(lengths, BATCH_SIZE, shuffle=True, seed=SEED)  # default bucket_size
    batches = []
    for epoch in range(EPOCHS):
        sampler.set_epoch(epoch)
        batches += [np.asarray(batch) for batch in sampler]
    return batches


def token_lengths(data: Path, quick: bool) -> np.ndarray:
    """Token counts of the training split (train minus the carved-out validation), untruncated."""
    with tempfile.TemporaryDirectory(prefix="sentikit-padding-") as tmp:
        if quick:
            # IMDB train is sorted by label, so its first 3,000 rows hold one class, which the data
            # module rejects ("nothing to learn"): take a seeded sample instead.
            table = pq.read_table(data)
            rows = np.random.default_rng(SEED).choice(table.num_rows, min(QUICK_REVIEWS, table.num_rows), replace=False)
            data = Path(tmp) / "sample.parquet"
            pq.write_table(table.take(np.sort(rows)), data)
        dm = SentimentDataModule(data_files={"train": str(data)}, max_length=NO_TRUNCATION, batch_size=BATCH_SIZE, seed=SEED)
        return dm.splits["train"].lengths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=IMDB_TRAIN, help=f"training reviews (default: {IMDB_TRAIN})")
    parser.add_argument("--max-lengths", type=int, nargs="+", default=[256, 400, 512, NO_TRUNCATION], metavar="N")
    parser.add_argument("--quick", action="store_true", help=f"only {QUICK_REVIEWS:,} reviews")
    args = parser.parse_args()
    if args.quick and args.data == IMDB_TRAIN and not args.data.is_file():
        # A smoke run on a checkout without a local IMDB copy: the shipped SST-2 exercises the same code.
        args.data = REPO / "data/sst2/train.parquet"
        print(f"padding.py: {IMDB_TRAIN} not found; the quick run uses {args.data}")
    if not args.data.is_file():
        print(f"padding.py: {args.data} not found (data/README.md says how to save a copy of IMDB in data/imdb/; or pass --data PATH)", file=sys.stderr)
        sys.exit(1)
    datasets.disable_progress_bars()
    logging.getLogger("sentikit").setLevel(logging.WARNING)

    untruncated = token_lengths(args.data, args.quick)
    print(f"\nPadding in training batches of {BATCH_SIZE}, {EPOCHS} epochs pooled: {args.data}, {len(untruncated):,} training reviews")
    print(f"(median {int(np.median(untruncated))} tokens, longest {untruncated.max()}; seed {SEED})\n")
    print("| sampler | max_length | batches per epoch | padding % |")
    print("|---|---:|---:|---:|")
    for max_length in args.max_lengths:
        lengths = np.minimum(untruncated, max_length)
        shown = "none" if max_length == NO_TRUNCATION else str(max_length)
        for name, batches in (
            ("random", random_batches(lengths)),
            ("BucketBatchSampler", bucket_batches(lengths)),
        ):
            print(f"| {name} | {shown} | {len(batches) // EPOCHS} | {100 * padding_fraction(lengths, batches):.1f}% |")


if __name__ == "__main__":
    main()
