#!/usr/bin/env python
"""Faithfulness of the word scores: deletion AOPC and cost per review, per model.

Runs `sentikit.explain.faithfulness.evaluate_faithfulness` (see its docstring for the definitions) on the
first `--limit` reviews of a split and prints one Markdown table per model: the gates split
(`contributions`), occlusion, gradient x input, Integrated Gradients (Captum, 50 steps) and a random
ordering. Target (docs/explanations.md): contribution AOPC >= 90% of IG's and >= 3x random's, at >= 20x lower cost.
Costs are measured on one torch thread by default (`--threads`), both one review at a time and with
the reviews scored in batches of 32 (`--batch-size`): the cost of explaining one review on its own,
and the cost per review of scoring a dataset.

The models are the shipped LSTM and GRU bundles unless `--bundle` or `--ckpt` names others. A bundle
runs its TorchScript code for every method (the gradient methods differentiate through it); a
checkpoint runs the same code eagerly.

    python benchmarks/faithfulness.py --limit 872  # the shipped bundles, all of SST-2 validation
    python benchmarks/faithfulness.py --ckpt lstm.ckpt --ckpt gru.ckpt
    python benchmarks/faithfulness.py --quick      # CI: an untrained small LSTM and RNN built here, 5 reviews
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pyarrow.parquet as pq
import torch

from sentikit.explain.explainer import Explainer
from sentikit.explain.faithfulness import evaluate_faithfulness
from sentikit.nn.classifier import SentimentClassifier
from sentikit.data.tokenizer import train_tokenizer

REPO = Path(__file__).resolve().parents[1]
SST2 = REPO / "data" / "sst2"
SHIPPED = [REPO / "data" / "bundles" / "sst2-lstm", REPO / "data" / "bundles" / "sst2-gru"]


def untrained_explainers() -> dict[str, Explainer]:
    """Small untrained models with a tokenizer trained on 1,000 SST-2 phrases: enough to run every path."""
    texts = pq.read_table(SST2 / "train.parquet").column("text").to_pylist()[:1000]
    tokenizer = train_tokenizer([texts], vocab_size=2000, min_frequency=1)
    explainers = {}
    for cell in ("lstm", "rnn"):
        torch.manual_seed(0)
        model = SentimentClassifier(tokenizer.get_vocab_size(), ["negative", "positive"], cell=cell, embedding_dim=16, hidden_size=16)
        explainers[f"untrained {cell}"] = Explainer(model, tokenizer, max_length=64)
    return explainers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", action="append", default=[], help="a sentikit checkpoint (repeat for several)")
    parser.add_argument("--bundle", action="append", default=[], help="a bundle folder or .zip (repeat for several)")
    parser.add_argument("--split-file", default=str(SST2 / "validation.parquet"))
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--limit", type=int, default=200, help="the first N reviews (0: all)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, action="append", help="reviews scored at a time (repeat for several; default: 1 and 32)")
    parser.add_argument("--quick", action="store_true", help="no checkpoint: untrained small models, 5 reviews")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.quick:
        explainers, limit = untrained_explainers(), 5
    else:
        bundles = args.bundle or ([] if args.ckpt else [str(path) for path in SHIPPED])
        explainers = {path: Explainer.from_checkpoint(path) for path in args.ckpt}
        explainers.update({path: Explainer.from_bundle(path) for path in bundles})
        limit = args.limit or None
    texts = pq.read_table(args.split_file, columns=[args.text_column]).column(args.text_column).to_pylist()
    for name, explainer in explainers.items():
        for batch_size in args.batch_size or [1, 32]:
            start = time.perf_counter()
            report = evaluate_faithfulness(explainer, texts, max_reviews=limit, batch_size=batch_size)
            print(f"## {name} ({explainer.cell}, {explainer.model.encoder.pooling} pooling), batches of {batch_size}\n")
            print(report.markdown())
            print(f"\n(evaluated in {time.perf_counter() - start:.0f} s)\n")


if __name__ == "__main__":
    main()
