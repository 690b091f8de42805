"""The `sentikit` command: one table of subcommands, each a function that takes the rest of the line.

`fit`, `validate`, `test` and `predict` are LightningCLI's (`sentikit.training.lightning_cli`): configs,
`--print_config`, any option from the command line. The others have small parsers of their own, beside
the code they run. Each command's module is imported only when it runs, so `sentikit --help` is quick and
a training run never loads the app's libraries.

A mistake a user can make (`ConfigError`, a missing file, a bad option) is printed as one
`sentikit: error:` line, exit status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import logging
import sys
import warnings
from typing import Callable, NamedTuple

from lightning_fabric.utilities.exceptions import MisconfigurationException

from sentikit.errors import ConfigError, exception_chain


class Command(NamedTuple):
    summary: str
    target: str  # "module:function", the function taking the arguments after the command's name


LIGHTNING = "sentikit.training.lightning_cli:run_lightning"

COMMANDS: dict[str, Command] = {
    "fit": Command("train a classifier from a config (-c configs/sst2-gru.yaml)", LIGHTNING),
    "validate": Command("score a checkpoint on the validation split", LIGHTNING),
    "test": Command("score a checkpoint on the test split", LIGHTNING),
    "predict": Command("predict a split of the config's data with a checkpoint", LIGHTNING),
    "explain": Command("which words the gates kept and the exact split of the logits, for a review", "sentikit.explain.command:explain_command"),
    "export": Command("write a checkpoint as a bundle that runs without sentikit", "sentikit.bundle.commands:export_command"),
    "predict-file": Command("predict every review of a Parquet, CSV or JSON Lines file with a bundle", "sentikit.bundle.commands:predict_file_command"),
    "compare": Command("train RNN, LSTM and GRU alike and measure them side by side", "sentikit.compare.fits:compare_command"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: sentikit COMMAND [OPTIONS]   (sentikit COMMAND --help for its options)", "", "commands:"]
    lines += [f"  {name:<{width}}  {command.summary}" for name, command in COMMANDS.items()]
    return "\n".join(lines)


def unknown_command(name: str) -> str:
    close = difflib.get_close_matches(name, COMMANDS, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown command '{name}'{hint}; the commands are {', '.join(COMMANDS)}"


def resolve(name: str) -> Callable[[list[str]], None]:
    module, function = COMMANDS[name].target.split(":")
    return getattr(importlib.import_module(module), function)


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
    # The command line is handed to LightningCLI as `args` on purpose (this table chose the command).
    warnings.filterwarnings("ignore", message=".*LightningCLI's args parameter is intended.*")
    package_log = logging.getLogger("sentikit")
    if not any(isinstance(h, StderrHandler) for h in package_log.handlers):  # once, however often main runs
        handler = StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        package_log.addHandler(handler)
    package_log.setLevel(logging.INFO)
    argv = sys.argv[1:] if args is None else list(args)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(), file=sys.stdout if argv else sys.stderr)
        sys.exit(0 if argv else 2)
    name = argv[0]
    if name not in COMMANDS:
        print(f"sentikit: error: {unknown_command(name)}", file=sys.stderr)
        sys.exit(2)
    run = resolve(name)
    try:
        run(argv if COMMANDS[name].target == LIGHTNING else argv[1:])
    except argparse.ArgumentError as error:
        message = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
        print(f"sentikit: error: {message} (`sentikit {name} --help` lists the options)", file=sys.stderr)
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
