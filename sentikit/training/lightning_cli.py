"""LightningCLI wired for sentikit: `sentikit fit / validate / test / predict`.

`sentikit fit -c configs/sst2-gru.yaml` reads the YAML into the constructors of `SentimentDataModule`
(`data:`), `SentimentClassifier` (`model:`) and the `Trainer` (`trainer:`). The model's vocabulary size
and class names are linked from the data module, and a checkpoint given with `--ckpt_path` brings its
own tokenizer and classes, so `sentikit test -c CONFIG --ckpt_path FILE` evaluates exactly what was
trained. Every run gets the callbacks of `every_run_callbacks`, whatever its config says.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from pytorch_lightning import Trainer
from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint, WeightAveraging
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.utilities import rank_zero_only

from sentikit.data.datamodule import SentimentDataModule
from sentikit.nn.classifier import SentimentClassifier
from sentikit.training.callbacks import SentikitCheckpoint, TrainingMeter, check_writable
from sentikit.training.denormals import FlushDenormals
from sentikit.training.progress import EpochLines
from sentikit.training.safeguards import RandomState, StopOnNonFiniteLoss

LOG = logging.getLogger("sentikit")


def every_run_callbacks() -> list[Callback]:
    """The callbacks every `sentikit` trainer gets, whatever its config: each run logs what its epochs
    cost (seconds, tokens/s, peak memory) beside its metrics, saves its random states for an exact
    resume, stops at the first non-finite loss, flushes denormals on the CPU (`training.denormals`: a
    final-state recurrence's backward pass over long reviews is otherwise several times slower), and
    prints one line per epoch when stdout is not a terminal (`training.progress`; after the meter,
    whose tokens/s it prints)."""
    return [TrainingMeter(), RandomState(), StopOnNonFiniteLoss(), FlushDenormals(), EpochLines()]


class SentikitCLI(LightningCLI):
    def init_parser(self, **kwargs) -> LightningArgumentParser:
        # A mistyped option raises instead of printing the whole usage (hundreds of lines) above the
        # error: `main` prints it as one line with a pointer to --help.
        kwargs.setdefault("exit_on_error", False)
        return super().init_parser(**kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.vocabulary_size", "model.vocab_size", apply_on="instantiate")
        parser.link_arguments("data.classes", "model.label_names", apply_on="instantiate")
        monitor, mode = "val_acc", "max"
        parser.add_lightning_class_args(SentikitCheckpoint, "checkpoint")
        parser.set_defaults(
            {"checkpoint.monitor": monitor, "checkpoint.mode": mode, "checkpoint.filename": "best", "checkpoint.save_last": True}
        )
        parser.add_lightning_class_args(EarlyStopping, "early_stopping")
        parser.set_defaults({"early_stopping.monitor": monitor, "early_stopping.mode": mode, "early_stopping.patience": 3})
        # Optional: weight averaging (EMA or SWA); validation, test and checkpoints then see the average.
        parser.add_lightning_class_args(WeightAveraging, "weight_averaging", subclass_mode=True, required=False)

    def _instantiate_trainer(self, config: dict, callbacks: list[Callback | None]) -> Trainer:
        # An optional callback group that a config leaves out (`weight_averaging`) instantiates to None.
        callbacks = [c for c in callbacks if c is not None]
        if not self.datamodule.has_validation:
            callbacks = without_validation(callbacks)
        return super()._instantiate_trainer(config, callbacks + every_run_callbacks())

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config  # run=False: no subcommand
        if self.subcommand not in ("fit", None):
            # Averaging happens while training; the checkpoint already holds the averaged weights.
            config.weight_averaging = None
        if config.get("weights_only", False) is None:
            # Lightning would unpickle a checkpoint at a URL (code could run); only plain data loads here.
            config.weights_only = True
        if self.subcommand == "fit":
            check_writable(config.trainer.default_root_dir or ".", "output folder (trainer.default_root_dir)")
            if config.ckpt_path:
                resume_beside(config)
        ckpt_path = config.get("ckpt_path")
        if ckpt_path and config.data.tokenizer_file is None:
            if Path(ckpt_path).is_file():
                config.data.tokenizer_file = str(ckpt_path)
            elif self.subcommand != "fit":
                raise FileNotFoundError(f"checkpoint not found: {ckpt_path}")

    def after_fit(self) -> None:
        callback = self.trainer.checkpoint_callback
        if not rank_zero_only.rank == 0 or callback is None:
            return
        chosen = callback.best_model_path or callback.last_model_path  # no validation: only the last
        if not chosen:
            return
        configs = " ".join(f"-c {c}" for c in self.config["fit"].get("config") or [])
        if callback.best_model_path:
            score = callback.best_model_score  # None when the run was moved and its best is not beside it
            scored = f" ({callback.monitor} {score:.4f})" if score is not None else ""
            print(f"\nbest checkpoint{scored}: {callback.best_model_path}")
        print(f"last checkpoint: {callback.last_model_path}")
        print(f"evaluate it with: sentikit test {configs} --ckpt_path {chosen}".replace("  ", " "))


def without_validation(callbacks: list[Callback]) -> list[Callback]:
    """A run with nothing to validate on (`data.validation_fraction 0`) has no score to stop early on or
    to pick a best checkpoint by: it trains for `max_epochs` and keeps `last.ckpt`."""
    for callback in callbacks:
        if isinstance(callback, ModelCheckpoint):
            callback.monitor, callback.save_top_k = None, 0
    return [c for c in callbacks if not isinstance(c, EarlyStopping)]


def resume_beside(config) -> None:
    """Resume `fit` where the checkpoint lies: `--ckpt_path last` becomes the newest `last*.ckpt` of this
    config's runs (Lightning would only look in the new run's own, empty, version folder and quietly
    start over), and the resumed run writes its checkpoints into the same folder, so that the best one
    is still tracked across the interruption. Its logs go to a new version folder."""
    if config.ckpt_path == "last":
        found = find_last_checkpoint(config.checkpoint.dirpath, config.trainer.default_root_dir)
        if found is None:
            where = config.checkpoint.dirpath or config.trainer.default_root_dir or "lightning_logs"
            LOG.info("no last checkpoint under %s: training from the start", where)
            config.ckpt_path = None
            return
        config.ckpt_path = str(found)
    path = Path(config.ckpt_path)
    if config.ckpt_path in ("best", "hpc", "registry"):  # Lightning's other names: its own rules apply
        return
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    LOG.info("resuming from %s", path)
    if config.checkpoint.dirpath is None:
        config.checkpoint.dirpath = str(path.parent)


def find_last_checkpoint(dirpath: str | None, root: str | None) -> Path | None:
    """The newest `last.ckpt` (or `last-vN.ckpt`) in `dirpath`, else anywhere under `root` (or under
    `./lightning_logs`, where runs without a `default_root_dir` write)."""
    if dirpath:
        candidates = list(Path(dirpath).glob("last*.ckpt"))
    else:
        candidates = list(Path(root).rglob("last*.ckpt")) if root else list(Path("lightning_logs").rglob("last*.ckpt"))
    candidates = [p for p in candidates if re.fullmatch(r"last(-v\d+)?\.ckpt", p.name) and p.is_file()]
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None


def run_lightning(args: list[str]) -> None:
    """`sentikit fit|validate|test|predict ARGS`: LightningCLI with sentikit's data module and classifier."""
    SentikitCLI(
        SentimentClassifier,
        SentimentDataModule,
        trainer_defaults={"use_distributed_sampler": False},
        save_config_kwargs={"overwrite": True},
        args=args,
    )
