"""Bad input, through the command line as a user meets it: every case below ends in one `sentikit: error:`
line naming the file, column, value or setting, exit status 2 and no traceback; the last two tests are the
inputs with a defined result instead (labels given as class names, a 10 MB review).

Each case is a function that writes what it needs into a temporary folder and returns the command's
arguments. Commands run in this process (`sentikit.cli.main`), from the repository root.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from conftest import REPO, SST2, sentikit_in_process, write_table
from sentikit.bundle.bundle import FORMAT_VERSION

GRU_BUNDLE = REPO / "data" / "bundles" / "sst2-gru"


def reviews(count: int = 40) -> list[dict]:
    """The first SST-2 phrases, both classes among them."""
    return pq.read_table(SST2 / "train.parquet").slice(0, count).to_pylist()


def fit_on(tmp: Path, train: str, *args: str) -> list[str]:
    """`fit` of the quickstart config on `train`, with good validation data in the same format."""
    suffix = Path(train).suffix if Path(train).suffix in (".csv", ".jsonl") else ".parquet"
    validation = write_table(tmp / f"validation{suffix}", reviews(20))
    files = f"{{train: {train}, validation: {validation}}}"
    return ["fit", "-c", "configs/quickstart.yaml", "--trainer.default_root_dir", str(tmp / "runs"), "--data.data_files", files, *args]


def fit_with(tmp: Path, *args: str) -> list[str]:
    """`fit` on good data with `args` added."""
    return fit_on(tmp, write_table(tmp / "train.parquet", reviews()), *args)


def rows_with(text=None, label=None, at: int = 5) -> list[dict]:
    rows = reviews()
    if text is not None:
        rows[at]["text"] = text[0]
    if label is not None:
        rows[at]["label"] = label[0]
    return rows


def raw_file(tmp: Path, name: str, content: bytes) -> str:
    path = tmp / name
    path.write_bytes(content)
    return str(path)


def lightning_checkpoint(tmp: Path, **content) -> str:
    path = tmp / "model.ckpt"
    torch.save(content, path)
    return str(path)


class RunsCodeWhenUnpickled:
    """What a malicious checkpoint holds: unpickling it would create `path` (an attacker would run code)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def copied_bundle(tmp: Path, change=None, reviews_file: bytes = b'{"text": "a fine film"}\n') -> list[str]:
    """`predict-file` with a copy of the shipped GRU bundle, changed by `change`, on `reviews_file`."""
    folder = Path(shutil.copytree(GRU_BUNDLE, tmp / "bundle"))
    if change is not None:
        change(folder)
    reviews_file = raw_file(tmp, "reviews.jsonl", reviews_file)
    return ["predict-file", "--bundle", str(folder), "--input", reviews_file, "--output", str(tmp / "out.jsonl"), "--no-progress"]


