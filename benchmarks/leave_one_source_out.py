#!/usr/bin/env python
"""How well a model trained on several sources reads a kind of review it never saw: leave one source out.

For each source of a config's `data.sources`, train on the other sources (`sentikit fit`, the config
otherwise unchanged) and test on the held-out one; then compare with the model trained on all sources,
tested on the same reviews. A source is tested on its `test` split, or on its `validation` split when
it has none (Amazon's); a source with neither is skipped. The checkpoint tested is `best.ckpt`, chosen
on the validation splits of the training sources only: nothing of the held-out source steers training.

    python benchmarks/leave_one_source_out.py -c configs/english-gru.yaml            # 4 fits
    python benchmarks/leave_one_source_out.py -c configs/english-gru.yaml --runs without-imdb
    python benchmarks/leave_one_source_out.py --quick       # tiny model and data, for CI (a minute)

Each run lives in `--out/<run>/` (`all`, `without-<source>`); a run whose `best.ckpt` exists is not
trained again, and a test whose result exists is not run again, so an interrupted table resumes.
Extra arguments after `--` go to every `sentikit fit` (e.g. `-- --trainer.max_epochs 2`).
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]


def held_out_split(source: dict[str, Any]) -> str | None:
    """The split a source is tested on: `test` if it has one, else `validation` (hub sources: `test`)."""
    files = source.get("data_files")
    if files is None:
        return "test"
    return "test" if "test" in files else "validation" if "validation" in files else None


def as_test_source(source: dict[str, Any], split: str) -> dict[str, Any]:
    """The source with `split` served as its test split (its train is still read, never trained on)."""
    source = dict(source)
    if source.get("data_files") is not None:
        files = source["data_files"]
        source["data_files"] = {"train": files["train"], "test": files[split]}
    return source


def run(command: list[str], log: Path) -> None:
    print("$", shlex.join(command), flush=True)
    with open(log, "a") as handle:
        result = subprocess.run(command, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        sys.exit(f"failed (exit {result.returncode}): see {log}")


def last_metric(folder: Path, key: str) -> float:
    """`key`'s last logged value in the run's CSV logs."""
    values = []
    for metrics in sorted(folder.glob("lightning_logs/version_*/metrics.csv")):
        with open(metrics, newline="") as handle:
            values += [float(row[key]) for row in csv.DictReader(handle) if row.get(key)]
    if not values:
        raise SystemExit(f"no '{key}' logged under {folder}")
    return values[-1]


def fit(config: str, sources: list[dict], folder: Path, extra: list[str]) -> Path:
    checkpoint = folder / "lightning_logs/version_0/checkpoints/best.ckpt"
    if not checkpoint.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        run(
            ["sentikit", "fit", "-c", config, "--data.sources", json.dumps(sources), "--trainer.default_root_dir", str(folder),
             "--trainer.enable_progress_bar", "false", "--trainer.callbacks", "[]", *extra],
            folder / "fit.log",
        )
    return checkpoint


def test(config: str, checkpoint: Path, source: dict, split: str, folder: Path, extra: list[str]) -> float:
    """Accuracy of `checkpoint` on `split` of `source`, cached in `folder/result.json`."""
    result = folder / "result.json"
    if not result.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        run(
            ["sentikit", "test", "-c", config, "--data.sources", json.dumps([as_test_source(source, split)]),
             "--data.tokenizer_file", str(checkpoint), "--ckpt_path", str(checkpoint), "--trainer.default_root_dir", str(folder),
             "--trainer.enable_progress_bar", "false", "--trainer.callbacks", "[]", *extra],
            folder / "test.log",
        )
        result.write_text(json.dumps({"accuracy": last_metric(folder, "test_acc")}))
    return json.loads(result.read_text())["accuracy"]


def quick_config(folder: Path) -> str:
    """Two small sources from the shipped data (SST-2 phrases, Amazon reviews) and a tiny model."""
    import pyarrow.parquet as pq

    for name, path in (("sst2", "data/sst2/train.parquet"), ("sst2-val", "data/sst2/validation.parquet")):
        pq.write_table(pq.read_table(REPO / path).slice(0, 600), folder / f"{name}.parquet")
    amazon = "data/amazon/electronics"
    config = {
        "seed_everything": 0,
        "trainer": {"max_epochs": 1},
        "model": {"cell": "gru", "embedding_dim": 8, "hidden_size": 8},
        "data": {
            "label_names": ["negative", "positive"],
            "sources": [
                {"name": "sst2", "data_files": {"train": str(folder / "sst2.parquet"), "validation": str(folder / "sst2-val.parquet")}},
                {"name": "amazon", "data_files": {"train": str(REPO / amazon / "train.parquet"), "validation": str(REPO / amazon / "validation.parquet")}},
            ],
            "max_length": 64,
            "batch_size": 32,
        },
    }
    path = folder / "quick.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", help="a config with data.sources")
    parser.add_argument("--out", default="runs/leave-one-source-out", help="where the runs go (default: %(default)s)")
    parser.add_argument("--runs", nargs="*", help="only these runs: all, without-<source> (default: every one)")
    parser.add_argument("--quick", action="store_true", help="tiny model and data, in a temporary folder (CI)")
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    with tempfile.TemporaryDirectory() as scratch:
        if args.quick:
            args.config, args.out = quick_config(Path(scratch)), scratch
        if args.config is None:
            parser.error("give -c CONFIG (or --quick)")
        sources = yaml.safe_load(Path(args.config).read_text())["data"].get("sources")
        if not sources or len(sources) < 2:
            sys.exit(f"{args.config}: data.sources must list at least two sources to hold one out")
        out = Path(args.out)
        names = [s["name"] for s in sources]
        wanted = args.runs or ["all"] + [f"without-{n}" for n in names]
        rows = []
        for held in sources:
            split = held_out_split(held)
            if split is None:
                print(f"{held['name']}: no test or validation split to test on; skipped")
                continue
            row = {"source": held["name"], "split": split}
            for name, trained_on in (("all", sources), (f"without-{held['name']}", [s for s in sources if s is not held])):
                if name not in wanted:
                    continue
                checkpoint = fit(args.config, trained_on, out / name, extra)
                row[name.split("-")[0]] = test(args.config, checkpoint, held, split, out / name / f"test-{held['name']}", [])
            rows.append(row)
    print(f"\n| held-out source | tested on | trained on all sources | trained on the others | change |")
    print("|---|---|---:|---:|---:|")
    for row in rows:
        a, w = row.get("all"), row.get("without")
        cell = lambda v: f"{100 * v:.2f}%" if v is not None else "-"
        change = f"{100 * (w - a):+.2f}" if a is not None and w is not None else "-"
        print(f"| {row['source']} | {row['split']} | {cell(a)} | {cell(w)} | {change} |")


if __name__ == "__main__":
    main()
