"""Predict a file of reviews of any size with a bundle, in bounded memory, and resume it after a kill.

Reviews are read in record batches (Parquet row groups, CSV blocks, JSON Lines a line at a time), predicted
in padded batches and written as JSON Lines, one object per input row:

    {"row": 0, "label": "positive", "probabilities": {"negative": 0.03, "positive": 0.97}, "top_words": ["amazing", ...]}

`top_words` (with `top_words > 0`) are the words whose writes the gates retained most in the final memory
(gated cells read through their final state only). The output is written under `OUTPUT.partial`, synced
to disk and renamed into place at the end (`atomic.atomic_open`): a reader never sees a half-written file,
and an existing output is only replaced with `force`.

Resuming. Each batch is flushed as soon as it is predicted, so a killed run (`kill -9`, an out-of-memory
kill, a lost job slot) leaves every finished batch in `OUTPUT.partial`, and at worst one half-written line
after them. `OUTPUT.partial.json` records what the partial output was made from (input, text column,
bundle, top words, batch size); `resume` checks it, keeps the whole batches of valid lines, truncates the
rest and predicts from the next row on, so the finished file is the one an uninterrupted run writes, byte
for byte. Whole batches, and the same batch size, because a row's probabilities can differ in their last
digits with the other rows of its padded batch.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import torch

from sentikit.atomic import atomic_open, partial_path, write_json
from sentikit.bundle.bundle import Bundle
from sentikit.data.tokenizer import group_words
from sentikit.errors import ConfigError

log = logging.getLogger(__name__)

READ_TYPES = (".parquet", ".csv", ".tsv", ".jsonl", ".json")
PARTIAL_FORMAT = "sentikit-predict-file-partial"
FINGERPRINT_BYTES = 1 << 20


def iter_column_batches(path: str | Path, columns: list[str], batch_size: int, skip: int = 0) -> Iterator[dict[str, list]]:
    """Batches of at most `batch_size` rows of `columns` from a parquet, csv/tsv or jsonl file, streamed,
    starting after its first `skip` rows. Skipped rows never become Python objects: Parquet row groups
    before the first kept row are not even read, CSV record batches and JSON lines are dropped unparsed."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in READ_TYPES:
        raise ConfigError(f"{path}: unsupported input type {suffix!r}; use one of {', '.join(READ_TYPES)}")
    if suffix in (".jsonl", ".json"):
        yield from _jsonl_batches(path, columns, batch_size, skip)
        return
    try:
        if suffix == ".parquet":
            reader = pq.ParquetFile(path)
            names = reader.schema_arrow.names
            groups = [reader.metadata.row_group(g).num_rows for g in range(reader.metadata.num_row_groups)]
            first = 0
            while first < len(groups) and groups[first] <= skip:
                skip -= groups[first]
                first += 1
            batches = reader.iter_batches(
                batch_size=batch_size, row_groups=range(first, len(groups)), columns=[c for c in columns if c in names]
            )
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
            if skip >= batch.num_rows:
                skip -= batch.num_rows
                continue
            batch, skip = batch.slice(skip), 0
            for column in columns:
                pending[column].extend(batch.column(batch.schema.get_field_index(column)).to_pylist())
            while len(pending[columns[0]]) >= batch_size:
                yield {c: values[:batch_size] for c, values in pending.items()}
                pending = {c: values[batch_size:] for c, values in pending.items()}
        if pending[columns[0]]:
            yield pending
    except (pa.ArrowInvalid, OSError) as error:
        raise ConfigError(f"{path} could not be read as {suffix[1:]}: {str(error).splitlines()[0]}") from None


def _jsonl_batches(path: Path, columns: list[str], batch_size: int, skip: int) -> Iterator[dict[str, list]]:
    pending: dict[str, list] = {c: [] for c in columns}
    with path.open(encoding="utf-8", errors="strict") as lines:
        try:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                if skip:
                    skip -= 1
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
    """For each review, its `k` words (as `data.tokenizer.group_words` groups the tokens) with the largest
    retention, the retention of a word's tokens summed; ties in text order."""
    retention = bundle.model.explain(token_ids, lengths)["retention"]  # (batch, time)
    result = []
    for row, (encoding, text) in enumerate(zip(encodings, texts)):
        token_word, spans = group_words(encoding, int(lengths[row]))
        scores = [0.0] * len(spans)
        for position, word in enumerate(token_word):
            scores[word] += float(retention[row, position])
        best = sorted(range(len(spans)), key=lambda w: -scores[w])[:k]
        result.append([text[spans[w][0] : spans[w][1]] for w in best])
    return result


