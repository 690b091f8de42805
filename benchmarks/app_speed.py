#!/usr/bin/env python
"""Time for the demo app to explain and render one English review with the three English models.

What the app's server does for a click on Explain, without the network and the browser: every model's
`explain` (LSTM and GRU with the gates split; the RNN with occlusion and the memory-decay estimate it
shows as its survival curve), then the page's views (`model_view` for each column and the survival
plot's table). Target: under 200 ms for the three models together, on this CPU.

Reviews are the app's examples and SST-2 validation sentences, and long reviews of eight sentences
(truncated at the bundles' 128 tokens), each timed once after a warm-up on other texts (a review the
app has not seen before is the usual case); it prints the median and the 90th percentile, on torch's
default threads.

    python benchmarks/app_speed.py               # 6 examples + 50 SST-2 sentences
    python benchmarks/app_speed.py --quick       # CI smoke run: 3 reviews, figures meaningless
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from pathlib import Path

import pyarrow.parquet as pq
import torch

from sentikit.app.layout import DEFAULT_BUNDLES, EXAMPLES
from sentikit.app.page import explain_review, load_models, model_view, survival_frame

REPO = Path(__file__).resolve().parents[1]
TARGET_MS = 200.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=50, help="SST-2 validation sentences timed after the examples")
    parser.add_argument("--quick", action="store_true", help="3 reviews: for CI, figures meaningless")
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates torch.jit, which bundles use
        # an English review is explained by the English models only (the app routes by language)
        models = [m for m in load_models(DEFAULT_BUNDLES) if m.language == "en"]
    sentences = pq.read_table(REPO / "data" / "sst2" / "validation.parquet").column("text").to_pylist()
    for text in sentences[-3:]:  # warm-up (TorchScript optimises a method on its first calls), untimed
        explain_review(models, text)
    short = EXAMPLES + sentences[: args.sentences]
    # long reviews: eight SST-2 sentences joined, past the bundles' 128 tokens, so truncated
    long = [" ".join(sentences[100 + 8 * k : 108 + 8 * k]) for k in range(args.sentences // 5)]
    if args.quick:
        short, long = short[:2], long[:1]
    print(f"models: {', '.join(m.name for m in models)}; {torch.get_num_threads()} torch threads\n")
    print("| reviews | words read | median ms | 90th percentile ms | slowest ms |")
    print("|---|---|---:|---:|---:|")
    p90s = []
    for name, reviews in (("examples + SST-2 sentences", short), ("long (truncated at 128 tokens)", long)):
        times, lengths = [], []
        for text in reviews:
            start = time.perf_counter()
            reports = explain_review(models, text)
            for model, report in zip(models, reports):
                model_view(model, report, "contribution")
            survival_frame(models, reports)
            times.append(1000 * (time.perf_counter() - start))
            lengths.append(len(reports[0]["words"]))
        times.sort()
        p90s.append(times[min(len(times) - 1, int(0.9 * len(times)))])
        print(f"| {len(reviews)} {name} | {min(lengths)}-{max(lengths)} | {statistics.median(times):.1f} | {p90s[-1]:.1f} | {times[-1]:.1f} |")
    if not args.quick:
        verdict = "met" if max(p90s) < TARGET_MS else "MISSED"
        print(f"\ntarget: explain + render under {TARGET_MS:g} ms for the three models (90th percentile, both sets): {verdict}")


if __name__ == "__main__":
    main()
