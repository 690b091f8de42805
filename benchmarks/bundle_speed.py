#!/usr/bin/env python
"""Bundle (TorchScript) against the eager model it was exported from: single-review latency and batch throughput.

For each demo bundle in data/bundles (or `--bundle DIR`), the eager model is the same weights in a
`PortableClassifier` (the code the bundle was scripted from), so both read the same token ids:

- latency: p50 and p90 of one review's forward pass (token ids in, logits out), the two models taking turns
  review by review over `--reviews` IMDB test reviews, on one torch thread;
- throughput: reviews/s of batch prediction (tokenization included, batches of 256 reviews, truncated to
  the bundle's max length) over the first `--throughput-reviews` IMDB test reviews, bundle vs eager.

    python benchmarks/bundle_speed.py                # the three demo bundles, IMDB test from data/imdb/
                                                     # (SST-2 validation if absent, and it says so)
    python benchmarks/bundle_speed.py --quick        # CI: SST-2 validation sentences, few repetitions
    python benchmarks/bundle_speed.py --data PATH    # another parquet file with a `text` column
                                                     # (or a folder with test.parquet)

IMDB is not shipped: data/README.md says how to save a copy in data/imdb/.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import pyarrow.parquet as pq
import torch

from sentikit.bundle.bundle import Bundle, load_bundle
from sentikit.gates.portable import PortableClassifier

REPO = Path(__file__).resolve().parents[1]
IMDB_TEST = REPO / "data" / "imdb" / "test.parquet"  # a local copy, not shipped (data/README.md)
SST2_VALIDATION = REPO / "data" / "sst2" / "validation.parquet"


def reviews_file(data: Path, quick: bool, script: str) -> Path:
    """The parquet file to read: `--data`, SST-2 validation for --quick or when the default IMDB copy is absent."""
    if data == IMDB_TEST and (quick or not IMDB_TEST.is_file()):
        if not quick:
            print(f"{script}: {IMDB_TEST} not found (data/README.md says how to save a copy); using {SST2_VALIDATION} instead")
        return SST2_VALIDATION
    source = data / "test.parquet" if data.is_dir() else data
    if not source.is_file():
        raise SystemExit(f"{script}: {source} not found (data/README.md says how to save a copy of IMDB in data/imdb/; or pass --data PATH)")
    return source


def eager_twin(bundle: Bundle) -> PortableClassifier:
    """The eager `PortableClassifier` with the bundle's weights."""
    return PortableClassifier.from_classifier(bundle.eager_classifier()).eval()


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


@torch.no_grad()
def latency(bundle: Bundle, eager: PortableClassifier, texts: list[str]) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"bundle": [], "eager": []}
    models = {"bundle": bundle.model, "eager": eager}
    for text in texts[:3]:  # warm-up (TorchScript optimises on its first calls)
        ids, lengths, _ = bundle.encode([text])
        for model in models.values():
            model(ids, lengths)
    for text in texts:
        ids, lengths, _ = bundle.encode([text])
        for name, model in models.items():
            start = time.perf_counter()
            model(ids, lengths)
            times[name].append(1000 * (time.perf_counter() - start))
    return times


@torch.no_grad()
def throughput(bundle: Bundle, eager: PortableClassifier, texts: list[str], batch_size: int = 256) -> dict[str, float]:
    rates = {}
    for name, model in (("bundle", bundle.model), ("eager", eager)):
        start = time.perf_counter()
        for first in range(0, len(texts), batch_size):
            ids, lengths, _ = bundle.encode(texts[first : first + batch_size])
            model(ids, lengths).softmax(-1)
        rates[name] = len(texts) / (time.perf_counter() - start)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", action="append", help="a bundle folder (default: the three demo bundles)")
    parser.add_argument("--reviews", type=int, default=300, help="reviews timed one at a time")
    parser.add_argument("--throughput-reviews", type=int, default=5000, help="reviews predicted in batches")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data", type=Path, default=IMDB_TEST, help=f"reviews: a parquet file, or a folder with test.parquet (default: {IMDB_TEST})")
    parser.add_argument("--quick", action="store_true", help="SST-2 sentences (unless --data is given), 20 latency and 500 throughput reviews")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    source = reviews_file(args.data, args.quick, "bundle_speed.py")
    if args.quick:
        args.reviews, args.throughput_reviews = 20, 500
    texts = pq.read_table(source, columns=["text"]).column("text").to_pylist()
    folders = args.bundle or [str(REPO / "data" / "bundles" / f"sst2-{cell}") for cell in ("rnn", "lstm", "gru")]

    print(f"{source.parent.name}/{source.name}; {args.threads} torch thread(s); latency over {args.reviews} single reviews, "
          f"throughput over {args.throughput_reviews} reviews in batches of 256 (tokenization included)\n")
    print("| bundle | max length | eager p50 ms | bundle p50 ms | bundle / eager p50 | eager p90 ms | bundle p90 ms | eager reviews/s | bundle reviews/s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for folder in folders:
        bundle = load_bundle(folder)
        eager = eager_twin(bundle)
        times = latency(bundle, eager, texts[: args.reviews])
        rates = throughput(bundle, eager, texts[: args.throughput_reviews])
        p50 = {name: statistics.median(values) for name, values in times.items()}
        p90 = {name: percentile(values, 90) for name, values in times.items()}
        print(
            f"| {Path(folder).name} | {bundle.max_length} | {p50['eager']:.2f} | {p50['bundle']:.2f} | {p50['bundle'] / p50['eager']:.2f} "
            f"| {p90['eager']:.2f} | {p90['bundle']:.2f} | {rates['eager']:.0f} | {rates['bundle']:.0f} |"
        )


if __name__ == "__main__":
    main()
