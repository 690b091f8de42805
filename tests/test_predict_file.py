"""predict-file: one JSON line per input row, streamed, and an interrupted run resumed to the very bytes of an
uninterrupted one."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import REPO, SST2, write_table
from sentikit.bundle.bundle import load_bundle
from sentikit.errors import ConfigError
from sentikit.atomic import write_json
from sentikit.bundle.predict_file import iter_column_batches, predict_file, run_settings

BUNDLES = REPO / "data" / "bundles"
TEXTS = ["a gripping , funny and wise film", "dull", "it is not the worst , but it is close to it ."]
REVIEWS = [{"review": t, "stars": i} for i, t in enumerate(TEXTS * 5)]  # 15 rows
# Real sentences of many lengths: a row's last digits depend on its batch, which resuming must respect.
SENTENCES = [{"text": t, "copy": t} for t in pq.read_table(SST2 / "validation.parquet").column("text").to_pylist()[:30]]
BATCH = 8  # 30 sentences: batches of 8, 8, 8 and 6


@pytest.fixture(scope="module")
def lstm_bundle():
    return load_bundle(BUNDLES / "sst2-lstm")


@pytest.fixture(scope="module")
def gru_bundle():
    return load_bundle(BUNDLES / "sst2-gru")


def write_input(path: Path, rows: list[dict]) -> str:
    """`write_table`, except that Parquet gets row groups of 5 rows, so that skipping can pass whole groups."""
    if path.suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=5)
        return str(path)
    return write_table(path, rows)


def interrupted_after(bundle, batches: int):
    """The bundle, except that it is interrupted (as by Ctrl-C) when asked for batch `batches + 1`."""
    calls = 0

    def encode(texts, offsets=False):
        nonlocal calls
        calls += 1
        if calls > batches:
            raise KeyboardInterrupt
        return bundle.encode(texts, offsets)

    interrupted = dataclasses.replace(bundle)
    interrupted.encode = encode
    return interrupted


def counting(bundle, seen: list[str]):
    """The bundle, recording every text it is asked to encode."""
    counted = dataclasses.replace(bundle)
    counted.encode = lambda texts, offsets=False: (seen.extend(texts), bundle.encode(texts, offsets))[1]
    return counted


def partial_of(output: Path) -> Path:
    return output.with_name(output.name + ".partial")


@pytest.fixture()
def interrupted_run(tmp_path, lstm_bundle):
    """An input, its uninterrupted output (bytes) and an output interrupted after two batches."""

    def make(suffix: str = ".parquet", top_words: int = 0):
        source = write_input(tmp_path / f"sentences{suffix}", SENTENCES)
        reference = tmp_path / "reference.jsonl"
        predict_file(lstm_bundle, source, reference, batch_size=BATCH, top_words=top_words, progress=False)
        output = tmp_path / "predictions.jsonl"
        with pytest.raises(KeyboardInterrupt):
            predict_file(interrupted_after(lstm_bundle, 2), source, output, batch_size=BATCH, top_words=top_words, progress=False)
        return source, reference.read_bytes(), output

    return make


# --- one line per row --------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_predict_file_writes_one_json_line_per_row_in_order(tmp_path, lstm_bundle, suffix):
    source = write_table(tmp_path / f"reviews{suffix}", REVIEWS)
    output = tmp_path / "predictions.jsonl"
    rows = predict_file(lstm_bundle, source, output, text_column="review", batch_size=4, top_words=2, progress=False)
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert rows == len(lines) == len(REVIEWS)
    assert [line["row"] for line in lines] == list(range(len(REVIEWS)))
    expected = lstm_bundle.predict_proba([r["review"] for r in REVIEWS])
    for line, p, review in zip(lines, expected, REVIEWS):
        assert list(line["probabilities"]) == ["negative", "positive"]
        assert list(line["probabilities"].values()) == pytest.approx(p.tolist(), abs=1e-6)
        assert line["label"] == ["negative", "positive"][int(p.argmax())]
        assert 1 <= len(line["top_words"]) <= 2 and all(word in review["review"].split() for word in line["top_words"])
    assert not partial_of(output).exists() and not (tmp_path / "predictions.jsonl.partial.json").exists()


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_files_are_read_in_batches_of_bounded_size(tmp_path, suffix):
    source = write_table(tmp_path / f"reviews{suffix}", REVIEWS)
    sizes = [len(batch["review"]) for batch in iter_column_batches(source, ["review"], 4)]
    assert sizes == [4, 4, 4, 3]


@pytest.mark.parametrize("skip", [0, 3, 5, 8, 14, 15, 40])
@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_reading_after_skipped_rows_starts_with_the_next_row_in_the_same_batches(tmp_path, suffix, skip):
    source = write_input(tmp_path / f"reviews{suffix}", REVIEWS)
    batches = [batch["review"] for batch in iter_column_batches(source, ["review"], 4, skip=skip)]
    assert sum(batches, []) == [r["review"] for r in REVIEWS[skip:]]
    assert all(len(batch) == 4 for batch in batches[:-1])


def test_skipped_rows_are_counted_as_predict_file_counts_them_past_blank_lines(tmp_path):
    source = tmp_path / "reviews.csv"
    source.write_text('review\nfirst\n\nsecond\n"third,\nover two lines"\nfourth\n')
    batches = [batch["review"] for batch in iter_column_batches(source, ["review"], 2, skip=2)]
    assert batches == [["third,\nover two lines", "fourth"]]


def test_predict_file_never_overwrites_without_force(tmp_path, lstm_bundle):
    source = write_table(tmp_path / "reviews.csv", REVIEWS)
    output = tmp_path / "predictions.jsonl"
    output.write_text("precious\n")
    with pytest.raises(ConfigError, match="already exists; pass --force"):
        predict_file(lstm_bundle, source, output, text_column="review", progress=False)
    assert output.read_text() == "precious\n"
    predict_file(lstm_bundle, source, output, text_column="review", force=True, progress=False)
    assert len(output.read_text().splitlines()) == len(REVIEWS)


def test_predict_file_names_a_missing_column_and_a_bad_row_and_leaves_no_partial_output(tmp_path, lstm_bundle):
    source = write_table(tmp_path / "reviews.csv", REVIEWS)
    with pytest.raises(ConfigError, match="has no column 'text'; its columns are"):
        predict_file(lstm_bundle, source, tmp_path / "out.jsonl", progress=False)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": 3}\n')
    with pytest.raises(ConfigError, match="row 1 of column 'text' is int, not text"):
        predict_file(lstm_bundle, bad, tmp_path / "out.jsonl", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl", "reviews.csv"]


# --- resuming ----------------------------------------------------------------------------------------------


def test_an_interrupted_run_leaves_its_finished_batches_and_a_record_of_its_settings(interrupted_run, lstm_bundle):
    source, reference, output = interrupted_run()
    assert partial_of(output).read_bytes() == b"".join(reference.splitlines(keepends=True)[: 2 * BATCH])
    record = json.loads(output.with_name("predictions.jsonl.partial.json").read_text())
    assert record == run_settings(lstm_bundle, source, "text", BATCH, 0)
    assert not output.exists()


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_an_interrupted_run_resumes_after_the_last_written_row_to_the_bytes_of_an_uninterrupted_one(interrupted_run, lstm_bundle, suffix):
    source, reference, output = interrupted_run(suffix, top_words=2)
    seen: list[str] = []
    rows = predict_file(counting(lstm_bundle, seen), source, output, batch_size=BATCH, top_words=2, progress=False, resume=True)
    assert rows == len(SENTENCES) and output.read_bytes() == reference
    assert seen == [s["text"] for s in SENTENCES[2 * BATCH :]], "the written rows are not predicted again"
    assert not partial_of(output).exists() and not output.with_name("predictions.jsonl.partial.json").exists()


def test_a_half_written_last_line_is_dropped_and_its_batch_predicted_again(interrupted_run, lstm_bundle, caplog):
    source, reference, output = interrupted_run()
    partial = partial_of(output)
    lines = reference.splitlines(keepends=True)
    partial.write_bytes(b"".join(lines[: 2 * BATCH + 3]) + lines[2 * BATCH + 3][:20])  # a kill in the third batch
    caplog.set_level(logging.INFO, logger="sentikit.bundle.predict_file")
    predict_file(lstm_bundle, source, output, batch_size=BATCH, progress=False, resume=True)
    assert output.read_bytes() == reference
    assert f"{2 * BATCH + 3} complete rows, {2 * BATCH} of them in whole batches of {BATCH}; predicting from row {2 * BATCH}" in caplog.text


def test_a_finished_partial_output_that_was_never_renamed_is_completed(interrupted_run, lstm_bundle):
    source, reference, output = interrupted_run()
    partial_of(output).write_bytes(reference)  # killed between the last write and the rename
    predict_file(lstm_bundle, source, output, batch_size=BATCH, progress=False, resume=True)
    assert output.read_bytes() == reference


@pytest.mark.parametrize(
    "change, message",
    [
        ("input", r"it was made from .*sentences.parquet \(.* bytes\), a different file from .*other.parquet"),
        ("edited input", r".*sentences.parquet has changed since it was started"),
        ("text column", r"it was made from the text column 'text', not 'copy'"),
        ("bundle", r"it was made with another bundle \(lstm, exported .*\), not this one \(gru, exported"),
        ("top words", r"it was made with --top-words 0, not 3"),
        ("batch size", r"it was made with --batch-size 8, not 16"),
    ],
)
def test_resume_refuses_a_partial_output_made_with_other_settings_and_names_the_setting(
    interrupted_run, lstm_bundle, gru_bundle, tmp_path, change, message
):
    source, _, output = interrupted_run()
    before = partial_of(output).read_bytes()
    bundle, batch_size, top_words, column = lstm_bundle, BATCH, 0, "text"
    if change == "input":
        source = write_input(tmp_path / "other.parquet", SENTENCES[1:])
    elif change == "edited input":
        write_input(Path(source), SENTENCES[:-1])
    elif change == "text column":
        column = "copy"
    elif change == "bundle":
        bundle = gru_bundle
    elif change == "top words":
        top_words = 3
    else:
        batch_size = 16
    with pytest.raises(ConfigError, match=f"^cannot resume .*predictions.jsonl.partial: {message}.*pass --force to start over$"):
        predict_file(bundle, source, output, text_column=column, batch_size=batch_size, top_words=top_words, progress=False, resume=True)
    assert partial_of(output).read_bytes() == before, "a refused resume leaves the partial output alone"


def test_a_partial_output_without_its_record_is_not_resumed(interrupted_run, lstm_bundle):
    source, _, output = interrupted_run()
    output.with_name("predictions.jsonl.partial.json").unlink()
    with pytest.raises(ConfigError, match="there is no predictions.jsonl.partial.json saying what it was made from"):
        predict_file(lstm_bundle, source, output, batch_size=BATCH, progress=False, resume=True)


def test_a_partial_output_damaged_before_its_last_line_is_refused_with_the_line_named(interrupted_run, lstm_bundle):
    source, _, output = interrupted_run()
    lines = partial_of(output).read_bytes().splitlines(keepends=True)
    lines[4] = b'{"row": 4, "lab\n'
    partial_of(output).write_bytes(b"".join(lines))
    with pytest.raises(ConfigError, match="line 5 is not the prediction of row 4, and more lines follow it"):
        predict_file(lstm_bundle, source, output, batch_size=BATCH, progress=False, resume=True)


def test_an_existing_partial_output_is_refused_without_resume_and_the_message_says_how_to_go_on(interrupted_run, lstm_bundle):
    source, reference, output = interrupted_run()
    with pytest.raises(ConfigError, match="predictions.jsonl.partial holds an interrupted run; pass --resume to continue it or --force to start over"):
        predict_file(lstm_bundle, source, output, batch_size=BATCH, progress=False)
    predict_file(lstm_bundle, source, output, batch_size=BATCH, progress=False, force=True)
    assert output.read_bytes() == reference


def test_resume_without_a_partial_output_starts_from_the_first_row(tmp_path, lstm_bundle, caplog):
    source = write_input(tmp_path / "sentences.jsonl", SENTENCES)
    caplog.set_level(logging.INFO, logger="sentikit.bundle.predict_file")
    rows = predict_file(lstm_bundle, source, tmp_path / "out.jsonl", batch_size=BATCH, progress=False, resume=True)
    assert rows == len(SENTENCES) == len((tmp_path / "out.jsonl").read_text().splitlines())
    assert "there is no" in caplog.text and "out.jsonl.partial to resume: starting from the first row" in caplog.text


def test_resume_of_a_finished_output_has_nothing_to_do(tmp_path, lstm_bundle, caplog):
    source = write_input(tmp_path / "sentences.jsonl", SENTENCES)
    output = tmp_path / "out.jsonl"
    predict_file(lstm_bundle, source, output, batch_size=BATCH, progress=False)
    finished = output.read_bytes()
    caplog.set_level(logging.INFO, logger="sentikit.bundle.predict_file")
    seen: list[str] = []
    assert predict_file(counting(lstm_bundle, seen), source, output, batch_size=BATCH, progress=False, resume=True) == len(SENTENCES)
    assert output.read_bytes() == finished and seen == []
    assert "out.jsonl is complete (30 rows) and there is no out.jsonl.partial to resume: nothing to do" in caplog.text


def test_resume_and_force_together_are_refused(tmp_path, lstm_bundle):
    with pytest.raises(ConfigError, match="--resume continues an interrupted run and --force starts over; pass only one of them"):
        predict_file(lstm_bundle, tmp_path / "in.jsonl", tmp_path / "out.jsonl", force=True, resume=True, progress=False)


# --- a real kill -------------------------------------------------------------------------------------------


def sentikit(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sentikit", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def complete_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_to_the_bytes_of_an_uninterrupted_run(tmp_path):
    rows, batch_size = 8000, 64
    source = tmp_path / "phrases.parquet"
    pq.write_table(pq.read_table(SST2 / "train.parquet", columns=["text"]).slice(0, rows), source, row_group_size=1000)
    bundle = BUNDLES / "sst2-lstm"
    command = ("predict-file", "--bundle", str(bundle), "--input", str(source), "--batch-size", str(batch_size), "--no-progress")
    reference = tmp_path / "reference.jsonl"
    done = sentikit(*command, "--output", str(reference))
    assert done.wait(timeout=300) == 0, done.communicate()[1]

    output = tmp_path / "predictions.jsonl"
    partial = partial_of(output)
    killed = sentikit(*command, "--output", str(output))
    while killed.poll() is None and complete_lines(partial) < 10 * batch_size:
        time.sleep(0.01)
    if killed.poll() is None:
        os.kill(killed.pid, signal.SIGKILL)
        assert killed.wait(timeout=60) == -signal.SIGKILL
    else:  # it finished before it could be killed: make what a kill in the eleventh batch leaves instead
        assert killed.returncode == 0, killed.stderr.read()
        lines = output.read_bytes().splitlines(keepends=True)
        partial.write_bytes(b"".join(lines[: 10 * batch_size + 5]) + lines[10 * batch_size + 5][:25])
        write_json(output.with_name("predictions.jsonl.partial.json"), run_settings(load_bundle(bundle), source, "text", batch_size, 0))
        output.unlink()
    assert partial.stat().st_size > 0 and not output.exists()

    refused = sentikit(*command, "--output", str(output))
    _, stderr = refused.communicate(timeout=300)
    assert refused.returncode == 2 and stderr.count("\n") == 1, stderr
    assert stderr.startswith("sentikit: error: ") and "holds an interrupted run; pass --resume to continue it or --force to start over" in stderr

    resumed = sentikit(*command, "--output", str(output), "--resume")
    _, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    assert "resuming" in stderr and f"{rows} predictions in {output}" in stderr
    records = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert [r["row"] for r in records] == list(range(rows))
    assert output.read_bytes() == reference.read_bytes()
    assert not partial.exists() and not output.with_name("predictions.jsonl.partial.json").exists()