def prediction_lines(bundle: Bundle, texts: list[str], first_row: int, top_words: int) -> str:
    """The JSON lines of one batch of reviews, numbered from `first_row`."""
    labels = bundle.label_names
    token_ids, lengths, encodings = bundle.encode(texts, offsets=top_words > 0)
    probabilities = bundle.model(token_ids, lengths).softmax(-1)
    words = top_retained_words(bundle, token_ids, lengths, encodings, texts, top_words) if top_words else None
    lines = []
    for offset, p in enumerate(probabilities.tolist()):
        record: dict[str, Any] = {
            "row": first_row + offset,
            "label": labels[max(range(len(p)), key=p.__getitem__)],
            "probabilities": dict(zip(labels, p)),
        }
        if words is not None:
            record["top_words"] = words[offset]
        lines.append(json.dumps(record, ensure_ascii=False) + "\n")
    return "".join(lines)


# --- resuming an interrupted run ---------------------------------------------------------------------------


def input_fingerprint(path: str | Path) -> dict[str, Any]:
    """What identifies an input file across runs: its size and the sha256 of its first and last MiB (the
    resolved path is recorded for messages only).

    Content rather than path and modification time, so that a resume still works after the input is moved,
    copied to scratch space or downloaded again (new path, new mtime, same rows), while an appended,
    truncated or rewritten file is refused: a size change, or different bytes at either end (for Parquet,
    the footer with every row group's statistics). An edit of the same size strictly inside the middle of a
    CSV or JSON Lines file larger than 2 MiB goes unnoticed; hashing the whole file would catch it, at the
    cost of reading every byte before the first row is predicted."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input file not found: {path}")
    size = path.stat().st_size
    digest = hashlib.sha256()
    with path.open("rb") as content:
        digest.update(content.read(FINGERPRINT_BYTES))
        if size > FINGERPRINT_BYTES:
            content.seek(max(FINGERPRINT_BYTES, size - FINGERPRINT_BYTES))
            digest.update(content.read())
    return {"path": str(path.resolve()), "size": size, "sha256_first_last_mib": digest.hexdigest()}


def run_settings(bundle: Bundle, input_path: str | Path, text_column: str, batch_size: int, top_words: int) -> dict[str, Any]:
    """Everything a run's output depends on, as `OUTPUT.partial.json` records it."""
    meta = bundle.meta
    return {
        "format": PARTIAL_FORMAT,
        "input": input_fingerprint(input_path),
        "text_column": text_column,
        "bundle": {"sha256": meta.get("sha256"), "label_names": bundle.label_names, "cell": meta.get("cell"), "exported": meta.get("exported")},
        "top_words": top_words,
        "batch_size": batch_size,
    }


def check_same_run(partial: Path, sidecar: Path, current: dict[str, Any]) -> None:
    """Refuse to resume `partial` with settings other than those it was started with, naming the first
    that differs."""
    if not sidecar.is_file():
        raise ConfigError(f"cannot resume {partial}: there is no {sidecar.name} saying what it was made from; pass --force to start over")
    try:
        recorded = json.loads(sidecar.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        recorded = None
    if not isinstance(recorded, dict) or recorded.get("format") != PARTIAL_FORMAT:
        raise ConfigError(f"cannot resume {partial}: {sidecar} is not a predict-file record; pass --force to start over")
    then, now = {"path": None, "size": 0, **(recorded.get("input") or {})}, current["input"]
    why = None
    if recorded.get("bundle") != current["bundle"]:
        why = f"it was made with another bundle ({_describe(recorded.get('bundle'))}), not this one ({_describe(current['bundle'])})"
    elif (then.get("size"), then.get("sha256_first_last_mib")) != (now["size"], now["sha256_first_last_mib"]):
        if then["path"] == now["path"]:
            why = f"{now['path']} has changed since it was started ({then['size']:,} bytes then, {now['size']:,} now)"
        else:
            why = f"it was made from {then['path']} ({then['size']:,} bytes), a different file from {now['path']} ({now['size']:,} bytes)"
    elif recorded.get("text_column") != current["text_column"]:
        why = f"it was made from the text column {recorded.get('text_column')!r}, not {current['text_column']!r}"
    elif recorded.get("top_words") != current["top_words"]:
        why = f"it was made with --top-words {recorded.get('top_words')}, not {current['top_words']}"
    elif recorded.get("batch_size") != current["batch_size"]:
        why = (
            f"it was made with --batch-size {recorded.get('batch_size')}, not {current['batch_size']} "
            "(a probability's last digits depend on the batch it is predicted in)"
        )
    if why:
        raise ConfigError(f"cannot resume {partial}: {why}; resume with the same settings, or pass --force to start over")


def _describe(bundle: Any) -> str:
    bundle = bundle if isinstance(bundle, dict) else {}
    model = [digest for name, digest in (bundle.get("sha256") or {}).items() if name != "tokenizer.json"]
    return f"{bundle.get('cell')}, exported {bundle.get('exported')}, model sha256 {(model or ['?'])[0][:12]}"


def resumable_rows(partial: Path, batch_size: int) -> tuple[int, int, int]:
    """`(complete, kept, end)`: the number of complete lines of `partial` (each ends with a newline, parses
    as a JSON object and has the next row number), how many of them fill whole batches of `batch_size`,
    and the byte offset where those end. A broken line is allowed only last, as a kill leaves it; one with
    lines after it is damage that no interruption makes, and is refused."""
    complete, kept, end, position = 0, 0, 0, 0
    with partial.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.endswith(b"\n") or _row_number(line) != complete:
                if lines.read(1):
                    raise ConfigError(
                        f"cannot resume {partial}: line {number} is not the prediction of row {complete}, and more lines follow it; "
                        "pass --force to start over"
                    )
                break
            complete += 1
            position += len(line)
            if complete % batch_size == 0:
                kept, end = complete, position
    return complete, kept, end


def _row_number(line: bytes) -> int | None:
    try:
        record = json.loads(line)
    except ValueError:  # invalid JSON, or bytes that are not UTF-8
        return None
    return record.get("row") if isinstance(record, dict) else None


def count_lines(path: Path) -> int:
    with path.open("rb") as content:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: content.read(FINGERPRINT_BYTES), b""))


