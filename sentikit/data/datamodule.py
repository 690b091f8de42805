"""Text -> token ids -> length-bucketed batches: the `SentimentDataModule`.

Its constructor arguments are the `data:` section of a config. The pipeline, run once per process:

1. load the raw splits (`sentikit.data.sources`): local files or a hub id;
2. check the text and label columns and turn labels into class ids (`labels`), keeping the names;
3. carve a validation split from train when there is none (seeded, stratified);
4. train the tokenizer on the training split, or reuse one (`tokenizer.json` or a checkpoint);
5. tokenize every split with `Dataset.map(batched=True)` (cached by `datasets`) through
   `tokenizer.encode_texts`, the rule every stage reads text by: train truncated to `max_length`, the
   splits that are scored to `eval_max_length`, a review without tokens read as one `[UNK]`;
6. serve batches from `BucketBatchSampler`, which keeps padding small and shards across DDP ranks.

The work happens on first use of `tokenizer`, `vocabulary_size` or `classes`, which the command line
reads right after construction to size the model's embedding and head.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_only
import torch
from tokenizers import Tokenizer
from torch.utils.data import DataLoader, Dataset

from sentikit.errors import ConfigError
from sentikit.data.sampler import BucketBatchSampler
from sentikit.data.sources import SPLITS, Source, carve_validation, check_columns, combine_sources, load_hub_splits, load_local_splits
from sentikit.data.tokenizer import (
    TokenizerKind,
    encode_texts,
    load_tokenizer,
    right_pad,
    tokenizer_from_string,
    train_tokenizer,
    vocabulary_fingerprint,
)

log = logging.getLogger(__name__)
info = rank_zero_only(log.info)  # every DDP rank runs the pipeline; one reports

class TokenizedReviews(Dataset):
    """One split held as a flat array of token ids plus offsets: compact, and sliced without copies."""

    def __init__(self, token_ids: np.ndarray, offsets: np.ndarray, labels: np.ndarray, sources: np.ndarray | None = None) -> None:
        self.token_ids, self.offsets, self.labels, self.sources = token_ids, offsets, labels, sources
        self.lengths = np.diff(offsets)

    @classmethod
    def from_table(cls, table: pa.Table) -> TokenizedReviews:
        ids = table.column("input_ids").combine_chunks()
        return cls(
            ids.values.to_numpy(zero_copy_only=False).astype(np.int64),
            ids.offsets.to_numpy().astype(np.int64),
            table.column("labels").to_numpy().astype(np.int64),
            table.column("source").to_numpy().astype(np.int64) if "source" in table.column_names else None,
        )

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        start, end = self.offsets[index], self.offsets[index + 1]
        example = {"input_ids": self.token_ids[start:end], "label": self.labels[index], "index": index}
        if self.sources is not None:
            example["source"] = self.sources[index]
        return example


def collate(examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Right-pad a batch with `PAD_ID`; `lengths` lets the encoder pack the sequences."""
    token_ids, lengths = right_pad([e["input_ids"] for e in examples])
    batch = {
        "token_ids": token_ids,
        "lengths": lengths,
        "labels": torch.tensor([e["label"] for e in examples]),
        "indices": torch.tensor([e["index"] for e in examples]),
    }
    if "source" in examples[0]:
        batch["sources"] = torch.tensor([e["source"] for e in examples])
    return batch


