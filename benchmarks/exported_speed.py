#!/usr/bin/env python
"""TorchScript bundle against the `torch.export` program of the same weights (`--format exported`).

For each demo bundle, the program is exported here from the bundle's own weights (the path `sentikit
export --format exported` takes), then both predict the same reviews on one torch thread:

- latency: p50 of one review's forward pass (token ids in, logits out), the two taking turns;
- throughput: reviews/s in batches of 256 (tokenization included);
- parity: the largest difference between their logits.

The program always runs the bundle's full max length (its time dimension is fixed), the TorchScript
model only each review's own tokens (packed sequences): the gap is widest for short reviews.

    python benchmarks/exported_speed.py              # IMDB test reviews from data/imdb/
                                                     # (SST-2 validation if absent, and it says so)
    python benchmarks/exported_speed.py --quick      # CI: the LSTM bundle, SST-2 sentences, few repetitions
    python benchmarks/exported_speed.py --data PATH  # another parquet file with a `text` column
                                                     # (or a folder with test.parquet)

IMDB is not shipped: data/README.md says how to save a copy in data/imdb/.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
import warnings
from pathlib import Path

import pyarrow.parquet as pq
import torch

from sentikit.bundle.bundle import load_bundle
from sentikit.bundle.exported import PaddedProgram, export_program
from sentikit.data.tokenizer import PAD_ID

from bundle_speed import IMDB_TEST, reviews_file  # the same reviews as bundle_speed.py, found the same way

REPO = Path(__file__).resolve().parents[1]


def program_of(bundle) -> PaddedProgram:
    """The exported program of a TorchScript bundle's weights."""
    program = torch.export.load(io.BytesIO(export_program(bundle.eager_classifier(), bundle.max_length))).module()
    return PaddedProgram(program, bundle.max_length, PAD_ID)


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reviews", type=int, default=200, help="reviews timed one at a time")
    parser.add_argument("--throughput-reviews", type=int, default=2000, help="reviews predicted in batches of 256")
    parser.add_argument("--data", type=Path, default=IMDB_TEST, help=f"reviews: a parquet file, or a folder with test.parquet (default: {IMDB_TEST})")
    parser.add_argument("--quick", action="store_true", help="the LSTM bundle, SST-2 sentences (unless --data is given), 10 and 256 reviews")
    args = parser.parse_args()
    torch.set_num_threads(1)
    source = reviews_file(args.data, args.quick, "exported_speed.py")
    cells = ("lstm",) if args.quick else ("rnn", "lstm", "gru")
    if args.quick:
        args.reviews, args.throughput_reviews = 10, 256
    texts = pq.read_table(source, columns=["text"]).column("text").to_pylist()
    print(f"{source.parent.name}/{source.name}; 1 torch thread\n")
    print("| bundle | max length | TorchScript p50 ms | exported p50 ms | TorchScript reviews/s | exported reviews/s | max logit difference |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for cell in cells:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            bundle = load_bundle(REPO / "data" / "bundles" / f"sst2-{cell}")
        models = {"script": bundle.model, "exported": program_of(bundle)}
        times: dict[str, list[float]] = {name: [] for name in models}
        difference = 0.0
        for text in texts[: args.reviews + 3]:
            ids, lengths, _ = bundle.encode([text])
            logits = {}
            for name, model in models.items():
                start = time.perf_counter()
                logits[name] = model(ids, lengths)
                times[name].append(1000 * (time.perf_counter() - start))
            difference = max(difference, float((logits["script"] - logits["exported"]).abs().max()))
        rates = {}
        for name, model in models.items():
            start = time.perf_counter()
            for first in range(0, args.throughput_reviews, 256):
                ids, lengths, _ = bundle.encode(texts[first : min(first + 256, args.throughput_reviews)])
                model(ids, lengths).softmax(-1)
            rates[name] = args.throughput_reviews / (time.perf_counter() - start)
        p50 = {name: statistics.median(values[3:]) for name, values in times.items()}  # the first 3 warm up
        print(f"| sst2-{cell} | {bundle.max_length} | {p50['script']:.2f} | {p50['exported']:.2f} | {rates['script']:.0f} "
              f"| {rates['exported']:.0f} | {difference:.1e} |")


if __name__ == "__main__":
    main()
