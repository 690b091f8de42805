"""`sentikit export` and `sentikit predict-file`: make a bundle from a checkpoint, and predict files with one.

    sentikit export --ckpt runs/.../best.ckpt --out bundles/sst2-gru [--validation data/sst2/validation.parquet]
    sentikit predict-file --bundle bundles/sst2-gru --input reviews.csv --text-column review --output predictions.jsonl
    sentikit predict-file ... --resume      # after a kill: continue predictions.jsonl.partial

Thin layers over `bundle.export_bundle`, `bundle.evaluate_bundle` and `predict_file.predict_file`. Like
`sentikit explain` they read no training config, so they have small parsers of their own; mistakes a user
can make are printed by `cli.main` as one `sentikit: error:` line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sentikit.errors import ConfigError


def export_command(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="sentikit export", description="Export a checkpoint to a bundle (model.pt, model.pt2 or model.onnx, tokenizer.json, meta.json).")
    parser.add_argument("--ckpt", required=True, help="a sentikit checkpoint (.ckpt)")
    parser.add_argument("--out", required=True, help="the bundle folder to write")
    parser.add_argument("--force", action="store_true", help="replace an existing bundle at --out")
    parser.add_argument(
        "--format", choices=("torchscript", "exported", "onnx"), default="torchscript",
        help="torchscript (default): model.pt, forward and explain, packed sequences; exported: model.pt2, a torch.export "
        "program, forward only, every review padded to the max length; onnx: model.onnx for ONNX Runtime, forward only, "
        'each review read to its own length, needs pip install -e ".[onnx]" (docs/bundles.md)',
    )
    parser.add_argument(
        "--max-length", type=int,
        help="the most tokens of a review the bundle reads (default: the checkpoint's, data.eval_max_length of its training run)",
    )
    parser.add_argument("--validation", help="a labelled parquet/csv/jsonl file: the bundle's accuracy on it goes into meta.json")
    parser.add_argument(
        "--score", action="append", default=[], metavar="FILE",
        help="another labelled file to score the bundle on (repeatable): its accuracy goes into meta.json's `scores`, under the path as given",
    )
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--label-column", default="label")
    args = parser.parse_args(argv)

    from sentikit.bundle.bundle import MODEL_FILES, evaluate_bundle, export_bundle, load_bundle, write_meta

    out = export_bundle(args.ckpt, args.out, force=args.force, model_format=args.format, max_length=args.max_length)
    bundle = load_bundle(out)
    if args.validation:
        texts, labels = read_labelled(args.validation, args.text_column, args.label_column, bundle.label_names)
        bundle.meta["validation"] = {"file": Path(args.validation).name, **evaluate_bundle(bundle, texts, labels)}
    for path in args.score:
        texts, labels = read_labelled(path, args.text_column, args.label_column, bundle.label_names)
        bundle.meta.setdefault("scores", []).append({"file": path, **evaluate_bundle(bundle, texts, labels)})
    if args.validation or args.score:
        write_meta(out, bundle.meta)
    model_file = MODEL_FILES[args.format]
    sizes = {name: (out / name).stat().st_size for name in (model_file, "tokenizer.json", "meta.json")}
    print(f"bundle written: {out} ({sum(sizes.values()) / 1e6:.1f} MB; {bundle.meta['cell']}, {bundle.meta['num_parameters']:,} parameters; reads up to {bundle.max_length} tokens a review)")
    if bundle.meta.get("validation"):
        v = bundle.meta["validation"]
        print(f"accuracy on {v['file']}: {100 * v['accuracy']:.2f}% of {v['examples']}")
    for v in bundle.meta.get("scores", []):
        print(f"accuracy on {v['file']}: {100 * v['accuracy']:.2f}% of {v['examples']}")
    if args.format == "torchscript":
        print("model.pt is TorchScript; torch 2.13 calls torch.jit.script deprecated, but it runs and loads unchanged (docs/bundles.md)")
    elif args.format == "onnx":
        print(f"model.onnx runs in ONNX Runtime without torch (opset {bundle.meta['onnx_opset']}): forward only, explanations need a TorchScript bundle (docs/bundles.md)")
    else:
        print(f"model.pt2 is a torch.export program: forward only, token ids padded to {bundle.meta['input_length']} (docs/bundles.md)")


def read_labelled(path: str, text_column: str, label_column: str, label_names: list[str]) -> tuple[list[str], list[int]]:
    """Texts and label ids (integers, or class names of the bundle) of a labelled file."""
    from sentikit.bundle.predict_file import iter_column_batches

    texts, labels = [], []
    lookup = {name: i for i, name in enumerate(label_names)}
    for batch in iter_column_batches(path, [text_column, label_column], 10_000):
        for row, (text, label) in enumerate(zip(batch[text_column], batch[label_column]), start=len(texts)):
            label_id = lookup.get(label) if isinstance(label, str) else label
            if not isinstance(label_id, int) or not 0 <= label_id < len(label_names):
                raise ConfigError(f"{path}: label {label!r} (row {row}) is not one of the classes {label_names}")
            if not isinstance(text, str):
                raise ConfigError(f"{path}: row {row} of column {text_column!r} is not text")
            texts.append(text)
            labels.append(label_id)
    return texts, labels


def predict_file_command(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="sentikit predict-file", description="Predict every review of a file with a bundle; writes JSON Lines.")
    parser.add_argument("--bundle", required=True, help="a bundle folder or .zip (sentikit export)")
    parser.add_argument("--input", required=True, help="reviews: .parquet, .csv, .tsv or .jsonl, of any size")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--output", required=True, help="the .jsonl file to write (one line per input row)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--top-words", type=int, default=0, help="also write the K words the gates retained most (LSTM/GRU)")
    again = parser.add_mutually_exclusive_group()
    again.add_argument("--force", action="store_true", help="overwrite an existing --output, or start an interrupted run over")
    again.add_argument(
        "--resume", action="store_true",
        help="continue the OUTPUT.partial of an interrupted run with the same settings, after its last complete batch; "
        "with none, start from the first row; with a finished --output, nothing to do",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    from sentikit.bundle.bundle import load_bundle
    from sentikit.bundle.predict_file import predict_file

    bundle = load_bundle(args.bundle)
    rows = predict_file(
        bundle, args.input, args.output, text_column=args.text_column, batch_size=args.batch_size,
        top_words=args.top_words, force=args.force, progress=not args.no_progress, resume=args.resume,
    )
    print(f"{rows} predictions in {args.output}", file=sys.stderr)
