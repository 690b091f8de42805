"""The `sentikit` command: LightningCLI for fit / validate / test / predict, and `sentikit explain`.

`sentikit fit -c configs/sst2-gru.yaml` reads the YAML into the constructors of `SentimentDataModule`
(`data:`), `SentimentClassifier` (`model:`) and the `Trainer` (`trainer:`). The model's vocabulary size
and class names are linked from the data module, and a checkpoint given with `--ckpt_path` brings its
own tokenizer and classes, so `sentikit test -c CONFIG --ckpt_path FILE` evaluates exactly what was
trained.

`sentikit pretrain -c CONFIG` is `fit` with a `LanguageModel` (`language_model.py`) in place of the
classifier, on the same data section; `sentikit fit --model.init_from LM.ckpt` then starts a classifier
from it, reading its tokenizer.

`sentikit explain`, `sentikit export` and `sentikit predict-file` are not training commands: they are
handed to `explain_command.py` and `bundle_command.py` before LightningCLI parses anything, and their
errors are printed the same way. `sentikit compare` (`compare.py`) runs `sentikit fit` once per cell and
seed and measures the results.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import warnings
from pathlib import Path

from lightning_fabric.utilities.exceptions import MisconfigurationException
from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint, WeightAveraging
from pytorch_lightning import Trainer
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.utilities import rank_zero_only

from sentikit.callbacks import SentikitCheckpoint, TrainingMeter, check_writable
from sentikit.checkpoint import read_checkpoint_extras
from sentikit.data import SentimentDataModule
from sentikit.denormals import FlushDenormals
from sentikit.errors import ConfigError, exception_chain
from sentikit.language_model import LanguageModel
from sentikit.model import SentimentClassifier
from sentikit.safeguards import RandomState, StopOnNonFiniteLoss
from sentikit.tokenizer import load_tokenizer, tokenizer_from_string, vocabulary_fingerprint

LOG = logging.getLogger("sentikit")


def every_run_callbacks() -> list[Callback]:
    """The callbacks every `sentikit` trainer gets, whatever its config: each run logs what its epochs
    cost (seconds, tokens/s, peak memory) beside its metrics, saves its random states for an exact
    resume, stops at the first non-finite loss, and flushes denormals on the CPU (`sentikit.denormals`:
    a final-state recurrence's backward pass over long reviews is otherwise several times slower)."""
    return [TrainingMeter(), RandomState(), StopOnNonFiniteLoss(), FlushDenormals()]


class SentikitCLI(LightningCLI):
    def init_parser(self, **kwargs) -> LightningArgumentParser:
        # A mistyped option raises instead of printing the whole usage (hundreds of lines) above the
        # error: `main` prints it as one line with a pointer to --help.
        kwargs.setdefault("exit_on_error", False)
        return super().init_parser(**kwargs)

    @property
    def pretraining(self) -> bool:
        """`sentikit pretrain`: the model is a `LanguageModel`, scored by its loss, with no classes."""
        return self.model_class is LanguageModel

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.vocabulary_size", "model.vocab_size", apply_on="instantiate")
        if not self.pretraining:
            parser.link_arguments("data.classes", "model.label_names", apply_on="instantiate")
        monitor, mode = ("val_loss", "min") if self.pretraining else ("val_acc", "max")
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
            if config.model.get("init_from"):
                reuse_pretrained_tokenizer(config)
        elif config.model.get("init_from"):
            # Only fit starts from the language model; a trained checkpoint already holds its weights.
            config.model.init_from = None
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
        if self.pretraining:
            print(f"\nlanguage model: {chosen}")
            print(f"start a classifier from it with: sentikit fit -c CONFIG --model.init_from {chosen}")
            return
        if callback.best_model_path:
            score = callback.best_model_score  # None when the run was moved and its best is not beside it
            scored = f" ({callback.monitor} {score:.4f})" if score is not None else ""
            print(f"\nbest checkpoint{scored}: {callback.best_model_path}")
        print(f"last checkpoint: {callback.last_model_path}")
        print(f"evaluate it with: sentikit test {configs} --ckpt_path {chosen}".replace("  ", " "))


def reuse_pretrained_tokenizer(config) -> None:
    """A classifier that starts from a language model must number words as it did: it reads the
    language model's tokenizer, or, when the config names another, one with the same vocabulary."""
    init_from = config.model.init_from
    if not Path(init_from).is_file():
        raise FileNotFoundError(f"language model checkpoint not found (model.init_from): {init_from}")
    if config.data.tokenizer_file is None:
        config.data.tokenizer_file = init_from
        return
    theirs = tokenizer_from_string(read_checkpoint_extras(init_from)["tokenizer"], f"the tokenizer in {init_from}")
    if Path(config.data.tokenizer_file).suffix == ".ckpt":
        ours = tokenizer_from_string(read_checkpoint_extras(config.data.tokenizer_file)["tokenizer"], config.data.tokenizer_file)
    else:
        ours = load_tokenizer(config.data.tokenizer_file)
    if vocabulary_fingerprint(ours) != vocabulary_fingerprint(theirs):
        raise ConfigError(
            f"data.tokenizer_file {config.data.tokenizer_file} numbers words differently from the language model "
            f"{init_from} (model.init_from); leave data.tokenizer_file out to use the language model's"
        )


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


class StderrHandler(logging.StreamHandler):
    """Logs to whatever `sys.stderr` is when a message is written, not to the one of the first call:
    `main` may run many times in one process (tests, notebooks), each with its own stderr."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def main(args: list[str] | None = None) -> None:
    # Lightning notices a user can do nothing about: no TensorBoard (the CSV logger is used), an
    # internal torch deprecation, and an empty validation loader, which `validation_fraction 0` asks for
    # (empty splits are refused with their own message when the data is read).
    warnings.filterwarnings("ignore", message=".*tensorboardX.*")
    warnings.filterwarnings("ignore", message=".*Total length of `list` across ranks is zero.*")
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")
    # `sentikit pretrain` hands LightningCLI `fit` and the rest of the command line as `args` on purpose.
    warnings.filterwarnings("ignore", message=".*LightningCLI's args parameter is intended.*")
    package_log = logging.getLogger("sentikit")
    if not any(isinstance(h, StderrHandler) for h in package_log.handlers):  # once, however often main runs
        handler = StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
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
        # `sentikit pretrain ARGS` is `fit` of a language model on the same data (language_model.py).
        pretrain = argv[:1] == ["pretrain"]
        SentikitCLI(
            LanguageModel if pretrain else SentimentClassifier,
            SentimentDataModule,
            trainer_defaults={"use_distributed_sampler": False},
            save_config_kwargs={"overwrite": True},
            args=["fit", *argv[1:]] if pretrain else args,
        )
    except argparse.ArgumentError as error:
        message = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
        known = argv[:1] and (argv[0] in SentikitCLI.subcommands() or argv[0] == "pretrain")
        command = f"sentikit {argv[0]}" if known else "sentikit"
        print(f"sentikit: error: {message} (`{command} --help` lists the options)", file=sys.stderr)
        sys.exit(2)
    except (ConfigError, FileNotFoundError, MisconfigurationException) as error:
        # Lightning's own "these trainer settings contradict each other" is a config error too.
        print(f"sentikit: error: {error}", file=sys.stderr)
        sys.exit(2)
    except ValueError as error:
        # jsonargparse builds callbacks such as `weight_averaging` itself and wraps a constructor's
        # refusal in "does not validate against any of the Union subtypes": say the refusal.
        cause = next((e for e in exception_chain(error) if isinstance(e, ConfigError)), None)
        if cause is None:
            raise
        print(f"sentikit: error: {cause}", file=sys.stderr)
        sys.exit(2)