class SentimentDataModule(pl.LightningDataModule):
    """Sentiment data from the Hugging Face hub or local files, tokenized and bucketed by length.

    Args:
        data_files: local files per split, e.g. `{train: data/sst2/train.parquet, validation: ...}`
            (parquet, csv, tsv, json or jsonl). Give one of this, `dataset` or `sources`.
        dataset: a Hugging Face hub id such as `stanfordnlp/imdb` (needs a network or a cached copy).
        dataset_config: the hub dataset's configuration name, if it has several.
        sources: several datasets trained on together (`Source`: files or a hub id each, with its own
            columns, label mapping and sampling weight), concatenated split by split. Validation then
            reports `val_acc` over all of them and `val_acc/<name>` for each. Needs `label_names`.
        text_column: the column holding the review text (one source; each `Source` names its own).
        label_column: the column holding the label: class ids, class names, or a `ClassLabel`.
        label_names: the classes in id order, e.g. `[negative, positive]`. Integer labels index into
            it; string labels are matched against it. Default: read from the data.
        validation_fraction: share of train held out for validation when there is no validation split
            (with `sources`: of each source's train, for each source without one).
            0 holds nothing out: the run trains on the whole train split, validates nothing and keeps
            its last weights (`last.ckpt`), the usual last step once the number of epochs is known.
        tokenizer: `word` (one id per word), `wordpiece` or `bpe` (sub-words; no unknown words).
        vocab_size: the largest vocabulary the tokenizer may learn, special tokens included.
        min_frequency: how often a token must occur in train to enter the vocabulary.
        lowercase: lowercase text before tokenizing.
        strip_html: replace HTML line breaks (`<br />`, as in IMDB) with spaces.
        tokenizer_file: reuse a trained tokenizer instead of training one: a `tokenizer.json`, or a
            sentikit checkpoint (`.ckpt`), whose tokenizer and label names are then both reused.
        max_length: training reviews longer than this many tokens are truncated (the count is logged).
        eval_max_length: the same for validation, test and predict, and for new text read with the
            checkpoint (bundles, explain, the app): it is saved with the model. Default: `max_length`.
            Training truncates to bound the memory and time of a step; scoring needs no gradients, so
            reading whole reviews there costs little, and lets the model see the whole review it judges.
        batch_size: training batch size (per process).
        eval_batch_size: batch size for validation, test and predict (default: 2 x batch_size).
        bucket_size: how many batches' worth of examples are sorted by length together.
        num_workers: DataLoader worker processes (batches are cheap to build: 0 is usually best).
        predict_split: the split that `predict` runs on.
        seed: seed for the validation carve-out and the batch shuffling.
    """

    def __init__(
        self,
        data_files: dict[str, str | list[str]] | None = None,
        dataset: str | None = None,
        dataset_config: str | None = None,
        sources: list[Source] | None = None,
        text_column: str = "text",
        label_column: str = "label",
        label_names: list[str] | None = None,
        validation_fraction: float = 0.1,
        tokenizer: TokenizerKind = "word",
        vocab_size: int = 20_000,
        min_frequency: int = 2,
        lowercase: bool = True,
        strip_html: bool = True,
        tokenizer_file: str | None = None,
        max_length: int = 256,
        eval_max_length: int | None = None,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        bucket_size: int = 100,
        num_workers: int = 0,
        predict_split: str = "test",
        seed: int = 42,
    ) -> None:
        super().__init__()
        if sum(x is not None for x in (data_files, dataset, sources)) != 1:
            raise ConfigError(
                "give one of data.data_files (local files per split), data.dataset (a hub id) or data.sources (several datasets)"
            )
        if sources is not None and not sources:
            raise ConfigError("data.sources is empty: list at least one source")
        if sources is not None and label_names is None and not str(tokenizer_file or "").endswith(".ckpt"):
            raise ConfigError("data.sources needs data.label_names: the classes every source's labels map onto")
        for name, value in (("max_length", max_length), ("eval_max_length", eval_max_length)):
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be at least 1, got {value}")
        if batch_size < 1 or (eval_batch_size is not None and eval_batch_size < 1):
            raise ConfigError(f"batch sizes must be at least 1, got {batch_size} and {eval_batch_size}")
        if not 0 <= validation_fraction < 1:
            raise ConfigError(f"validation_fraction must lie in [0, 1), got {validation_fraction}")
        if num_workers < 0:
            raise ConfigError(f"num_workers must be 0 or more, got {num_workers}")
        self.data_files, self.dataset, self.dataset_config = data_files, dataset, dataset_config
        self.sources = [s if isinstance(s, Source) else Source(**s) for s in sources] if sources is not None else None
        self.text_column, self.label_column = text_column, label_column
        self.label_names = label_names
        self.validation_fraction = validation_fraction
        self.tokenizer_options = dict(
            kind=tokenizer, vocab_size=vocab_size, min_frequency=min_frequency, lowercase=lowercase, strip_html=strip_html
        )
        self.tokenizer_file = tokenizer_file
        self.max_length, self.eval_max_length = max_length, eval_max_length or max_length
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size or 2 * batch_size
        self.bucket_size, self.num_workers = bucket_size, num_workers
        self.predict_split, self.seed = predict_split, seed
        self._tokenizer: Tokenizer | None = None
        self._classes: list[str] | None = None
        self._splits: dict[str, TokenizedReviews] = {}

    # --- what the model needs to know: read right after construction -------------------------------

    @property
    def tokenizer(self) -> Tokenizer:
        self.prepare()
        return self._tokenizer

    @property
    def classes(self) -> list[str]:
        """The class names in id order."""
        self.prepare()
        return self._classes

    @property
    def splits(self) -> dict[str, TokenizedReviews]:
        """The tokenized `train`, `validation` (unless `validation_fraction` is 0 and the source has none)
        and (when given) `test` splits."""
        self.prepare()
        return self._splits

    @property
    def source_names(self) -> list[str] | None:
        """The sources' names in id order (the batches' `sources` index into it), or None for one dataset."""
        return [s.name for s in self.sources] if self.sources is not None else None

    @property
    def vocabulary_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    # --- the pipeline ---------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Load, check, tokenize. Idempotent: runs once per process, on first need."""
        if self._splits:
            return
        tokenizer, reused_classes = self._reused_tokenizer()
        if self.sources is not None:
            classes = list(reused_classes or self.label_names)
            raw = combine_sources(self.sources, classes, self.validation_fraction, self.seed)
            text_column = "text"
            counts = np.bincount(raw["train"].with_format("arrow")["source"].to_numpy(), minlength=len(self.sources))
            info("sources: %s", ", ".join(f"{s.name} ({n:,} train, weight {s.weight:g})" for s, n in zip(self.sources, counts)))
        else:
            raw = self._load_raw()
            classes = resolve_classes(raw["train"], self.label_column, reused_classes or self.label_names, self.source)
            raw = datasets.DatasetDict({name: self._encode_labels(split, name, classes) for name, split in raw.items()})
            text_column = self.text_column
        if "validation" not in raw:
            if self.validation_fraction == 0:
                info("validation: none (validation_fraction 0): training on all %d examples of train", len(raw["train"]))
            else:
                carved = carve_validation(raw["train"], self.validation_fraction, self.seed, self.source)
                raw["train"], raw["validation"] = carved["train"], carved["test"]
                info("validation: carved %d examples out of train (seed %d)", len(carved["test"]), self.seed)
        if tokenizer is not None:
            info("tokenizer: read %d tokens from %s", tokenizer.get_vocab_size(), self.tokenizer_file)
        else:
            texts = (batch[text_column] for batch in raw["train"].select_columns(text_column).iter(batch_size=1000))
            tokenizer = train_tokenizer(texts, length=len(raw["train"]), **self.tokenizer_options)
            info("tokenizer: trained a %s vocabulary of %d tokens on train", self.tokenizer_options["kind"], tokenizer.get_vocab_size())
        self._tokenizer, self._classes = tokenizer, classes
        self._splits = {name: self._tokenize(split, name, text_column) for name, split in raw.items()}

    @property
    def source(self) -> str:
        if self.sources is not None:
            return "data.sources"
        return f"dataset '{self.dataset}'" if self.dataset else "data_files"

    def _load_raw(self) -> datasets.DatasetDict:
        if self.dataset is not None:
            raw = load_hub_splits(self.dataset, self.dataset_config)
        else:
            raw = load_local_splits(self.data_files)
        raw = datasets.DatasetDict({name: split for name, split in raw.items() if name in SPLITS})
        if "train" not in raw:
            raise ConfigError(f"{self.source} has no 'train' split (splits are named train, validation, test)")
        for name, split in raw.items():
            check_columns(split, self.text_column, self.label_column, self._describe(name))
        return raw

    def _describe(self, split: str) -> str:
        if self.dataset is not None:
            return f"split '{split}' of dataset '{self.dataset}'"
        files = self.data_files[split]
        return f"split '{split}' ({files if isinstance(files, str) else ', '.join(files)})"

    def _reused_tokenizer(self) -> tuple[Tokenizer | None, list[str] | None]:
        if self.tokenizer_file is None:
            return None, None
        if Path(self.tokenizer_file).suffix == ".ckpt":
            from sentikit.checkpoint import read_checkpoint_extras

            extras = read_checkpoint_extras(self.tokenizer_file)
            classes = list(extras["classes"])
            if self.label_names is not None and list(self.label_names) != classes:
                raise ConfigError(
                    f"label_names {self.label_names} differ from the classes {classes} of checkpoint {self.tokenizer_file}"
                )
            return tokenizer_from_string(extras["tokenizer"], f"the tokenizer in {self.tokenizer_file}"), classes
        return load_tokenizer(self.tokenizer_file), None

    def _encode_labels(self, split: datasets.Dataset, name: str, classes: list[str]) -> datasets.Dataset:
        """Add `labels`: class ids, checked against `classes`."""
        column = self.label_column
        values = split.data.column(column)
        if pa.types.is_integer(values.type):
            ids = values.to_numpy(zero_copy_only=False)
            bad = (ids < 0) | (ids >= len(classes))
            lookup = None
        else:
            lookup = {c: i for i, c in enumerate(classes)}
            bad = np.array([v not in lookup for v in values.to_pylist()], dtype=bool)
        if bad.any():
            row = int(np.argmax(bad))
            raise ConfigError(
                f"{self._describe(name)}: label {split[row][column]!r} in column '{column}' (row {row}) is not one "
                f"of the {len(classes)} classes {classes}; {int(bad.sum())} rows affected"
            )
        features = split.features.copy()
        features["labels"] = datasets.ClassLabel(names=classes)
        return split.map(
            _label_ids,
            batched=True,
            batch_size=10_000,
            features=features,
            fn_kwargs={"column": column, "lookup": lookup},
            desc=f"labels ({name})",
        )

    def _tokenize(self, split: datasets.Dataset, name: str, text_column: str) -> TokenizedReviews:
        limit = self.max_length if name == "train" else self.eval_max_length
        tokenized = split.map(
            _encode_texts,
            batched=True,
            batch_size=1000,
            fn_kwargs={"tokenizer": self._tokenizer, "column": text_column, "max_length": limit},
            remove_columns=[c for c in split.column_names if c not in ("labels", "source")],
            new_fingerprint=self._fingerprint(split, name, limit, text_column),
            desc=f"tokenizing ({name})",
        )
        num_tokens = tokenized.with_format("arrow")["num_tokens"]
        truncated = int(pc.sum(pc.greater(num_tokens, limit)).as_py() or 0)
        if truncated:
            info("%s: %d of %d reviews (%.1f%%) truncated to %d tokens", name, truncated, len(tokenized), 100 * truncated / len(tokenized), limit)
        return TokenizedReviews.from_table(tokenized.with_format("arrow")[:])

    def _fingerprint(self, split: datasets.Dataset, name: str, limit: int, text_column: str) -> str:
        """Cache key of the tokenized split: the raw split, the vocabulary and the settings."""
        tokenizer = hashlib.sha256(self._tokenizer.to_str().encode()).hexdigest()
        key = [split._fingerprint, tokenizer, text_column, limit, name]
        return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:32]

    # --- Lightning hooks --------------------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        self.prepare()
        trainer = self.trainer
        if trainer is not None and trainer.world_size > 1:
            # Every rank trained its own tokenizer; a mismatch would silently mix vocabularies.
            mine = vocabulary_fingerprint(self._tokenizer)
            if trainer.strategy.broadcast(mine, src=0) != mine:
                raise RuntimeError(f"rank {trainer.global_rank} built a different vocabulary than rank 0")

    def state_dict(self) -> dict[str, Any]:
        """Saved in every checkpoint: what a checkpoint needs to be used on new text."""
        source = {"dataset": self.dataset, "dataset_config": self.dataset_config, "data_files": self.data_files}
        if self.sources is not None:
            source["sources"] = [dataclasses.asdict(s) for s in self.sources]
        # `max_length` here is the length new text is read at, the scored splits' (bundles, explain, app).
        return {
            "tokenizer": self.tokenizer.to_str(),
            "classes": self.classes,
            "max_length": self.eval_max_length,
            "train_max_length": self.max_length,
            "source": source,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = tokenizer_from_string(state["tokenizer"], "the checkpoint's tokenizer")
        if vocabulary_fingerprint(saved) != vocabulary_fingerprint(self.tokenizer) or list(state["classes"]) != self.classes:
            raise ConfigError(
                "the checkpoint was trained with another tokenizer or label set than this data module built; "
                "pass the checkpoint as data.tokenizer_file to reuse its own"
            )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, shuffle=True)

    @property
    def has_validation(self) -> bool:
        return "validation" in self.splits

    def val_dataloader(self) -> DataLoader | list:
        if not self.has_validation:
            if self.trainer is not None and self.trainer.state.fn == "validate":
                raise ConfigError(f"{self.source} has no 'validation' split, and validation_fraction 0 holds none out of train")
            return []  # training skips validation when there is nothing to validate on
        return self._loader("validation", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        if "test" not in self.splits:
            raise ConfigError(f"{self.source} has no 'test' split")
        return self._loader("test", self.eval_batch_size, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        if self.predict_split not in self.splits:
            raise ConfigError(f"{self.source} has no '{self.predict_split}' split to predict on")
        return self._loader(self.predict_split, self.eval_batch_size, shuffle=False)

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        self.prepare()
        reviews = self.splits[split]
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer is not None else (0, 1)
        weighted = shuffle and self.sources is not None and any(s.weight != 1 for s in self.sources)
        sampler = BucketBatchSampler(
            reviews.lengths,
            batch_size,
            shuffle=shuffle,
            seed=self.seed,
            num_replicas=world,
            rank=rank,
            bucket_size=self.bucket_size,
            groups=reviews.sources if weighted else None,
            group_weights=[s.weight for s in self.sources] if weighted else None,
        )
        return DataLoader(
            reviews,
            batch_sampler=sampler,
            collate_fn=collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            # Each new iterator draws a seed for its workers; from its own generator, not the global one
            # that dropout uses, so that where Lightning creates iterators cannot shift the dropout masks
            # (a resumed run creates its first one at another moment than an uninterrupted run).
            generator=torch.Generator().manual_seed(self.seed),
        )


def _label_ids(batch: dict[str, list], column: str, lookup: dict[str, int] | None) -> dict[str, list[int]]:
    if lookup is None:
        return {"labels": [int(v) for v in batch[column]]}
    return {"labels": [lookup[v] for v in batch[column]]}


def _encode_texts(batch: dict[str, list], tokenizer: Tokenizer, column: str, max_length: int) -> dict[str, list]:
    ids, encodings = encode_texts(tokenizer, batch[column], max_length)
    return {"input_ids": ids, "num_tokens": [len(e.ids) for e in encodings]}


def resolve_classes(train: datasets.Dataset, column: str, declared: list[str] | None, source: str) -> list[str]:
    """The class names in id order, from the declaration, a `ClassLabel`, or the values in train."""
    feature = train.features[column]
    values = train.data.column(column)
    if isinstance(feature, datasets.ClassLabel):
        classes = list(feature.names)
        if declared is not None and len(declared) != len(classes):
            raise ConfigError(f"label_names has {len(declared)} names but column '{column}' declares {classes}")
        classes = list(declared) if declared is not None else classes
    elif pa.types.is_integer(values.type):
        largest = int(pc.max(values).as_py())
        classes = list(declared) if declared is not None else [str(i) for i in range(largest + 1)]
    elif pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        seen = sorted(pc.unique(values).to_pylist())
        classes = list(declared) if declared is not None else seen
    else:
        raise ConfigError(f"{source}: label column '{column}' must hold integers or strings, but holds {values.type}")
    present = pc.unique(values).to_pylist()
    if len(present) < 2:
        raise ConfigError(f"{source}: the train split holds a single class ({present[0]!r}); nothing to learn")
    if len(classes) < 2:
        raise ConfigError(f"{source}: a classifier needs at least 2 classes, got {classes}")
    if len(set(classes)) != len(classes):
        raise ConfigError(f"label_names repeats a name: {classes}")
    return classes
