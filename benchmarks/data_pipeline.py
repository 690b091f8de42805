#!/usr/bin/env python
"""The data pipeline on IMDB: tokenization throughput and time to the first training batch, cold and cached.

Three figures, each from a fresh Python process (so nothing is reused in memory) that builds
`SentimentDataModule` as `configs/imdb-lstm.yaml` does (word tokenizer, 30,000 words, 800 tokens, 10% of
train held out) from the local parquet files and takes the first training batch:

- **cold**: an empty `datasets` cache: parquet -> Arrow, the tokenizer trained on train, every split
  tokenized with `Dataset.map(batched=True)` and written to the cache;
- **cached**: the same cache again: Arrow and the tokenized splits are found by fingerprint, only the
  tokenizer is trained again (as `sentikit fit` does for a new run);
- **cached, tokenizer reused**: plus `tokenizer_file` (what `--ckpt_path` and `sentikit compare` do):
  nothing is recomputed.

Besides, in this process: the fast tokenizer's `encode_batch_fast` alone (tokens/s over IMDB train + test)
and the same work through `Dataset.map(batched=True)` with Arrow output, the way the pipeline runs it.

    python benchmarks/data_pipeline.py            # IMDB train + test from data/imdb/ (about a minute here)
    python benchmarks/data_pipeline.py --quick    # 2,000 reviews of each split, for CI; falls back to the
                                                  # shipped SST-2 when data/imdb/ is absent
    python benchmarks/data_pipeline.py --data PATH  # another folder with train.parquet and test.parquet,
                                                  # or one parquet file (`text` and `label` columns)

IMDB is not shipped: data/README.md says how to save a copy in data/imdb/.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMDB = REPO / "data/imdb"  # a local copy, not shipped (data/README.md)
SST2 = REPO / "data/sst2"
OPTIONS = dict(label_names=["neg", "pos"], vocab_size=30_000, min_frequency=2, max_length=800, batch_size=64, seed=42)
QUICK_REVIEWS = 2_000


def first_batch(files: dict[str, str], tokenizer_file: str | None) -> dict[str, float]:
    """Seconds from nothing to the first training batch, in this process (run as a child)."""
    started = time.perf_counter()
    from sentikit.data.datamodule import SentimentDataModule

    imported = time.perf_counter()
    dm = SentimentDataModule(data_files=files, tokenizer_file=tokenizer_file, **OPTIONS)
    batch = next(iter(dm.train_dataloader()))
    done = time.perf_counter()
    tokens = int(sum(int(reviews.lengths.sum()) for reviews in dm.splits.values()))
    return {"import_s": imported - started, "first_batch_s": done - imported, "batch": list(batch["token_ids"].shape), "tokens": tokens}


def in_child(files: dict[str, str], cache: str, tokenizer_file: str | None = None) -> dict[str, float]:
    env = dict(os.environ, HF_DATASETS_CACHE=cache, HF_HUB_OFFLINE="1", PYTHONWARNINGS="ignore")
    arguments = json.dumps({"files": files, "tokenizer_file": tokenizer_file})
    output = subprocess.run(
        [sys.executable, __file__, "--child", arguments], env=env, capture_output=True, text=True, check=True
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def tokenization(files: dict[str, str], tokenizer) -> list[tuple[str, int, float]]:
    """Tokens/s of the fast tokenizer alone and of `Dataset.map(batched=True)` running it into Arrow."""
    import datasets

    from sentikit.data.datamodule import _encode_texts

    splits = [datasets.load_dataset("parquet", data_files=path, split="train") for path in files.values()]
    texts = [text for split in splits for text in split["text"]]
    started = time.perf_counter()
    encodings = tokenizer.encode_batch_fast(texts, add_special_tokens=False)
    alone = time.perf_counter() - started
    tokens = sum(len(e.ids) for e in encodings)
    started = time.perf_counter()
    for split in splits:
        split.map(
            _encode_texts,
            batched=True,
            batch_size=1000,
            fn_kwargs={"tokenizer": tokenizer, "column": "text", "max_length": 10**9},
            remove_columns=split.column_names,
            load_from_cache_file=False,
        )
    mapped = time.perf_counter() - started
    return [("`encode_batch_fast` alone", tokens, alone), ("`Dataset.map(batched=True)` into Arrow", tokens, mapped)]


def splits_of(source: Path) -> dict[str, str]:
    """The parquet files to read: one file (as train), or a folder's train.parquet and test.parquet."""
    if source.suffix == ".parquet":
        return {"train": str(source)}
    return {split: str(source / f"{split}.parquet") for split in ("train", "test")}


