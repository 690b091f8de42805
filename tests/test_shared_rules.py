"""Rules that several stages share, each written once: how text becomes ids, how tokens group into words,
how strongly a word pushes towards a class, and how a file is written."""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path

import pytest
import torch

from conftest import REPO, write_table
from sentikit.app.page import signed_scores
from sentikit.atomic import atomic_open, partial_path, write_bytes, write_json, write_text
from sentikit.bundle.bundle import Bundle, load_bundle
from sentikit.bundle.predict_file import predict_file, top_retained_words
from sentikit.compare.report import save_plot
from sentikit.data.datamodule import SentimentDataModule
from sentikit.data.tokenizer import UNK_ID, encode_texts, group_words, train_tokenizer
from sentikit.explain.explainer import Explainer, encode_text
from sentikit.explain.scores import push, word_pushes
from sentikit.gates.portable import PortableClassifier
from sentikit.nn.classifier import SentimentClassifier

BUNDLE = REPO / "data" / "bundles" / "sst2-gru"
LONG = " ".join(["a fine and moving film ."] * 40)  # 240 tokens, over the bundle's 128
TEXTS = {"empty": "", "spaces": "   ", "normal": "a gripping , funny and wise film", "long": LONG}


# --- text -> ids -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundle() -> Bundle:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return load_bundle(BUNDLE)


@pytest.fixture(scope="module")
def ids_by_stage(bundle, tmp_path_factory) -> dict[str, list[list[int]]]:
    """The ids of `TEXTS` as the data module, the bundle and the explainer read them with the bundle's
    tokenizer and max length."""
    folder = tmp_path_factory.mktemp("shared-rules")
    rows = [{"text": text, "label": i % 2} for i, text in enumerate(TEXTS.values())]
    data = SentimentDataModule(
        data_files={"train": write_table(folder / "train.parquet", rows), "test": write_table(folder / "test.parquet", rows)},
        label_names=["negative", "positive"],
        validation_fraction=0,
        tokenizer_file=str(BUNDLE / "tokenizer.json"),
        eval_max_length=bundle.max_length,
    )
    token_ids, lengths, _ = bundle.encode(list(TEXTS.values()))
    explainer = Explainer(bundle.model, bundle.tokenizer, bundle.max_length)
    return {
        "data": [data.splits["test"][row]["input_ids"].tolist() for row in range(len(TEXTS))],
        "bundle": [row[:length].tolist() for row, length in zip(token_ids, lengths)],
        "explainer": [encode_text(explainer.tokenizer, text, explainer.max_length).ids for text in TEXTS.values()],
    }


@pytest.mark.parametrize("name", ["empty", "spaces"])
def test_an_empty_review_reads_as_one_unknown_word_everywhere(ids_by_stage, name):
    row = list(TEXTS).index(name)
    assert {stage: ids[row] for stage, ids in ids_by_stage.items()} == {stage: [UNK_ID] for stage in ids_by_stage}


def test_every_stage_reads_a_review_as_the_same_ids_and_cuts_a_long_one_at_max_length(ids_by_stage, bundle):
    data, bundle_ids, explainer = ids_by_stage["data"], ids_by_stage["bundle"], ids_by_stage["explainer"]
    assert data == bundle_ids == explainer
    assert len(data[list(TEXTS).index("long")]) == bundle.max_length
    assert len(data[list(TEXTS).index("normal")]) == len(TEXTS["normal"].split())