def flip_a_byte(folder: Path) -> None:
    content = bytearray((folder / "model.pt").read_bytes())
    content[len(content) // 2] ^= 0xFF
    (folder / "model.pt").write_bytes(bytes(content))


def newer_format(folder: Path) -> None:
    meta = json.loads((folder / "meta.json").read_text())
    meta["format_version"] = FORMAT_VERSION + 1
    (folder / "meta.json").write_text(json.dumps(meta))


CASES = {
    # --- data ---
    "missing file": (
        lambda tmp: fit_on(tmp, str(tmp / "nope.parquet")),
        "data file for split 'train' not found: {tmp}/nope.parquet",
    ),
    "unsupported file type": (
        lambda tmp: fit_on(tmp, raw_file(tmp, "reviews.xlsx", b"PK")),
        "{tmp}/reviews.xlsx: unsupported file type; use one of .csv, .json, .jsonl, .parquet, .tsv",
    ),
    "a parquet file that is not parquet": (
        lambda tmp: fit_on(tmp, raw_file(tmp, "reviews.parquet", b"text,label\ngood,1\n")),
        "could not read split 'train' ({tmp}/reviews.parquet) as parquet: Parquet magic bytes not found",
    ),
    "malformed csv": (
        lambda tmp: fit_on(tmp, raw_file(tmp, "reviews.csv", b'text,label\n"never closed,1\nbad,0\n')),
        "could not read split 'train' ({tmp}/reviews.csv) as csv: Error tokenizing data",
    ),
    "non-UTF-8 bytes": (
        lambda tmp: fit_on(tmp, raw_file(tmp, "reviews.csv", "text,label\ncaf\xe9 au lait,1\nbad,0\n".encode("latin-1"))),
        "split 'train' ({tmp}/reviews.csv) is not UTF-8 text (invalid continuation byte, byte 0xe9): save it as UTF-8",
    ),
    "missing text column": (
        lambda tmp: fit_on(tmp, write_table(tmp / "t.csv", [{"review": r["text"], "label": r["label"]} for r in reviews()])),
        "has no column 'text'; its columns are ['review', 'label']",
    ),
    "missing label column": (
        lambda tmp: fit_on(tmp, write_table(tmp / "t.csv", [{"text": r["text"], "stars": r["label"]} for r in reviews()])),
        "has no column 'label'; its columns are ['text', 'stars']",
    ),
    "empty split": (
        lambda tmp: fit_on(tmp, raw_file(tmp, "t.csv", b"text,label\n")),
        "split 'train' ({tmp}/t.csv) is empty",
    ),
    "null texts": (
        lambda tmp: fit_on(tmp, write_table(tmp / "t.parquet", rows_with(text=[None]))),
        "column 'text' has 1 empty (null) values, the first in row 5",
    ),
    "non-string texts": (
        lambda tmp: fit_on(tmp, write_table(tmp / "t.parquet", [{"text": i, "label": r["label"]} for i, r in enumerate(reviews())])),
        "column 'text' must hold text, but holds int64",
    ),
    "labels outside the declared set (names)": (
        lambda tmp: fit_on(tmp, write_table(tmp / "t.jsonl", [{"text": r["text"], "label": ["negative", "positive"][r["label"]]} for r in reviews()][:-1] + [{"text": "meh", "label": "neutral"}])),
        "label 'neutral' in column 'label' (row 39) is not one of the 2 classes ['negative', 'positive']",
    ),
    "labels outside the declared set (ids)": (
        lambda tmp: fit_on(tmp, write_table(tmp / "t.parquet", rows_with(label=[7]))),
        "label 7 in column 'label' (row 5) is not one of the 2 classes ['negative', 'positive']",
    ),
    "labels of another type": (
        lambda tmp: fit_on(tmp, write_table(tmp / "t.parquet", [{"text": r["text"], "label": float(r["label"])} for r in reviews()])),
        "label column 'label' must hold integers or strings, but holds double",
    ),
    "a single-class train split": (
        lambda tmp: fit_on(tmp, write_table(tmp / "t.parquet", [r for r in reviews() if r["label"] == 1])),
        "data_files: the train split holds a single class (1); nothing to learn",
    ),
    # --- configuration ---
    "unknown cell": (
        lambda tmp: fit_with(tmp, "--model.cell", "lstmm"),
        "Parser key \"model.cell\": Expected a typing.Literal['rnn', 'lstm', 'gru']. Got value: lstmm",
    ),
    "bidirectional with a typo in the key": (
        lambda tmp: fit_with(tmp, "--model.bidirectinal", "true"),
        "unrecognized arguments: --model.bidirectinal true (`sentikit fit --help` lists the options)",
    ),
    "a typo in a config file's key": (
        lambda tmp: fit_with(tmp, "-c", raw_file(tmp, "typo.yaml", b"model:\n  bidirectional: true\n  cel: lstm\n")),
        "Subcommand 'fit' does not accept option 'model.cel'",
    ),
    "negative hidden size": (lambda tmp: fit_with(tmp, "--model.hidden_size", "-5"), "hidden_size must be at least 1, got -5"),
    "negative embedding size": (lambda tmp: fit_with(tmp, "--model.embedding_dim", "-1"), "embedding_dim must be at least 1, got -1"),
    "zero layers": (lambda tmp: fit_with(tmp, "--model.num_layers", "0"), "num_layers must be at least 1, got 0"),
    "max length 0": (lambda tmp: fit_with(tmp, "--data.max_length", "0"), "max_length must be at least 1, got 0"),
    "dropout of 1 or more": (lambda tmp: fit_with(tmp, "--model.dropout", "1.5"), "dropout must lie in [0, 1), got 1.5"),
    "fewer than two classes": (lambda tmp: fit_with(tmp, "--data.label_names", "[negative]"), "a classifier needs at least 2 classes, got ['negative']"),
    "the text column given as the labels": (
        lambda tmp: fit_with(tmp, "--data.label_column", "text"),
        "is not one of the 2 classes ['negative', 'positive']",
    ),
    "trainer settings that contradict each other": (
        lambda tmp: fit_with(tmp, "--trainer.enable_progress_bar", "false"),
        "found `RichProgressBar` in callbacks list",
    ),
    "a word where a number belongs": (lambda tmp: fit_with(tmp, "--data.batch_size", "many"), "Parser key \"data.batch_size\""),
    # --- models ---
    "a missing checkpoint": (
        lambda tmp: ["export", "--ckpt", str(tmp / "gone.ckpt"), "--out", str(tmp / "bundle")],
        "checkpoint not found: {tmp}/gone.ckpt",
    ),
    "a truncated checkpoint": (
        lambda tmp: ["export", "--ckpt", raw_file(tmp, "cut.ckpt", Path(lightning_checkpoint(tmp, state_dict={"w": torch.ones(1000)})).read_bytes()[:3000]), "--out", str(tmp / "b")],
        "{tmp}/cut.ckpt is not a readable checkpoint (",
    ),
    "a checkpoint of another model": (
        lambda tmp: ["export", "--ckpt", lightning_checkpoint(tmp, state_dict={"conv.weight": torch.ones(2, 2)}, hyper_parameters={"channels": 3}), "--out", str(tmp / "b")],
        "{tmp}/model.ckpt was not written by sentikit: it holds no tokenizer",
    ),
    "a bare state dict": (
        lambda tmp: ["export", "--ckpt", lightning_checkpoint(tmp, weight=torch.ones(2)), "--out", str(tmp / "b")],
        "{tmp}/model.ckpt is not a Lightning checkpoint (no 'state_dict' in it)",
    ),
    "a checkpoint that runs code when unpickled": (
        lambda tmp: ["export", "--ckpt", lightning_checkpoint(tmp, state_dict=RunsCodeWhenUnpickled(tmp / "pwned")), "--out", str(tmp / "b")],
        "{tmp}/model.ckpt is not a readable checkpoint (UnpicklingError: Weights only load failed.",
    ),
    "a checkpoint given to test that is not there": (
        lambda tmp: ["test", "-c", "configs/quickstart.yaml", "--ckpt_path", str(tmp / "gone.ckpt")],
        "checkpoint not found: {tmp}/gone.ckpt",
    ),
    "a bundle with a tampered model.pt": (
        lambda tmp: copied_bundle(tmp, flip_a_byte),
        "{tmp}/bundle/model.pt does not match the sha256 recorded in meta.json",
    ),
    "a bundle of a newer format version": (
        lambda tmp: copied_bundle(tmp, newer_format),
        f"format version {FORMAT_VERSION + 1}, newer than this sentikit reads",
    ),
    "reviews to predict that are not UTF-8": (
        lambda tmp: copied_bundle(tmp, reviews_file=b'{"text": "caf\xe9"}\n'),
        "{tmp}/reviews.jsonl is not UTF-8 text",
    ),
}


run = sentikit_in_process


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_fails_with_one_line_naming_the_problem(name, tmp_path, monkeypatch, capsys):
    make_argv, expected = CASES[name]
    argv = make_argv(tmp_path)
    code = run(argv, monkeypatch)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("sentikit: error:")]
    assert code == 2, err[-2000:]
    assert len(errors) == 1 and "Traceback" not in err, err[-2000:]
    assert expected.format(tmp=tmp_path) in errors[0]
    assert not (tmp_path / "pwned").exists()  # nothing in a checkpoint ran