def sample(files: dict[str, str], folder: Path, rows: int) -> dict[str, str]:
    """A seeded sample of each split (IMDB is sorted by label: its first rows hold one class)."""
    import numpy as np
    import pyarrow.parquet as pq

    sampled = {}
    for split, path in files.items():
        table = pq.read_table(path)
        picked = np.sort(np.random.default_rng(42).choice(table.num_rows, min(rows, table.num_rows), replace=False))
        sampled[split] = str(folder / f"{split}.parquet")
        pq.write_table(table.take(picked), sampled[split])
    return sampled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=IMDB, help=f"a folder with train.parquet and test.parquet, or one parquet file (default: {IMDB})")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_REVIEWS:,} reviews per split")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        options = json.loads(args.child)
        print(json.dumps(first_batch(options["files"], options["tokenizer_file"])))
        return
    source = args.data
    missing = [path for path in splits_of(source).values() if not Path(path).is_file()]
    if missing and args.quick and args.data == IMDB:
        # A smoke run on a checkout without a local IMDB copy: the shipped SST-2 exercises the same code.
        source = SST2
        print(f"data_pipeline.py: {missing[0]} not found; the quick run uses {SST2}")
    elif missing:
        sys.exit(f"data_pipeline.py: {missing[0]} not found (data/README.md says how to save a copy of IMDB in data/imdb/; or pass --data PATH)")
    logging.getLogger("sentikit").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="sentikit-pipeline-") as tmp:
        tmp = Path(tmp)
        files = sample(splits_of(source), tmp, QUICK_REVIEWS) if args.quick else splits_of(source)
        cache = str(tmp / "hf-cache")
        cold = in_child(files, cache)
        cached = in_child(files, cache)
        from sentikit.data.datamodule import SentimentDataModule
        from sentikit.data.tokenizer import save_tokenizer

        os.environ["HF_DATASETS_CACHE"] = cache
        import datasets

        datasets.disable_progress_bars()
        dm = SentimentDataModule(data_files=files, **OPTIONS)
        tokenizer_file = str(save_tokenizer(dm.tokenizer, tmp / "tokenizer.json"))
        reused = in_child(files, cache, tokenizer_file)
        speeds = tokenization(files, dm.tokenizer)

    print(f"\nData pipeline: {source.name} {'sample of ' + format(QUICK_REVIEWS, ',') + ' per split' if args.quick else ' + '.join(files)}, "
          f"word tokenizer ({OPTIONS['vocab_size']:,} words), max_length {OPTIONS['max_length']}, batches of {OPTIONS['batch_size']}\n")
    print("| tokenization | tokens | seconds | tokens/s |")
    print("|---|---:|---:|---:|")
    for name, tokens, seconds in speeds:
        print(f"| {name} | {tokens:,} | {seconds:.2f} | {tokens / seconds:,.0f} |")
    print("\n| first training batch, fresh process | seconds (import excluded) | import seconds |")
    print("|---|---:|---:|")
    for name, figures in (("cold: empty datasets cache", cold), ("cached", cached), ("cached, tokenizer reused", reused)):
        print(f"| {name} | {figures['first_batch_s']:.2f} | {figures['import_s']:.2f} |")
    print(f"\n(first batch {cold['batch'][0]} x {cold['batch'][1]} tokens; {cold['tokens']:,} tokens in all splits after truncation)")


if __name__ == "__main__":
    main()
