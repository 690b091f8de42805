#!/usr/bin/env python
"""Accuracy of bundles on labelled files: the shipped English bundles against the SST-2-only ones.

Each bundle reads each file as it would in use (`bundle.evaluate_bundle`: at most the bundle's own
`max_length` tokens a review). Prints one Markdown table, a row per file and a column per bundle.

    python benchmarks/bundle_accuracy.py            # the six English bundles on SST-2, Amazon and IMDB (if in data/imdb)
    python benchmarks/bundle_accuracy.py --bundles data/bundles/english-gru --files my-reviews.csv
    python benchmarks/bundle_accuracy.py --quick    # two bundles, 200 reviews of each shipped file (CI)

Files need a `text` and a `label` column (0/1 or the bundle's class names). A file that is not there
(IMDB is not shipped: data/README.md) is left out, saying so.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


from sentikit.bundle.bundle import evaluate_bundle, load_bundle
from sentikit.bundle.commands import read_labelled

REPO = Path(__file__).resolve().parents[1]
BUNDLES = [f"data/bundles/{data}-{cell}" for data in ("sst2", "english") for cell in ("rnn", "lstm", "gru")]
FILES = [
    "data/sst2/validation.parquet",
    "data/sst2/test.parquet",
    "data/amazon/electronics/validation.parquet",
    "data/amazon/kitchen/validation.parquet",
    "data/imdb/test.parquet",
]
QUICK_REVIEWS = 200


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundles", nargs="+", default=BUNDLES, help="bundle folders (default: sst2-* and english-*)")
    parser.add_argument("--files", nargs="+", default=FILES, help="labelled parquet/csv/jsonl files")
    parser.add_argument("--quick", action="store_true", help=f"the SST-2 and English GRUs, {QUICK_REVIEWS} reviews a file")
    args = parser.parse_args()
    bundles = ["data/bundles/sst2-gru", "data/bundles/english-gru"] if args.quick else args.bundles
    loaded = {Path(b).name: load_bundle(REPO / b if not Path(b).is_absolute() else b) for b in bundles}
    started = time.perf_counter()
    print("| file | reviews | " + " | ".join(loaded) + " |")
    print("|---|---:|" + "---:|" * len(loaded))
    missing = []
    for file in args.files:
        path = REPO / file if not Path(file).is_absolute() else Path(file)
        if not path.is_file():
            missing.append(file)
            continue
        read: dict[tuple[str, ...], tuple[list[str], list[int]]] = {}  # the file, read once per set of classes
        figures = []
        for bundle in loaded.values():
            classes = tuple(bundle.label_names)
            if classes not in read:
                texts, labels = read_labelled(str(path), "text", "label", bundle.label_names)
                read[classes] = (texts[:QUICK_REVIEWS], labels[:QUICK_REVIEWS]) if args.quick else (texts, labels)
            figures.append(evaluate_bundle(bundle, *read[classes]))
        print(f"| {file} | {figures[0]['examples']:,} | " + " | ".join(f"{100 * f['accuracy']:.2f}%" for f in figures) + " |")
    for file in missing:
        print(f"\n{file}: not found, left out" + (" (IMDB is not shipped: data/README.md says how to save a copy)" if "imdb" in file else ""))
    print(f"\n({time.perf_counter() - started:.0f} s; each bundle reads at most its own max_length tokens: "
          + ", ".join(f"{name} {b.max_length}" for name, b in loaded.items()) + ")")


if __name__ == "__main__":
    main()
