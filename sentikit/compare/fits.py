"""`sentikit compare`: train several cells with the same data, tokenizer, budget and seeds, and measure them.

    sentikit compare -c configs/sst2-lstm.yaml --cells rnn lstm gru --seeds 3 --out reports/sst2
    sentikit compare -c configs/sst2-lstm.yaml --out reports/quick --trainer.max_epochs 1   # any fit option

The flow, one run per (cell, seed):

1. the config is parsed once by the same LightningCLI as `sentikit fit`; its data module trains the
   tokenizer, which is saved as `OUT/tokenizer.json` and handed to every run, so all cells read the same ids;
2. each run is a `sentikit fit` subprocess (`--model.cell`, `--seed_everything`), so DDP, devices,
   precision and every other Trainer option work exactly as in `fit`; it logs to CSV in its own folder
   `OUT/runs/<cell>-seed<seed>/`, where the `TrainingMeter` adds each epoch's seconds, tokens/s and memory;
3. the best checkpoint is evaluated here (`compare/measure.py`): accuracy and F1 on validation and test, accuracy
   by length, inference tokens/s, and memory decay by distance from the end;
4. `compare/report.py` writes `report.md`, `report.json` and the plots, and the table is printed.

Resuming: a run whose `result.json` exists is done and is not repeated; a run that was stopped resumes from
its `last.ckpt`; a finished fit whose evaluation was interrupted is only evaluated. `OUT/plan.json` records
the configs and options, and a different config or option refuses to mix into the same folder. Cells and
seeds may be added to a finished comparison: only the new runs train.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentikit.atomic import write_json
from sentikit.errors import ConfigError

CELLS = ("rnn", "lstm", "gru")


@dataclass(frozen=True)
class Run:
    cell: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.cell}-seed{self.seed}"


def compare_command(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="sentikit compare",
        description="Train and measure RNN, LSTM and GRU on the same data, tokenizer, budget and seeds. "
        "Options not listed here (--trainer.max_epochs 2, --data.batch_size 32, ...) go to every run's `sentikit fit`.",
    )
    parser.add_argument("-c", "--config", action="append", required=True, help="a fit config (repeatable, layered as in fit)")
    parser.add_argument("--cells", nargs="+", choices=CELLS, default=list(CELLS))
    parser.add_argument("--seeds", type=int, default=1, help="runs per cell: the config's seed_everything, +1, +2, ...")
    parser.add_argument("--out", type=Path, required=True, help="the report folder (runs go under OUT/runs)")
    parser.add_argument("--force", action="store_true", help="start over in an --out that holds another comparison")
    parser.add_argument("--decay-reviews", type=int, default=64, help="validation reviews the memory-decay curve averages")
    options, overrides = parser.parse_known_args(argv)
    if options.seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {options.seeds}")
    if options.decay_reviews < 1:
        raise ConfigError(f"--decay-reviews must be at least 1, got {options.decay_reviews}")
    for name in ("--model.cell", "--seed_everything", "--ckpt_path", "--data.tokenizer_file", "--checkpoint.dirpath"):
        if any(arg == name or arg.startswith(name + "=") for arg in overrides):
            raise ConfigError(f"{name} is set by sentikit compare for each run; leave it out")
    fit_args = [arg for config in options.config for arg in ("-c", config)] + overrides
    compare(fit_args, options.cells, options.seeds, options.out, force=options.force, decay_reviews=options.decay_reviews)


def compare(
    fit_args: list[str], cells: list[str], seeds: int, out: Path, force: bool = False, decay_reviews: int = 64
) -> dict[str, Any]:
    """Train and measure every (cell, seed) not already done under `out`; write and return the report."""
    from sentikit.compare.report import build_report, write_report

    out.mkdir(parents=True, exist_ok=True)
    check_plan(out, fit_args, force)
    print(f"sentikit compare: preparing the data and the shared tokenizer ({out / 'tokenizer.json'})", flush=True)
    setup = prepare(fit_args, out)
    runs = [Run(cell, setup.base_seed + i) for i in range(seeds) for cell in cells]
    results, started, trained = [], time.perf_counter(), 0
    for number, run in enumerate(runs, 1):
        folder = run_folder(out, run)
        result_file = folder / "result.json"
        if result_file.is_file():
            print(f"[{number}/{len(runs)}] {run.name}: done earlier, reusing {result_file}", flush=True)
            results.append(json.loads(result_file.read_text()))
            continue
        eta = ""
        if trained:
            left = (time.perf_counter() - started) / trained * sum(1 for r in runs[number - 1 :] if not _done(out, r))
            eta = f", about {left / 60:.0f} min left"
        print(f"\n[{number}/{len(runs)}] {run.name}: {_state(folder)}{eta}", flush=True)
        train(run, fit_args, setup, folder)
        print(f"[{number}/{len(runs)}] {run.name}: evaluating the best checkpoint", flush=True)
        result = evaluate(run, out, setup, decay_reviews)
        write_json(result_file, result)
        results.append(result)
        trained += 1
    command = ["sentikit", "compare", *fit_args, "--cells", *cells, "--seeds", str(seeds), "--out", str(out)]
    report = build_report(results, setup.description, command)
    table = write_report(report, out)
    print(f"\n{table}\nreport: {out / 'report.md'}, {out / 'report.json'} and the plots beside them")
    return report


# --- the shared data ---------------------------------------------------------------------------------


@dataclass
class Setup:
    datamodule: Any  # SentimentDataModule, tokenizer fixed
    tokenizer_file: Path
    base_seed: int
    edges: list[int]  # length buckets of the evaluated split
    description: dict[str, Any]


def prepare(fit_args: list[str], out: Path) -> Setup:
    """Parse the config as `sentikit fit` would and build its data once: the tokenizer every run shares
    (trained on train, or reused from `OUT/tokenizer.json` when resuming) and the length buckets."""
    import numpy as np
    import torch

    from sentikit.training.lightning_cli import SentikitCLI
    from sentikit.data.datamodule import SentimentDataModule
    from sentikit.compare.measure import length_edges
    from sentikit.nn.classifier import SentimentClassifier
    from sentikit.data.tokenizer import save_tokenizer

    tokenizer_file = out / "tokenizer.json"
    args = list(fit_args) + (["--data.tokenizer_file", str(tokenizer_file)] if tokenizer_file.is_file() else [])
    with warnings.catch_warnings():  # "args given while sys.argv has some too": on purpose here
        warnings.filterwarnings("ignore", message=".*args parameter is intended.*")
        cli = SentikitCLI(
            SentimentClassifier,
            SentimentDataModule,
            run=False,
            trainer_defaults={"use_distributed_sampler": False, "logger": False},
            args=args,
        )
    datamodule = cli.datamodule
    if not datamodule.has_validation:
        raise ConfigError(
            "sentikit compare picks each run's best epoch and measures memory on a validation split, and this "
            "data has none (data.validation_fraction is 0); give a validation split or a validation_fraction above 0"
        )
    if not tokenizer_file.is_file():
        save_tokenizer(datamodule.tokenizer, tokenizer_file)
    seed = cli.config.get("seed_everything")
    base_seed = seed if isinstance(seed, int) and not isinstance(seed, bool) else 0
    split = "test" if "test" in datamodule.splits else "validation"
    edges = length_edges(np.asarray(datamodule.splits[split].lengths))
    data = cli.config["data"].as_dict()  # plain dicts and lists all the way down (data.sources holds several)
    description = {
        "data": {k: (v if isinstance(v, (str, int, float, bool, type(None), list, dict)) else str(v)) for k, v in data.items()},
        "splits": {name: len(reviews) for name, reviews in datamodule.splits.items()},
        "vocabulary": datamodule.vocabulary_size,
        "length_split": split,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "evaluation_device": "cuda" if torch.cuda.is_available() else "cpu",
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return Setup(datamodule, tokenizer_file, base_seed, edges, description)


def check_plan(out: Path, fit_args: list[str], force: bool) -> None:
    """Refuse to mix runs of different configs or options in one folder; `force` starts over."""
    plan = {"fit_args": fit_args, "configs": _config_hashes(fit_args)}
    plan_file = out / "plan.json"
    if plan_file.is_file():
        previous = json.loads(plan_file.read_text())
        started = (out / "runs").is_dir() and any((out / "runs").iterdir())
        if previous != plan and started:
            if not force:
                raise ConfigError(
                    f"{out} holds a comparison made with other configs or options ({' '.join(previous['fit_args'])}); "
                    "use another --out, or --force to start over there"
                )
            import shutil

            for name in ("runs", "tokenizer.json"):
                path = out / name
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    write_json(plan_file, plan)


def _config_hashes(fit_args: list[str]) -> dict[str, str]:
    configs = [fit_args[i + 1] for i, arg in enumerate(fit_args[:-1]) if arg in ("-c", "--config")]
    hashes = {}
    for config in configs:
        path = Path(config)
        if not path.is_file():
            raise FileNotFoundError(f"config not found: {config}")
        hashes[config] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


# --- one run ---------------------------------------------------------------------------------------


def train(run: Run, fit_args: list[str], setup: Setup, folder: Path) -> None:
    """`sentikit fit` for one run in a subprocess, resumed from its `last.ckpt` when there is one."""
    if (folder / "fit.json").is_file():
        return  # trained; only the evaluation is missing
    checkpoints = folder / "checkpoints"
    command = [
        sys.executable, "-m", "sentikit", "fit", *fit_args,
        "--model.cell", run.cell,
        "--seed_everything", str(run.seed),
        "--data.tokenizer_file", str(setup.tokenizer_file),
        "--trainer.default_root_dir", str(folder),
        "--checkpoint.dirpath", str(checkpoints),
        # One CSV row per logging step, written at once: a killed run keeps the epochs it finished.
        "--trainer.logger", "pytorch_lightning.loggers.CSVLogger",
        "--trainer.logger.save_dir", str(folder),
        "--trainer.logger.flush_logs_every_n_steps", "1",
    ]  # fmt: skip
    if (checkpoints / "last.ckpt").is_file():
        command += ["--ckpt_path", str(checkpoints / "last.ckpt")]
    started = time.perf_counter()
    code = run_child(command, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if code != 0:
        how = f"was stopped by {signal.Signals(-code).name}" if code < 0 else f"exited with {code}"
        raise ConfigError(
            f"run {run.name} stopped (sentikit fit {how}; its output is above); "
            "run the same command again to resume from its last checkpoint"
        )
    best = best_checkpoint(checkpoints).relative_to(folder)  # relative: the folder may be moved before evaluation
    write_json(folder / "fit.json", {"best_checkpoint": str(best), "seconds": time.perf_counter() - started})


def run_child(command: list[str], env: dict[str, str]) -> int:
    """Run `command` and return its exit code, passing a SIGTERM sent to this process on to it.

    A scheduler or `kill` that stops `sentikit compare` signals its pid only; without this the training
    it started would go on unseen, holding the cores, until it finished. Lightning in the child stops at
    the signal, and the run resumes from its `last.ckpt` when the comparison is started again. Ctrl-C
    reaches the whole process group, so the child stops by itself; as with `subprocess.call`, an
    exception here (that Ctrl-C) kills the child rather than leave it behind."""
    child = subprocess.Popen(command, env=env)
    forward = threading.current_thread() is threading.main_thread()  # signal handlers live in the main thread
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: child.send_signal(signum)) if forward else None
    try:
        return child.wait()
    except BaseException:
        child.kill()
        child.wait()
        raise
    finally:
        if forward:
            signal.signal(signal.SIGTERM, previous)


def best_checkpoint(checkpoints: Path) -> Path:
    """The best checkpoint the checkpoint callback recorded in `last.ckpt` (resumes keep it up to date).

    It is looked up by name in `checkpoints`, where the callback writes: the recorded path is absolute,
    and would point at the old place (or nowhere) once the comparison folder has been moved or copied."""
    from sentikit.checkpoint import read_checkpoint

    last = checkpoints / "last.ckpt"
    state = read_checkpoint(last).get("callbacks", {})
    for key, value in state.items():
        if "Checkpoint" in str(key) and isinstance(value, dict) and value.get("best_model_path"):
            best = checkpoints / Path(value["best_model_path"]).name
            if best.is_file():
                return best
    return last  # no validation, no best: the last weights


def evaluate(run: Run, out: Path, setup: Setup, decay_reviews: int) -> dict[str, Any]:
    """Measure the run's best checkpoint on validation and test; read its training log.

    The result names the checkpoint relative to `out`, so that a report copied off the machine that
    trained it (or committed) still points into its own `runs/` folder."""
    import numpy as np
    import torch

    from sentikit.checkpoint import read_checkpoint
    from sentikit.nn.classifier import classifier_from_checkpoint
    from sentikit.compare.measure import accuracy_by_length, accuracy_by_source, evaluate_split, memory_by_distance

    folder = run_folder(out, run)
    best = folder / json.loads((folder / "fit.json").read_text())["best_checkpoint"]
    checkpoint = read_checkpoint(best)  # read once: the model and the epoch it was saved at
    model = classifier_from_checkpoint(checkpoint, best).model
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dm = setup.datamodule
    splits = {"validation": dm.val_dataloader()} | ({"test": dm.test_dataloader()} if "test" in dm.splits else {})
    scores = {name: evaluate_split(model, loader, device) for name, loader in splits.items()}
    for s in scores.values():
        if s["sources"] is not None:
            s["acc_by_source"] = accuracy_by_source(s["correct"], s["sources"], dm.source_names)
    length_scores = scores[setup.description["length_split"]]
    validation = dm.splits["validation"]
    longest = np.argsort(-validation.lengths, kind="stable")[:decay_reviews]  # the most distances to measure
    decay = memory_by_distance(model, [validation[int(i)]["input_ids"] for i in longest])
    epochs = read_epochs(folder)
    best_epoch = checkpoint.get("epoch")
    return {
        "run": run.name,
        "cell": run.cell,
        "seed": run.seed,
        "parameters": model.num_parameters,
        "hyper_parameters": {k: v for k, v in model.hparams.items() if not k.startswith("_") and k != "label_names"},
        "best_checkpoint": os.path.relpath(best, out),
        "best_epoch": int(best_epoch) + 1 if isinstance(best_epoch, int) else None,
        "epochs": epochs,
        **{name: {k: v for k, v in s.items() if k not in ("correct", "lengths", "sources")} for name, s in scores.items()},
        "inference_tokens_per_sec": length_scores["tokens_per_sec"],
        "accuracy_by_length": accuracy_by_length(length_scores["correct"], length_scores["lengths"], setup.edges),
        "memory_decay": decay,
    }


def read_epochs(folder: Path) -> list[dict[str, float]]:
    """One row per epoch from the run's CSV logs (`lightning_logs/version_*/metrics.csv`); a resumed run
    has several versions, and a later version's row for an epoch replaces an earlier one's."""
    import csv

    rows: dict[int, dict[str, float]] = {}
    versions = sorted((folder / "lightning_logs").glob("version_*"), key=lambda p: int(p.name.split("_")[1]))
    for version in versions:
        metrics = version / "metrics.csv"
        if not metrics.is_file():
            continue
        with open(metrics, newline="") as handle:
            for line in csv.DictReader(handle):
                if not line.get("epoch"):
                    continue
                epoch = int(float(line["epoch"]))
                keys = ("val_acc", "val_f1", "val_loss", "train_seconds", "train_tokens_per_sec", "memory_start_mb", "memory_peak_mb")
                for key in [*keys, *(k for k in line if k.startswith("val_acc/"))]:  # and per data source
                    if line.get(key):
                        rows.setdefault(epoch, {"epoch": epoch + 1})[key] = float(line[key])
    return [rows[e] for e in sorted(rows)]


def run_folder(out: Path, run: Run) -> Path:
    return out / "runs" / run.name


def _done(out: Path, run: Run) -> bool:
    return (run_folder(out, run) / "result.json").is_file()


def _state(folder: Path) -> str:
    if (folder / "fit.json").is_file():
        return "trained earlier, evaluating"
    if (folder / "checkpoints" / "last.ckpt").is_file():
        return "resuming training from its last checkpoint"
    return "training"