def predict_file(
    bundle: Bundle,
    input_path: str | Path,
    output_path: str | Path,
    text_column: str = "text",
    batch_size: int = 256,
    top_words: int = 0,
    force: bool = False,
    progress: bool = True,
    resume: bool = False,
) -> int:
    """Write one JSON line per review of `input_path` to `output_path`; returns the number of rows.

    `resume` continues the `OUTPUT.partial` of an interrupted run with the same settings (see the module
    docstring); without one it starts from the first row, and with a finished `output_path` and no partial
    output there is nothing to do. Without `resume`, an existing partial output is refused unless `force`
    starts over."""
    output_path = Path(output_path)
    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {batch_size}")
    if top_words and bundle.forward_only:
        raise ConfigError(f"top words need the gates' retention, which {bundle.forward_only} does not have; use a TorchScript bundle")
    if top_words and not bool(bundle.model.exact):
        raise ConfigError(
            f"top words need the gates' retention, which a {bundle.meta['cell']} with {bundle.meta['pooling']} pooling does not have"
        )
    if resume and force:
        raise ConfigError("--resume continues an interrupted run and --force starts over; pass only one of them")
    partial = partial_path(output_path)
    sidecar = output_path.with_name(output_path.name + ".partial.json")
    resuming = resume and partial.exists()
    rows = 0
    if resuming:
        check_same_run(partial, sidecar, run_settings(bundle, input_path, text_column, batch_size, top_words))
        complete, rows, end = resumable_rows(partial, batch_size)
        with partial.open("r+b") as out:
            out.truncate(end)
        log.info(f"resuming {partial}: {complete} complete rows, {rows} of them in whole batches of {batch_size}; predicting from row {rows}")
    elif resume and output_path.exists():
        rows = count_lines(output_path)
        log.info(f"{output_path} is complete ({rows} rows) and there is no {partial.name} to resume: nothing to do (--force predicts again)")
        return rows
    else:
        if resume:
            log.info(f"there is no {partial} to resume: starting from the first row")
        elif partial.exists() and not force:
            raise ConfigError(f"{partial} holds an interrupted run; pass --resume to continue it or --force to start over")
        elif output_path.exists() and not force:
            raise ConfigError(f"{output_path} already exists; pass --force to overwrite it")
        settings = run_settings(bundle, input_path, text_column, batch_size, top_words)
        output_path.parent.mkdir(parents=True, exist_ok=True)
        write_json(sidecar, settings)
    from tqdm.auto import tqdm  # a dependency of `datasets`

    bar = tqdm(total=count_rows(input_path), initial=rows, unit=" reviews", disable=not progress)
    try:
        # On failure OUTPUT.partial stays for --resume (a ConfigError about the input removes it below).
        with atomic_open(output_path, "ab" if resuming else "wb", keep_partial=True) as out, torch.no_grad():
            for batch in iter_column_batches(input_path, [text_column], batch_size, skip=rows):
                texts = batch[text_column]
                for offset, text in enumerate(texts):
                    if not isinstance(text, str):
                        raise ConfigError(
                            f"{input_path}: row {rows + offset} of column {text_column!r} is {type(text).__name__}, not text"
                        )
                out.write(prediction_lines(bundle, texts, rows, top_words).encode("utf-8"))
                out.flush()  # a kill loses what sits in Python's buffer, never what the kernel has
                rows += len(texts)
                bar.update(len(texts))
        sidecar.unlink(missing_ok=True)
    except ConfigError:
        if not resuming:  # a problem in the input: no rerun of the same input could finish this partial output
            partial.unlink(missing_ok=True)
            sidecar.unlink(missing_ok=True)
        raise
    finally:
        bar.close()
    return rows
