"""Predict a file of reviews of any size with a bundle, in bounded memory.

Reviews are read in record batches (Parquet row groups, CSV blocks, JSON Lines a line at a time), predicted
in padded batches and written as JSON Lines, one object per input row:

    {"row": 0, "label": "positive", "probabilities": {"negative": 0.03, "positive": 0.97}, "top_words": ["amazing", ...]}

`top_words` (with `top_words > 0`) are the words whose writes the gates retained most in the final memory
(gated cells read through their final state only). The output is written under `OUTPUT.partial` and
renamed into place at the end: a reader never sees a half-written file, and an existing output is only
replaced with `force`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import torch

from sentikit.bundle import Bundle
from sentikit.errors import ConfigError

READ_TYPES = (".parquet", ".csv", ".tsv", ".jsonl", ".json")


def iter_column_batches(path: str | Path, columns: list[str], batch_size: int) -> Iterator[dict[str, list]]:
    """Batches of at most `batch_size` rows of `columns` from a parquet, csv/tsv or jsonl file, streamed."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in READ_TYPES:
        raise ConfigError(f"{path}: unsupported input type {suffix!r}; use one of {', '.join(READ_TYPES)}")
    if suffix in (".jsonl", ".json"):
        yield from _jsonl_batches(path, columns, batch_size)
        return
    try:
        if suffix == ".parquet":
            reader = pq.ParquetFile(path)
            names = reader.schema_arrow.names
            batches = reader.iter_batches(batch_size=batch_size, columns=[c for c in columns if c in names])
        else:
            options = pa_csv.ParseOptions(delimiter="\t" if suffix == ".tsv" else ",", newlines_in_values=True)
            reader = pa_csv.open_csv(path, parse_options=options)
            names = reader.schema.names
            batches = reader
        missing = [c for c in columns if c not in names]
        if missing:
            raise ConfigError(f"{path} has no column {missing[0]!r}; its columns are {names}")
        pending: dict[str, list] = {c: [] for c in columns}
        for batch in batches:
            for column in columns:
                pending[column].extend(batch.column(batch.schema.get_field_index(column)).to_pylist())
            while len(pending[columns[0]]) >= batch_size:
                yield {c: values[:batch_size] for c, values in pending.items()}
                pending = {c: values[batch_size:] for c, values in pending.items()}
        if pending[columns[0]]:
            yield pending
    except (pa.ArrowInvalid, OSError) as error:
        raise ConfigError(f"{path} could not be read as {suffix[1:]}: {str(error).splitlines()[0]}") from None


def _jsonl_batches(path: Path, columns: list[str], batch_size: int) -> Iterator[dict[str, list]]:
    pending: dict[str, list] = {c: [] for c in columns}
    with path.open(encoding="utf-8", errors="strict") as lines:
        try:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    raise ConfigError(f"{path}, line {number}: not valid JSON ({error.msg})") from None
                if not isinstance(record, dict) or any(c not in record for c in columns):
                    raise ConfigError(f"{path}, line {number}: expected an object with the keys {columns}")
                for column in columns:
                    pending[column].append(record[column])
                if len(pending[columns[0]]) == batch_size:
                    yield pending
                    pending = {c: [] for c in columns}
        except UnicodeDecodeError as error:
            raise ConfigError(f"{path} is not UTF-8 text ({error.reason} at byte {error.start})") from None
    if pending[columns[0]]:
        yield pending


def count_rows(path: str | Path) -> int | None:
    """The number of rows when the file says so cheaply (Parquet metadata); `None` otherwise."""
    if Path(path).suffix.lower() == ".parquet":
        return pq.ParquetFile(path).metadata.num_rows
    return None


def top_retained_words(bundle: Bundle, token_ids: torch.Tensor, lengths: torch.Tensor, encodings: list, texts: list[str], k: int) -> list[list[str]]:
    """For each review, its `k` words with the largest retention (token retention summed per word)."""
    retention = bundle.model.explain(token_ids, lengths)["retention"]  # (batch, time)
    result = []
    for row, (encoding, text) in enumerate(zip(encodings, texts)):
        scores: dict[int, float] = {}
        spans: dict[int, tuple[int, int]] = {}
        for position in range(int(lengths[row])):
            word = encoding.word_ids[position] if position < len(encoding.word_ids) else None
            if word is None:
                continue
            start, end = encoding.offsets[position]
            scores[word] = scores.get(word, 0.0) + float(retention[row, position])
            first, last = spans.get(word, (start, end))
            spans[word] = (min(first, start), max(last, end))
        best = sorted(scores, key=lambda w: -scores[w])[:k]
        result.append([text[spans[w][0] : spans[w][1]] for w in best])
    return result


def predict_file(
    bundle: Bundle,
    input_path: str | Path,
    output_path: str | Path,
    text_column: str = "text",
    batch_size: int = 256,
    top_words: int = 0,
    force: bool = False,
    progress: bool = True,
) -> int:
    """Write one JSON line per review of `input_path` to `output_path`; returns the number of rows."""
    output_path = Path(output_path)
    if output_path.exists() and not force:
        raise ConfigError(f"{output_path} already exists; pass --force to overwrite it")
    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {batch_size}")
    if top_words and bundle.meta.get("model_format") == "exported":
        raise ConfigError("top words need the gates' retention, which an exported bundle (forward only) does not have; use a TorchScript bundle")
    if top_words and not bool(bundle.model.exact):
        raise ConfigError(
            f"top words need the gates' retention, which a {bundle.meta['cell']} with {bundle.meta['pooling']} pooling does not have"
        )
    output_path.parent.mkdir(parents=True, exist_ok=True)
    partial = output_path.with_name(output_path.name + ".partial")
    labels = bundle.label_names
    from tqdm.auto import tqdm  # a dependency of `datasets`

    rows = 0
    bar = tqdm(total=count_rows(input_path), unit=" reviews", disable=not progress)
    try:
        with partial.open("w", encoding="utf-8") as out, torch.no_grad():
            for batch in iter_column_batches(input_path, [text_column], batch_size):
                texts = batch[text_column]
                for offset, text in enumerate(texts):
                    if not isinstance(text, str):
                        raise ConfigError(
                            f"{input_path}: row {rows + offset} of column {text_column!r} is {type(text).__name__}, not text"
                        )
                token_ids, lengths, encodings = bundle.encode(texts, offsets=top_words > 0)
                probabilities = bundle.model(token_ids, lengths).softmax(-1)
                words = top_retained_words(bundle, token_ids, lengths, encodings, texts, top_words) if top_words else None
                for offset, p in enumerate(probabilities.tolist()):
                    record = {
                        "row": rows + offset,
                        "label": labels[max(range(len(p)), key=p.__getitem__)],
                        "probabilities": dict(zip(labels, p)),
                    }
                    if words is not None:
                        record["top_words"] = words[offset]
                    out.write(json.dumps(record, ensure_ascii=False) + "\n")
                rows += len(texts)
                bar.update(len(texts))
            out.flush()
            os.fsync(out.fileno())
        partial.replace(output_path)
    finally:
        bar.close()
    return rows
