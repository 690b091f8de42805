"""The `sentikit` command: LightningCLI for fit / validate / test / predict, and `sentikit explain`.

`sentikit fit -c configs/sst2-gru.yaml` reads the YAML into the constructors of `SentimentDataModule`
(`data:`), `SentimentClassifier` (`model:`) and the `Trainer` (`trainer:`). The model's vocabulary size
and class names are linked from the data module, and a checkpoint given with `--ckpt_path` brings its
own tokenizer and classes, so `sentikit test -c CONFIG --ckpt_path FILE` evaluates exactly what was
trained.

`sentikit explain`, `sentikit export` and `sentikit predict-file` are not training commands: they are
handed to `explain_command.py` and `bundle_command.py` before LightningCLI parses anything, and their
errors are printed the same way. `sentikit compare` (`compare.py`) runs `sentikit fit` once per cell and
seed and measures the results.
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

from lightning_fabric.utilities.exceptions import MisconfigurationException
from pytorch_lightning.callbacks import Callback, EarlyStopping, WeightAveraging
from pytorch_lightning import Trainer
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.utilities import rank_zero_only

from sentikit.callbacks import SentikitCheckpoint, TrainingMeter
from sentikit.data import SentimentDataModule
from sentikit.errors import ConfigError
from sentikit.model import SentimentClassifier


class SentikitCLI(LightningCLI):
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.vocabulary_size", "model.vocab_size", apply_on="instantiate")
        parser.link_arguments("data.classes", "model.label_names", apply_on="instantiate")
        parser.add_lightning_class_args(SentikitCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val_acc",
                "checkpoint.mode": "max",
                "checkpoint.filename": "best",
                "checkpoint.save_last": True,
            }
        )
        parser.add_lightning_class_args(EarlyStopping, "early_stopping")
        parser.set_defaults({"early_stopping.monitor": "val_acc", "early_stopping.mode": "max", "early_stopping.patience": 3})
        # Optional: weight averaging (EMA or SWA); validation, test and checkpoints then see the average.
        parser.add_lightning_class_args(WeightAveraging, "weight_averaging", subclass_mode=True, required=False)

    def _instantiate_trainer(self, config: dict, callbacks: list[Callback | None]) -> Trainer:
        # An optional callback group that a config leaves out (`weight_averaging`) instantiates to None.
        # Every run logs what its epochs cost (seconds, tokens/s, peak memory) beside its metrics.
        return super()._instantiate_trainer(config, [c for c in callbacks if c is not None] + [TrainingMeter()])

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config  # run=False: no subcommand
        if self.subcommand not in ("fit", None):
            # Averaging happens while training; the checkpoint already holds the averaged weights.
            config.weight_averaging = None
        ckpt_path = config.get("ckpt_path")
        if ckpt_path and config.data.tokenizer_file is None:
            if Path(ckpt_path).is_file():
                config.data.tokenizer_file = str(ckpt_path)
            elif self.subcommand != "fit":
                raise FileNotFoundError(f"checkpoint not found: {ckpt_path}")

    def after_fit(self) -> None:
        callback = self.trainer.checkpoint_callback
        if not rank_zero_only.rank == 0 or callback is None or not callback.best_model_path:
            return
        configs = " ".join(f"-c {c}" for c in self.config["fit"].get("config") or [])
        score = callback.best_model_score
        print(f"\nbest checkpoint ({callback.monitor} {score:.4f}): {callback.best_model_path}")
        print(f"last checkpoint: {callback.last_model_path}")
        print(f"evaluate it with: sentikit test {configs} --ckpt_path {callback.best_model_path}".replace("  ", " "))


def main(args: list[str] | None = None) -> None:
    # Lightning notices a user can do nothing about: no TensorBoard (the CSV logger is used), and an
    # internal torch deprecation.
    warnings.filterwarnings("ignore", message=".*tensorboardX.*")
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    package_log = logging.getLogger("sentikit")
    package_log.addHandler(handler)
    package_log.setLevel(logging.INFO)
    argv = sys.argv[1:] if args is None else args
    try:
        if argv[:1] == ["explain"]:  # not a training command: a small parser of its own
            from sentikit.explain_command import explain_command

            explain_command(argv[1:])
            return
        if argv[:1] == ["compare"]:  # many fits and their measurements: sentikit/compare.py
            from sentikit.compare import compare_command

            compare_command(argv[1:])
            return
        if argv[:1] in (["export"], ["predict-file"]):
            from sentikit.bundle_command import export_command, predict_file_command

            (export_command if argv[0] == "export" else predict_file_command)(argv[1:])
            return
        SentikitCLI(
            SentimentClassifier,
            SentimentDataModule,
            trainer_defaults={"use_distributed_sampler": False},
            save_config_kwargs={"overwrite": True},
            args=args,
        )
    except (ConfigError, FileNotFoundError, MisconfigurationException) as error:
        # Lightning's own "these trainer settings contradict each other" is a config error too.
        print(f"sentikit: error: {error}", file=sys.stderr)
        sys.exit(2)
