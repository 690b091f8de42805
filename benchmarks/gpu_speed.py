#!/usr/bin/env python
"""Training tokens/s on a GPU for each cell: fp32 vs bf16-mixed (cuDNN's fused RNNs), and 1 device vs all.

Each figure is a real `sentikit fit` of `configs/imdb-lstm.yaml` (cell swapped by `--model.cell`) in its own
process, for two short epochs of `--batches` batches (validation cut to one batch, and not timed); the `TrainingMeter` callback logs
the real tokens per second of each epoch, summed over the processes under DDP, and the second epoch's figure
is reported (the first pays for cuDNN's set-up and the allocator's warm-up). The device name, the torch and
CUDA versions and the number of GPUs are printed with the table.

    python benchmarks/gpu_speed.py                       # on a CUDA machine: 3 cells x 2 precisions, + DDP
    python benchmarks/gpu_speed.py --cells lstm --batches 100
    python benchmarks/gpu_speed.py --quick               # anywhere: the LSTM on the CPU, fp32 and bf16-mixed,
                                                         # a few batches of SST-2 (checks the script, not speed)

IMDB is read from the local copy in `data/imdb/` when present (`--data DIR` for another folder with
train.parquet; data/README.md says how to save the copy), else the shipped SST-2 is used and the table says so.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMDB = REPO / "data/imdb"  # a local copy, not shipped (data/README.md)


def measure(cell: str, precision: str, devices: int, accelerator: str, batches: int, data: dict[str, str], root: Path) -> float:
    """The second epoch's training tokens/s of one short `sentikit fit`."""
    folder = root / f"{cell}-{precision}-{devices}"
    files = "{" + ", ".join(f"{split}: {path}" for split, path in data.items()) + "}"
    command = [
        sys.executable, "-m", "sentikit", "fit", "-c", str(REPO / "configs/imdb-lstm.yaml"),
        "--data.dataset", "null", "--data.data_files", files,
        "--model.cell", cell,
        "--trainer.accelerator", accelerator, "--trainer.devices", str(devices),
        "--trainer.precision", precision,
        "--trainer.max_epochs", "2", "--trainer.limit_train_batches", str(batches), "--trainer.limit_val_batches", "1",
        "--trainer.callbacks", "[]", "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        "--trainer.default_root_dir", str(folder),
        "--trainer.logger", "pytorch_lightning.loggers.CSVLogger", "--trainer.logger.save_dir", str(folder),
    ]  # fmt: skip
    if devices > 1:
        command += ["--trainer.strategy", "ddp"]
    result = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, PYTHONWARNINGS="ignore"))
    if result.returncode != 0:
        raise SystemExit(f"gpu_speed.py: sentikit fit failed for {cell} {precision} x{devices}:\n{result.stderr[-3000:]}")
    rows = [r for r in csv.DictReader(open(next(folder.rglob("metrics.csv")))) if r.get("train_tokens_per_sec")]
    return float(rows[-1]["train_tokens_per_sec"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", nargs="+", default=["rnn", "lstm", "gru"], choices=["rnn", "lstm", "gru"])
    parser.add_argument("--batches", type=int, default=60, help="training batches per epoch (two epochs per figure)")
    parser.add_argument("--data", type=Path, default=IMDB, help="a folder with train.parquet (and test.parquet)")
    parser.add_argument("--quick", action="store_true", help="the LSTM on the CPU, a few batches: a smoke run")
    args = parser.parse_args()

    import torch

    gpus = torch.cuda.device_count()
    if args.quick:
        accelerator, cells, batches, device_counts = "cpu", ["lstm"], 3, [1]
    elif gpus == 0:
        sys.exit("gpu_speed.py: no CUDA device here (run with --quick to check the script on the CPU)")
    else:
        accelerator, cells, batches = "gpu", args.cells, args.batches
        device_counts = [1, gpus] if gpus > 1 else [1]
    if (args.data / "train.parquet").is_file() and not args.quick:
        data = {"train": str(args.data / "train.parquet")}
        source = f"IMDB ({args.data})"
    else:
        data = {split: str(REPO / f"data/sst2/{split}.parquet") for split in ("train", "validation")}
        source = "SST-2 (data/sst2)"
    if accelerator == "gpu":
        device = f"{torch.cuda.get_device_name(0)} x{gpus}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}"
    else:
        device = f"CPU, {torch.get_num_threads()} threads"
    print(f"Training tokens/s (2nd epoch of {batches} batches of 64), configs/imdb-lstm.yaml sizes, {source}")
    print(f"device: {device}; torch {torch.__version__}\n")
    print("| cell | precision | devices | tokens/s | vs fp32 on 1 device |")
    print("|---|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="sentikit-gpu-") as root:
        for cell in cells:
            base = None
            for devices in device_counts:
                for precision in ("32-true", "bf16-mixed"):
                    speed = measure(cell, precision, devices, accelerator, batches, data, Path(root))
                    base = base or speed
                    print(f"| {cell} | {precision} | {devices} | {speed:,.0f} | {speed / base:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