def test_labels_given_as_class_names_train_with_those_classes(tmp_path, monkeypatch, capsys):
    names = ["negative", "positive"]
    rows = [{"text": r["text"], "label": names[r["label"]]} for r in reviews()]
    argv = fit_on(tmp_path, write_table(tmp_path / "t.csv", rows), "--trainer.limit_train_batches", "2", "--trainer.callbacks", "[]")
    code = run(argv, monkeypatch)
    assert code == 0, capsys.readouterr().err[-2000:]
    (best,) = (tmp_path / "runs").rglob("best.ckpt")
    assert torch.load(best, weights_only=True)["SentimentDataModule"]["classes"] == names


@pytest.mark.slow
def test_a_10_mb_review_is_truncated_to_max_length_and_trains(tmp_path, monkeypatch, capsys, caplog):
    rows = reviews()
    rows[3]["text"] = "a warm and generous film . " * (10_000_000 // 27)
    argv = fit_on(tmp_path, write_table(tmp_path / "t.parquet", rows), "--trainer.limit_train_batches", "2", "--trainer.callbacks", "[]")
    with caplog.at_level("INFO", logger="sentikit"):
        code = run(argv, monkeypatch)
    assert code == 0, capsys.readouterr().err[-2000:]
    assert "train: 1 of 40 reviews (2.5%) truncated to 64 tokens" in caplog.text
