"""`sentikit explain`: explain a checkpoint's predictions word by word, or measure how faithful that is.

    sentikit explain --ckpt best.ckpt --text "I expected to hate it, but it is wonderful"
    sentikit explain --ckpt best.ckpt --input reviews.jsonl --json    # one JSON line per review
    sentikit explain --ckpt best.ckpt --evaluate --limit 200          # the faithfulness table (Markdown)
    sentikit explain --bundle data/bundles/sst2-gru --text "..."      # the same from an exported bundle

A thin layer over `Explainer.explain` and `faithfulness.evaluate_faithfulness`. The training commands
go through LightningCLI; this one reads no config, only a checkpoint or a bundle (each carries its tokenizer,
class names and maximum length), so it has its own small parser. Mistakes a user can make raise `ConfigError`
or `FileNotFoundError`, which `cli.main` prints as one `sentikit: error:` line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from sentikit.errors import ConfigError

DEFAULT_SPLIT = "data/sst2/validation.parquet"
INPUT_TYPES = (".jsonl", ".txt")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sentikit explain",
        description="Explain a sentiment checkpoint's predictions word by word, or measure the faithfulness of the explanations.",
    )
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--ckpt", help="a sentikit checkpoint (.ckpt); it brings its own tokenizer")
    model.add_argument("--bundle", help="a bundle folder or .zip (sentikit export); explains with the bundle's own TorchScript code")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", help="one review to explain")
    source.add_argument("--input", help="reviews to explain: .jsonl (one object with a 'text' key per line) or .txt (one review per line)")
    source.add_argument("--evaluate", action="store_true", help="print the faithfulness table (deletion AOPC and cost per review) over --split-file")
    parser.add_argument("--json", action="store_true", help="print JSON (one line per review) instead of coloured text")
    parser.add_argument(
        "--method", choices=("auto", "gates", "occlusion"), default="auto",
        help="gates: the exact split (LSTM/GRU read through the final state); occlusion: leave-one-out; auto: gates where possible "
        "(--evaluate compares every method)",
    )
    parser.add_argument("--memory-probes", type=int, default=32, help="random projections for the memory-decay estimate (0: skip it)")
    parser.add_argument("--split-file", default=DEFAULT_SPLIT, help=f"--evaluate: parquet/csv/jsonl file of reviews (default {DEFAULT_SPLIT})")
    parser.add_argument("--text-column", default="text", help="--evaluate: the column holding the reviews")
    parser.add_argument("--limit", type=int, default=200, help="--evaluate: the first N reviews (0: all)")
    parser.add_argument("--batch-size", type=int, default=1, help="--evaluate: reviews each method scores at a time (1: one review's cost)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's); costs in --evaluate depend on it")
    return parser


def read_reviews(path: str | Path) -> list[str]:
    """Reviews from a .jsonl file (a `text` key on each line) or a .txt file (one per line); blank lines
    are skipped, and a line that holds no usable review is named."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input file not found: {path}")
    if path.suffix.lower() not in INPUT_TYPES:
        raise ConfigError(f"{path}: unsupported input type; use {' or '.join(INPUT_TYPES)}")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path} is not UTF-8 text ({error.reason} at byte {error.start})") from None
    reviews = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if path.suffix.lower() == ".txt":
            reviews.append(line)
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path}, line {number}: not JSON ({error.msg})") from None
        if not isinstance(record, dict) or "text" not in record:
            raise ConfigError(f"{path}, line {number}: expected a JSON object with a 'text' key")
        if not isinstance(record["text"], str) or not record["text"].strip():
            raise ConfigError(f"{path}, line {number}: 'text' is empty or not a string")
        reviews.append(record["text"])
    if not reviews:
        raise ConfigError(f"{path} holds no review")
    return reviews


def read_split_texts(path: str | Path, column: str, limit: int | None) -> list[str]:
    """The first `limit` texts of `column` in a parquet/csv/jsonl file."""
    import datasets

    from sentikit.data.sources import load_local_splits

    datasets.disable_progress_bars()
    split = load_local_splits({"evaluate": str(path)})["evaluate"]
    if column not in split.column_names:
        raise ConfigError(f"{path} has no column '{column}'; its columns are {split.column_names}")
    if limit is not None:
        split = split.select(range(min(limit, len(split))))
    return split[column]


def explain_command(argv: list[str]) -> None:
    """Run `sentikit explain` with the arguments after `explain`."""
    args = build_parser().parse_args(argv)
    if args.limit < 0 or args.memory_probes < 0 or args.batch_size < 1 or (args.threads is not None and args.threads < 1):
        raise ConfigError("--limit and --memory-probes must be >= 0, --batch-size and --threads >= 1")
    if args.text is not None and not args.text.strip():
        raise ConfigError("the text to explain is empty (--text)")
    reviews = read_reviews(args.input) if args.input else None  # check the input before loading a model
    if args.threads:
        torch.set_num_threads(args.threads)

    from sentikit.explain.explainer import Explainer

    explainer = Explainer.from_checkpoint(args.ckpt) if args.ckpt else Explainer.from_bundle(args.bundle)
    if args.evaluate:
        from sentikit.explain.faithfulness import evaluate_faithfulness

        texts = read_split_texts(args.split_file, args.text_column, args.limit or None)
        report = evaluate_faithfulness(explainer, texts, batch_size=args.batch_size)
        print(json.dumps(report.to_dict()) if args.json else report.markdown())
        return

    from rich.console import Console

    from sentikit.explain.render import render

    console = Console(highlight=False)
    for number, text in enumerate(reviews if reviews is not None else [args.text], start=1):
        try:
            report = explainer.explain(text, method=args.method, memory_probes=args.memory_probes)
        except ConfigError as error:
            raise ConfigError(f"{args.input}, review {number}: {error}" if reviews is not None else str(error)) from None
        if args.json:
            print(json.dumps(report), flush=True)
        else:
            if number > 1:
                console.print()
            console.print(render(report))
