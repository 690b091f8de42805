"""Read sentikit checkpoint files: plain file I/O, no model classes.

`torch.load(weights_only=True)`, so no pickled code runs. What a checkpoint rebuilds is built where it
lives: the classifier in `sentikit.nn.classifier.load_classifier`, the tokenizer from the JSON text that
`checkpoint_extras` returns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from sentikit.errors import ConfigError

# Lightning stores `LightningDataModule.state_dict()` under the data module's class name.
DATA_STATE_KEY = "SentimentDataModule"


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated zip, not a torch file, or an object that needs pickle
        raise ConfigError(f"{path} is not a readable checkpoint ({type(error).__name__}: {error})".splitlines()[0]) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ConfigError(f"{path} is not a Lightning checkpoint (no 'state_dict' in it)")
    return checkpoint


def read_checkpoint_extras(path: str | Path) -> dict[str, Any]:
    """The data module's state in a checkpoint file: the tokenizer (JSON text) and the label names."""
    return checkpoint_extras(read_checkpoint(path), path)


def checkpoint_extras(checkpoint: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """The data module's state in a checkpoint already read from `path` (named in errors)."""
    extras = checkpoint.get(DATA_STATE_KEY)
    if not isinstance(extras, dict) or "tokenizer" not in extras:
        raise ConfigError(f"{path} was not written by sentikit: it holds no tokenizer")
    return extras