def test_predict_file_gives_each_review_the_probabilities_of_the_shared_ids(ids_by_stage, bundle, tmp_path):
    source = write_table(tmp_path / "reviews.jsonl", [{"text": text} for text in TEXTS.values()])
    predict_file(bundle, source, tmp_path / "out.jsonl", batch_size=1, progress=False)
    written = [list(json.loads(line)["probabilities"].values()) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    with torch.no_grad():
        expected = [bundle.model(torch.tensor([ids]), torch.tensor([len(ids)])).softmax(-1)[0].tolist() for ids in ids_by_stage["data"]]
    torch.testing.assert_close(torch.tensor(written), torch.tensor(expected), rtol=0, atol=1e-6)


def test_the_explainer_explains_with_the_bundle_s_probabilities(bundle):
    explainer = Explainer(bundle.model, bundle.tokenizer, bundle.max_length)
    texts = [TEXTS["normal"], TEXTS["long"]]
    reports = [explainer.explain(text, memory_probes=0) for text in texts]
    probabilities = torch.tensor([r["probabilities"] for r in reports])
    torch.testing.assert_close(probabilities, bundle.predict_proba(texts), rtol=0, atol=1e-6)


def test_encoding_needs_room_for_at_least_one_token(bundle):
    with pytest.raises(ValueError, match="max_length must be at least 1, got 0"):
        encode_texts(bundle.tokenizer, ["fine"], 0)


# --- tokens -> words ---------------------------------------------------------------------------------------

CORPUS = ["this cereal is amazing and i am buying it again", "the box gave up all its crunch in milk", "bland and stale"]


def wordpiece():
    return train_tokenizer([CORPUS], kind="wordpiece", vocab_size=60, min_frequency=1)


def test_the_pieces_of_one_word_are_one_unit_spanning_the_word_as_typed():
    text = "Unbelievable <br />crunch, DEFINITELY"
    [ids], [encoding] = encode_texts(wordpiece(), [text], 64, offsets=True)
    token_word, spans = group_words(encoding, len(ids))
    assert [text[start:end] for start, end in spans] == ["Unbelievable", "crunch", ",", "DEFINITELY"]
    assert len(token_word) == len(ids) > len(spans)  # several words were cut into pieces
    assert token_word == sorted(token_word) and set(token_word) == set(range(len(spans)))


def test_a_text_without_tokens_has_no_words_though_it_reads_as_unknown():
    [ids], [encoding] = encode_texts(wordpiece(), ["   "], 64, offsets=True)
    assert ids == [UNK_ID] and group_words(encoding, len(ids)) == ([], [])


def test_predict_file_s_top_words_are_whole_words_of_the_review():
    tokenizer = wordpiece()
    torch.manual_seed(0)
    model = SentimentClassifier(tokenizer.get_vocab_size(), ["negative", "positive"], cell="gru", embedding_dim=8, hidden_size=6)
    bundle = Bundle(PortableClassifier.from_classifier(model).eval(), tokenizer, {"max_length": 64, "label_names": ["negative", "positive"]})
    texts = ["Unbelievable crunch, DEFINITELY", ""]
    token_ids, lengths, encodings = bundle.encode(texts, offsets=True)
    with torch.no_grad():
        words = top_retained_words(bundle, token_ids, lengths, encodings, texts, k=10)
    assert sorted(words[0]) == sorted(["Unbelievable", "crunch", ",", "DEFINITELY"]) and words[1] == []


# --- the push of a word ------------------------------------------------------------------------------------


def test_for_two_classes_the_push_is_the_difference_of_the_two_contributions():
    contributions = torch.tensor([[1.0, 3.0], [2.0, -1.0]])
    assert push(contributions, 1).tolist() == [2.0, -3.0]
    assert push(contributions, 0).tolist() == [-2.0, 3.0]


def test_for_three_classes_the_push_is_the_contribution_minus_the_mean_of_the_others():
    contributions = torch.tensor([[3.0, 1.0, 0.0], [0.0, 0.0, 6.0]])
    assert push(contributions, 0).tolist() == [2.5, -3.0]
    assert push(contributions, 2).tolist() == [-2.0, 6.0]
    assert push(contributions + 10.0, 0).tolist() == [2.5, -3.0]  # a shift of every logit changes nothing


def report_of(contributions: list[list[float]], classes: list[str], label: str) -> dict:
    return {"classes": classes, "label": label, "words": [{"contributions": c} for c in contributions]}


def test_the_terminal_and_the_page_show_the_same_push():
    two = report_of([[1.0, 3.0], [2.0, -1.0]], ["negative", "positive"], "positive")
    assert word_pushes(two) == signed_scores(two) == [2.0, -3.0]
    three = report_of([[3.0, 1.0, 0.0]], ["a", "b", "c"], "a")
    assert word_pushes(three) == signed_scores(three) == [2.5]


def test_for_two_classes_the_pushes_and_the_bias_s_add_up_to_the_log_odds_of_the_prediction():
    tokenizer = train_tokenizer([CORPUS], vocab_size=200, min_frequency=1)
    torch.manual_seed(0)
    model = SentimentClassifier(tokenizer.get_vocab_size(), ["negative", "positive"], cell="lstm", embedding_dim=8, hidden_size=6)
    report = Explainer(model, tokenizer, 64).explain("this cereal is amazing , not bland", memory_probes=0)
    c = report["classes"].index(report["label"])
    total = sum(word_pushes(report)) + float(push(torch.tensor(report["bias"]), c))
    p = report["probabilities"]
    assert total == pytest.approx(math.log(p[c] / p[1 - c]), abs=1e-4)


# --- files written whole -----------------------------------------------------------------------------------

WRITERS = {
    "write_text": lambda path: write_text(path, "new"),
    "write_bytes": lambda path: write_bytes(path, b"new"),
    "write_json": lambda path: write_json(path, "new"),
}


def failing_fsync(descriptor: int) -> None:
    raise OSError(28, "No space left on device")


@pytest.mark.parametrize("writer", WRITERS)
def test_a_write_that_fails_leaves_the_previous_file_and_no_partial_file(tmp_path, monkeypatch, writer):
    target = tmp_path / "meta.json"
    target.write_text("old")
    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="No space left"):
        WRITERS[writer](target)
    assert target.read_text() == "old" and sorted(tmp_path.iterdir()) == [target]


