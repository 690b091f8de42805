#!/usr/bin/env python
"""ONNX Runtime against TorchScript against eager PyTorch, on the same weights, one thread each.

For each cell a checkpoint of the shipped SST-2 configs' sizes is made (word vectors of 96, one
bidirectional layer of 128 units read through its final state, a vocabulary of 10,000, max length 128)
with RANDOM weights: speed does not depend on what the weights learned, and the shipped bundles' own
checkpoints are not in the repository. It is exported twice, the way `sentikit export` does it
(`model.pt` and `--format onnx`'s `model.onnx`), and the checkpoint also runs eagerly
(`SentimentClassifier`, packed sequences). The text is read with the shipped bundles' tokenizer.

- review p50: the median time of one review's forward pass (token ids in, logits out), the three
  taking turns; ONNX Runtime is called as a user without torch calls it (numpy arrays in and out);
- reviews/s: reviews predicted in batches of 256, tokenization included. ONNX Runtime twice: each batch
  in one call, and as sentikit runs it (`OnnxSession`: the batch sorted by length and run in chunks of
  16, each cut to its own longest review; ONNX's recurrent operators compute every step up to the
  longest review of a call, packed sequences do not);
- max |logit diff|: the largest difference between ONNX Runtime's logits and the eager model's.

torch runs with `torch.set_num_threads(1)`, ONNX Runtime with `intra_op_num_threads=1` and
`inter_op_num_threads=1`. `--sizes` also measures what each runtime costs to install: two fresh virtual
environments (`python -m venv` + `pip install`), one with onnxruntime, tokenizers and numpy, one with
torch and tokenizers, and the `du` of their site-packages.

    python benchmarks/onnx_speed.py --quick                                  # CI: SST-2, few reviews, no sizes
    python benchmarks/onnx_speed.py --imdb data/imdb/test.parquet --sizes    # the table of docs/results.md
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

REPO = Path(__file__).resolve().parents[1]
SST2_VALIDATION = REPO / "data" / "sst2" / "validation.parquet"
TOKENIZER = REPO / "data" / "bundles" / "sst2-gru" / "tokenizer.json"
SIZES = dict(embedding_dim=96, hidden_size=128, num_layers=1, bidirectional=True, pooling="last")  # configs/sst2-*.yaml
MAX_LENGTH = 128
RUNTIMES = {"onnxruntime": ["onnxruntime", "tokenizers", "numpy"], "torch": ["torch==2.13.0", "tokenizers"]}


def random_checkpoint(path: Path, cell: str, tokenizer) -> Path:
    """A checkpoint as `sentikit fit` writes it (the parts `export_bundle` reads), random weights."""
    from sentikit.checkpoint import DATA_STATE_KEY
    from sentikit.nn.classifier import SentimentClassifier

    torch.manual_seed(0)
    hyper = dict(vocab_size=tokenizer.get_vocab_size(), label_names=["negative", "positive"], cell=cell, **SIZES)
    model = SentimentClassifier(**hyper)
    state = {"tokenizer": tokenizer.to_str(), "classes": hyper["label_names"], "max_length": MAX_LENGTH, "source": None}
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": hyper, DATA_STATE_KEY: state}, path)
    return path


def time_cell(cell: str, texts: list[str], reviews: int, batch_reviews: int, folder: Path, tokenizer) -> dict:
    """p50 ms of one review, reviews/s in batches of 256, and the largest logit difference, per runtime."""
    import onnxruntime

    from sentikit.bundle.bundle import export_bundle, load_bundle
    from sentikit.bundle.onnx_graph import OnnxSession
    from sentikit.nn.classifier import load_classifier

    ckpt = random_checkpoint(folder / f"{cell}.ckpt", cell, tokenizer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = load_bundle(export_bundle(ckpt, folder / cell, force=True))
    onnx_folder = export_bundle(ckpt, folder / f"{cell}-onnx", force=True, model_format="onnx")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(onnx_folder / "model.onnx"), options, providers=["CPUExecutionProvider"])
    chunked = OnnxSession((onnx_folder / "model.onnx").read_bytes(), threads=1)
    eager = load_classifier(ckpt).model

    def run_onnx(token_ids: torch.Tensor, lengths: torch.Tensor) -> np.ndarray:
        return session.run(["logits"], {"token_ids": token_ids.numpy(), "lengths": lengths.numpy()})[0]

    models = {"onnx": run_onnx, "onnx_chunks": chunked, "torchscript": scripted.model, "eager": eager}
    single = ("onnx", "torchscript", "eager")  # one review: one call, no chunks
    times: dict[str, list[float]] = {name: [] for name in single}
    difference = 0.0
    for text in texts[: reviews + 3]:
        token_ids, lengths, _ = scripted.encode([text])
        logits = {}
        for name in single:
            model = models[name]
            start = time.perf_counter()
            logits[name] = torch.as_tensor(model(token_ids, lengths))
            times[name].append(1000 * (time.perf_counter() - start))
        difference = max(difference, float((logits["onnx"] - logits["eager"]).abs().max()))
    rates, batched = {}, texts[:batch_reviews]  # SST-2 has 872 validation sentences
    for name, model in models.items():
        start = time.perf_counter()
        for first in range(0, len(batched), 256):
            token_ids, lengths, _ = scripted.encode(batched[first : first + 256])
            torch.as_tensor(model(token_ids, lengths)).softmax(-1)
        rates[name] = len(batched) / (time.perf_counter() - start)
    p50 = {name: statistics.median(values[3:]) for name, values in times.items()}  # the first 3 warm up
    return {"p50": p50, "rates": rates, "difference": difference}


def runtime_sizes(folder: Path) -> dict[str, float]:
    """MB of site-packages of a fresh virtual environment per runtime (`RUNTIMES`)."""
    sizes = {}
    for name, packages in RUNTIMES.items():
        venv = folder / f"venv-{name}"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *packages], check=True)
        site = next((venv / "lib").glob("python*/site-packages"))
        du = subprocess.run(["du", "-sk", str(site)], check=True, capture_output=True, text=True)
        sizes[name] = int(du.stdout.split()[0]) / 1024
    return sizes


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--imdb", type=Path, help="IMDB's test.parquet (docs/data.md#imdb): adds rows of long reviews")
    parser.add_argument("--reviews", type=int, default=300, help="reviews timed one at a time")
    parser.add_argument("--batch-reviews", type=int, default=2048, help="reviews predicted in batches of 256 (at most the file's)")
    parser.add_argument("--sizes", action="store_true", help="also install each runtime in a fresh venv and measure it (minutes, ~1 GB)")
    parser.add_argument("--quick", action="store_true", help="CI: SST-2 only, 20 and 256 reviews, no sizes")
    args = parser.parse_args()
    if args.quick:
        args.reviews, args.batch_reviews, args.imdb, args.sizes = 20, 256, None, False
    torch.set_num_threads(1)

    import onnxruntime

    from sentikit.data.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(TOKENIZER)
    sources = {"SST-2 validation sentences": SST2_VALIDATION}
    if args.imdb is not None:
        if not args.imdb.is_file():
            raise SystemExit(f"error: --imdb {args.imdb}: no such file")
        sources["IMDB test reviews"] = args.imdb
    print(f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}; 1 thread each; random weights of the shipped configs' sizes")
    if args.imdb is None:
        print("no --imdb: the IMDB rows (long reviews) are skipped")
    print(
        "\n| cell | reviews | review p50 ms: ONNX Runtime / TorchScript / eager "
        "| reviews/s: ONNX Runtime one call, in chunks of 16 / TorchScript / eager | max abs logit diff |"
    )
    print("|---|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as scratch:
        for label, source in sources.items():
            texts = pq.read_table(source, columns=["text"]).column("text").to_pylist()
            rng = np.random.default_rng(0)
            texts = [texts[i] for i in rng.permutation(len(texts))]  # IMDB's test split is sorted by label
            for cell in ("rnn", "lstm", "gru"):
                r = time_cell(cell, texts, args.reviews, args.batch_reviews, Path(scratch), tokenizer)
                p50, rates = r["p50"], r["rates"]
                print(
                    f"| {cell.upper()} | {label} | {p50['onnx']:.2f} / {p50['torchscript']:.2f} / {p50['eager']:.2f} "
                    f"| {rates['onnx']:,.0f}, {rates['onnx_chunks']:,.0f} / {rates['torchscript']:,.0f} / {rates['eager']:,.0f} "
                    f"| {r['difference']:.1e} |",
                    flush=True,
                )
        if args.sizes:
            sizes = runtime_sizes(Path(scratch))
            print("\n| runtime installed in a fresh venv | site-packages MB |\n|---|---:|")
            for name, size in sizes.items():
                print(f"| {' + '.join(RUNTIMES[name])} | {size:,.0f} |")
        elif not args.quick:
            print("\nno --sizes: the runtimes' installed sizes are not measured")


if __name__ == "__main__":
    main()
