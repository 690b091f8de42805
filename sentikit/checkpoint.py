"""Read sentikit checkpoints safely (`torch.load(weights_only=True)`: no pickle code runs)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tokenizers import Tokenizer

from sentikit.errors import ConfigError
from sentikit.tokenizer import tokenizer_from_string

if TYPE_CHECKING:
    from sentikit.model import SentimentClassifier

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


@dataclass
class LoadedClassifier:
    """A trained classifier with what it needs to read new text."""

    model: "SentimentClassifier"
    tokenizer: Tokenizer
    max_length: int


def load_classifier(path: str | Path) -> LoadedClassifier:
    """Rebuild a `SentimentClassifier` from a sentikit checkpoint alone (no pickle, no data, no config):
    its saved hyper-parameters, weights, tokenizer and maximum length. In eval mode, on the CPU."""
    return classifier_from_checkpoint(read_checkpoint(path), path)


def classifier_from_checkpoint(checkpoint: dict[str, Any], path: str | Path) -> LoadedClassifier:
    """`load_classifier` for a checkpoint already read from `path` (named in errors)."""
    from sentikit.model import SentimentClassifier

    extras = checkpoint_extras(checkpoint, path)
    hyper = checkpoint.get("hyper_parameters")
    if not isinstance(hyper, dict) or "vocab_size" not in hyper:
        raise ConfigError(f"{path} holds no sentikit model hyper-parameters")
    try:
        # LightningCLI adds `_instantiator` (and Lightning may add other private keys): not arguments.
        model = SentimentClassifier(**{k: v for k, v in hyper.items() if not k.startswith("_")})
        model.load_state_dict(checkpoint["state_dict"])
    except (TypeError, RuntimeError) as error:
        raise ConfigError(f"{path} does not hold a sentikit classifier this version can rebuild: {str(error).splitlines()[0]}") from None
    tokenizer = tokenizer_from_string(extras["tokenizer"], f"the tokenizer in {path}")
    return LoadedClassifier(model.eval(), tokenizer, int(extras.get("max_length") or 512))
