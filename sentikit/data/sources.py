"""Load the raw splits of a sentiment dataset: a Hugging Face hub id or local parquet/csv/json files.

Everything a user can get wrong here (a missing file, an unknown extension, an unreachable hub)
becomes a one-line `ConfigError` or `FileNotFoundError` naming the file or dataset.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import datasets

from sentikit.errors import ConfigError, exception_chain

# File extension -> the `datasets` builder that reads it.
BUILDERS = {".parquet": "parquet", ".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json"}


def load_local_splits(data_files: Mapping[str, str | list[str]]) -> datasets.DatasetDict:
    """Read local files, one entry per split (`{"train": "a.parquet", "test": ["b.parquet", ...]}`)."""
    if not data_files:
        raise ConfigError("data_files is empty: give at least a 'train' file")
    builders = set()
    files: dict[str, list[str]] = {}
    for split, paths in data_files.items():
        files[split] = [paths] if isinstance(paths, str) else list(paths)
        if not files[split]:
            raise ConfigError(f"data_files['{split}'] lists no file")
        for path in files[split]:
            if not Path(path).is_file():
                raise FileNotFoundError(f"data file for split '{split}' not found: {path}")
            builder = BUILDERS.get(Path(path).suffix.lower())
            if builder is None:
                raise ConfigError(f"{path}: unsupported file type; use one of {', '.join(sorted(BUILDERS))}")
            builders.add(builder)
    if len(builders) > 1:
        raise ConfigError(f"data_files mixes formats ({', '.join(sorted(builders))}); convert them to one")
    (builder,) = builders
    options = {"delimiter": "\t"} if all(p.lower().endswith(".tsv") for ps in files.values() for p in ps) else {}
    loaded = {}
    for split, paths in files.items():
        try:
            loaded[split] = datasets.load_dataset(builder, data_files={split: paths}, split=split, **options)
        except Exception as error:  # pyarrow/pandas parse errors surface as many types
            where = f"split '{split}' ({', '.join(paths)})"
            if "corresponds to no data" in str(error):
                raise ConfigError(f"{where} is empty") from None
            raise ConfigError(read_error_message(error, where, builder)) from None
    return datasets.DatasetDict(loaded)


def read_error_message(error: BaseException, where: str, builder: str) -> str:
    """One line for a file `datasets` could not read. Its own message is often only "An error occurred
    while generating the dataset"; the reason (bad bytes, a parse error) is further down the chain."""
    chain = exception_chain(error)
    for cause in chain:
        if isinstance(cause, UnicodeDecodeError):
            return f"{where} is not UTF-8 text ({cause.reason}, byte 0x{cause.object[cause.start]:02x}): save it as UTF-8"
    reasons = [str(c).strip().splitlines()[0] for c in chain if str(c).strip()]
    useful = [r for r in reasons if "error occurred while generating" not in r]
    return f"could not read {where} as {builder}: {(useful or reasons or [type(chain[0]).__name__])[0]}"


def load_hub_splits(dataset: str, config_name: str | None = None, timeout: float = 5.0) -> datasets.DatasetDict:
    """Load a dataset from the Hugging Face hub, or from the local cache when the hub is unreachable.

    Without a network, `datasets` retries for half a minute before giving up; a quick connection probe
    switches to offline mode at once instead, which still serves a previously downloaded copy.
    """
    offline = _env_offline() or not _hub_reachable(timeout)
    try:
        with _offline_mode(offline):
            loaded = datasets.load_dataset(dataset, config_name)
    except (ConnectionError, FileNotFoundError, datasets.exceptions.DatasetNotFoundError) as error:
        reason = "the Hugging Face hub is unreachable and it is not in the local cache" if offline else str(error)
        raise ConfigError(
            f"could not load dataset '{dataset}': {reason}. Without a network, point sentikit at local files "
            "instead (data.dataset: null, data.data_files: {train: ..., validation: ..., test: ...}), "
            "or download it once online; set HF_DATASETS_OFFLINE=1 to skip the hub check."
        ) from None
    if not isinstance(loaded, datasets.DatasetDict):
        raise ConfigError(f"dataset '{dataset}' did not load as named splits")
    return loaded


def _env_offline() -> bool:
    return any(os.environ.get(name, "").lower() in {"1", "true", "yes", "on"} for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def _hub_reachable(timeout: float) -> bool:
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((endpoint.hostname, port), timeout=timeout).close()
        return True
    except OSError:
        return False


@contextmanager
def _offline_mode(offline: bool):
    """Switch `datasets` and `huggingface_hub` to offline mode for one call (both read a module flag)."""
    import huggingface_hub.constants as hub_constants

    saved = datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE
    if offline:
        datasets.config.HF_HUB_OFFLINE = hub_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE = saved
