"""Load the raw splits of a sentiment dataset: a Hugging Face hub id or local parquet/csv/json files.

Everything a user can get wrong here (a missing file, an unknown extension, an unreachable hub)
becomes a one-line `ConfigError` or `FileNotFoundError` naming the file or dataset.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import datasets
import numpy as np
import pyarrow as pa

from sentikit.errors import ConfigError, exception_chain

SPLITS = ("train", "validation", "test")

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


@dataclass
class Source:
    """One dataset of a run that trains on several (`data.sources`): where it lives, how its columns are
    named and how its labels map onto the run's classes (`data.label_names`).

    Args:
        name: what the logs call it (`val_acc/<name>`): letters, digits, `_` and `-`.
        data_files: local files per split, as `data.data_files`. Give either this or `dataset`.
        dataset: a Hugging Face hub id, as `data.dataset`.
        dataset_config: the hub dataset's configuration name, if it has several.
        text_column: the column holding the review text.
        label_column: the column holding the label.
        labels: the source's label values mapped onto class names, e.g. `{neg: negative, pos: positive}`
            or `{0: negative, 1: positive}`. Without it, integer labels (and a `ClassLabel`'s ids) index
            `label_names` and string labels must be class names already.
        weight: how many times each training example of this source is drawn per epoch, on average:
            0.5 draws a different random half each epoch, 2 every example twice. It sets the source's
            share of the training batches without resampling any file; validation and test read every
            example once whatever the weight.
    """

    name: str
    data_files: dict[str, str | list[str]] | None = None
    dataset: str | None = None
    dataset_config: str | None = None
    text_column: str = "text"
    label_column: str = "label"
    labels: dict[str | int, str] | None = None
    weight: float = 1.0

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_-]+", self.name or ""):
            raise ConfigError(f"source name {self.name!r}: use letters, digits, '_' and '-' only")
        if (self.data_files is None) == (self.dataset is None):
            raise ConfigError(f"source '{self.name}': give either data_files (local files per split) or dataset (a hub id), not both")
        if not self.weight > 0:
            raise ConfigError(f"source '{self.name}': weight must be above 0, got {self.weight}")

    def load(self) -> datasets.DatasetDict:
        """Its raw splits, as `load_local_splits` or `load_hub_splits` read them."""
        if self.dataset is not None:
            return load_hub_splits(self.dataset, self.dataset_config)
        return load_local_splits(self.data_files)

    def describe(self, split: str) -> str:
        if self.dataset is not None:
            return f"source '{self.name}', split '{split}' of dataset '{self.dataset}'"
        files = self.data_files.get(split, [])
        return f"source '{self.name}', split '{split}' ({files if isinstance(files, str) else ', '.join(files)})"

    def class_ids(self, split: datasets.Dataset, name: str, classes: list[str]) -> np.ndarray:
        """The class id of every row of `split`, through `labels` when given; a one-line `ConfigError`
        naming the source, split, column, value and row for a label that maps onto no class."""
        column = self.label_column
        feature = split.features[column]
        values = split.data.column(column).to_pylist()
        index = {c: i for i, c in enumerate(classes)}
        if self.labels is not None:
            mapping = {str(k): v for k, v in self.labels.items()}
            for value in mapping.values():
                if value not in index:
                    raise ConfigError(f"source '{self.name}': labels maps onto {value!r}, which is not one of the classes {classes}")
            if isinstance(feature, datasets.ClassLabel):
                # A ClassLabel stores ids; the mapping may name either the id or the name.
                lookup = {i: mapping.get(str(i), mapping.get(n)) for i, n in enumerate(feature.names)}
                lookup = {i: index[v] for i, v in lookup.items() if v is not None}
            else:
                lookup = {v: index[mapping[key]] for v in set(values) if (key := mapping_key(v, mapping)) is not None}
        elif isinstance(feature, datasets.ClassLabel) or all(isinstance(v, int) for v in values):
            lookup = {i: i for i in range(len(classes))}
        else:
            lookup = dict(index)
        ids = np.array([lookup.get(v, -1) for v in values], dtype=np.int64)
        bad = ids < 0
        if bad.any():
            row = int(np.argmax(bad))
            raise ConfigError(
                f"{self.describe(name)}: label {values[row]!r} in column '{column}' (row {row}) maps onto none of the "
                f"classes {classes}; {int(bad.sum())} rows affected (map it with `labels:` in the source)"
            )
        return ids


def check_columns(split: datasets.Dataset, text_column: str, label_column: str, where: str) -> None:
    """Fail early, naming the split and column, on data the pipeline cannot use."""
    for column in (text_column, label_column):
        if column not in split.column_names:
            raise ConfigError(f"{where} has no column '{column}'; its columns are {split.column_names}")
    if len(split) == 0:
        raise ConfigError(f"{where} is empty")
    text_type = split.data.schema.field(text_column).type
    if not (pa.types.is_string(text_type) or pa.types.is_large_string(text_type)):
        raise ConfigError(f"{where}: column '{text_column}' must hold text, but holds {text_type}")
    for column in (text_column, label_column):
        nulls = split.data.column(column).null_count
        if nulls:
            row = split.data.column(column).is_null().to_numpy(zero_copy_only=False).argmax()
            raise ConfigError(f"{where}: column '{column}' has {nulls} empty (null) values, the first in row {row}")


# YAML 1.1 (what PyYAML and so LightningCLI read) turns an unquoted yes/no/on/off/y/n key into a boolean.
YAML_BOOLEANS = {"yes": True, "no": False, "on": True, "off": False, "y": True, "n": False, "true": True, "false": False}


def mapping_key(value: object, mapping: dict[str, str]) -> str | None:
    """The key of `mapping` (keys as strings) that names the label `value`: its own spelling, or the
    boolean YAML made of it (`labels: {yes: positive}` arrives as `{True: positive}`)."""
    if str(value) in mapping:
        return str(value)
    if isinstance(value, str) and value.lower() in YAML_BOOLEANS and str(YAML_BOOLEANS[value.lower()]) in mapping:
        return str(YAML_BOOLEANS[value.lower()])
    return None


def carve_validation(train: datasets.Dataset, fraction: float, seed: int, where: str) -> datasets.DatasetDict:
    """Hold `fraction` of `train` out for validation, stratified by label; a one-line error naming `where`
    when it cannot be (too few examples of a class to give validation one)."""
    try:
        return train.train_test_split(test_size=fraction, seed=seed, stratify_by_column="labels")
    except ValueError as error:
        raise ConfigError(
            f"{where}: cannot hold {fraction:g} of train out for validation stratified by label "
            f"({str(error).splitlines()[0]}); give a validation split or more examples"
        ) from None


def combine_sources(
    sources: list[Source],
    classes: list[str],
    validation_fraction: float,
    seed: int,
) -> datasets.DatasetDict:
    """Load every source and concatenate them split by split into columns `text`, `labels` (class ids)
    and `source` (the source's index in `sources`).

    A source without a validation split gives up `validation_fraction` of its own train (seeded,
    stratified), so that every source is validated on. Each raw split's columns are checked
    (`check_columns`) before anything reads them."""
    names = [s.name for s in sources]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"source names must differ; repeated: {', '.join(repeated)}")
    features = datasets.Features(
        {"text": datasets.Value("string"), "labels": datasets.ClassLabel(names=classes), "source": datasets.ClassLabel(names=names)}
    )
    parts: dict[str, list[datasets.Dataset]] = {split: [] for split in SPLITS}
    for number, source in enumerate(sources):
        raw = {name: split for name, split in source.load().items() if name in SPLITS}
        if "train" not in raw:
            raise ConfigError(f"source '{source.name}' has no 'train' split (splits are named {', '.join(SPLITS)})")
        for name, split in raw.items():
            check_columns(split, source.text_column, source.label_column, source.describe(name))
            ids = source.class_ids(split, name, classes)
            unified = (
                split.select_columns([source.text_column])
                .rename_columns({source.text_column: "text"} if source.text_column != "text" else {})
                .add_column("labels", ids.tolist())
                .add_column("source", [number] * len(split))
                .cast(features)
            )
            raw[name] = unified
        if "validation" not in raw and validation_fraction > 0:
            carved = carve_validation(raw["train"], validation_fraction, seed, f"source '{source.name}'")
            raw["train"], raw["validation"] = carved["train"], carved["test"]
        for name, split in raw.items():
            parts[name].append(split)
    return datasets.DatasetDict({name: datasets.concatenate_datasets(p) for name, p in parts.items() if p})