@pytest.mark.parametrize("writer", WRITERS)
def test_a_file_is_synced_to_disk_before_it_replaces_the_old_one_and_its_folder_after(tmp_path, monkeypatch, writer):
    target = tmp_path / "meta.json"
    target.write_text("old")
    seen = []  # what a reader of the target would find at each sync
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda descriptor: (seen.append(target.read_text()), real_fsync(descriptor)))
    WRITERS[writer](target)
    assert seen == ["old", target.read_text()] and "new" in seen[1]


def test_a_stream_that_fails_midway_keeps_its_partial_file_only_when_asked(tmp_path):
    target = tmp_path / "predictions.jsonl"
    target.write_text("old\n")
    for keep in (False, True):
        with pytest.raises(RuntimeError), atomic_open(target, "w", keep_partial=keep) as out:
            out.write("row 0\n")
            raise RuntimeError("killed")
        assert target.read_text() == "old\n" and partial_path(target).exists() == keep
    with atomic_open(target, "a") as out:  # the kept partial file is continued
        out.write("row 1\n")
    assert target.read_text() == "row 0\nrow 1\n" and not partial_path(target).exists()


def test_predict_file_syncs_its_whole_output_to_disk_before_renaming_it(bundle, tmp_path, monkeypatch):
    source = write_table(tmp_path / "reviews.jsonl", [{"text": text} for text in TEXTS.values()])
    output = tmp_path / "out.jsonl"
    partial_sizes = []  # the partial output's size at each sync while the output does not exist yet
    real_fsync = os.fsync

    def fsync(descriptor):
        if not output.exists() and partial_path(output).exists():
            partial_sizes.append(partial_path(output).stat().st_size)
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", fsync)
    predict_file(bundle, source, output, batch_size=2, progress=False)
    assert partial_sizes[-1] == output.stat().st_size > 0


def test_a_plot_that_fails_to_save_leaves_the_previous_plot_and_no_partial_file(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def disk_full(*args, **kwargs):
        raise OSError("disk full")

    path = tmp_path / "learning_curves.png"
    save_plot(plt.figure(), path)
    before = path.read_bytes()
    figure = plt.figure()
    monkeypatch.setattr(figure, "savefig", disk_full)
    with pytest.raises(OSError, match="disk full"):
        save_plot(figure, path)
    assert path.read_bytes() == before and before.startswith(b"\x89PNG") and sorted(tmp_path.iterdir()) == [path]


def test_a_checkpoint_is_synced_to_disk_before_it_replaces_the_previous_one(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from sentikit.training.callbacks import SentikitCheckpoint

    target = tmp_path / "last.ckpt"
    target.write_bytes(b"previous")
    trainer = SimpleNamespace(
        save_checkpoint=lambda path, weights_only: Path(path).write_bytes(b"new"), global_step=7, is_global_zero=True, loggers=[]
    )
    synced: list[bytes] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda descriptor: (synced.append(target.read_bytes()), real_fsync(descriptor)))
    SentikitCheckpoint(dirpath=tmp_path)._save_checkpoint(trainer, str(target))
    assert target.read_bytes() == b"new" and not (tmp_path / "last.ckpt.partial").exists()
    assert synced[0] == b"previous"  # the new file was synced while the old one was still in place
    assert len(synced) >= 2  # then the folder, which records the rename
