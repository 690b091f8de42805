import json

import numpy as np
import pytest

from conftest import write_table
from sentikit.data.datamodule import SentimentDataModule, TokenizedReviews, collate
from sentikit.errors import ConfigError
from sentikit.data.tokenizer import PAD_ID, UNK_ID, save_tokenizer

ROWS = [
    {"review": "an amazing cereal , definitely buying again", "stars": "pos"},
    {"review": "this gave me nothing at all", "stars": "neg"},
    {"review": "crunchy , sweet and amazing", "stars": "pos"},
    {"review": "soggy and bland , a waste", "stars": "neg"},
] * 10


def module(files, **kwargs) -> SentimentDataModule:
    options = dict(text_column="review", label_column="stars", min_frequency=1, batch_size=4)
    options.update(kwargs)
    return SentimentDataModule(data_files=files, **options)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_local_files_of_each_format_load_with_string_labels(tmp_path, suffix):
    files = {"train": write_table(tmp_path / f"train{suffix}", ROWS), "test": write_table(tmp_path / f"test{suffix}", ROWS[:8])}
    data = module(files)
    assert data.classes == ["neg", "pos"]  # sorted names when none are declared
    assert set(data.splits) == {"train", "validation", "test"}
    assert len(data.splits["test"]) == 8


def test_declared_label_names_fix_the_class_order(tmp_path):
    data = module({"train": write_table(tmp_path / "t.csv", ROWS)}, label_names=["pos", "neg"])
    assert data.classes == ["pos", "neg"]
    reviews = data.splits["train"]
    first = reviews.token_ids[reviews.offsets[0] : reviews.offsets[1]].tolist()
    text = {tuple(data.tokenizer.encode(r["review"]).ids): r["stars"] for r in ROWS}[tuple(first)]
    assert reviews.labels[0] == ["pos", "neg"].index(text)


def test_validation_is_carved_from_train_when_missing_and_is_seeded(tmp_path):
    files = {"train": write_table(tmp_path / "t.parquet", ROWS)}
    a = module(files, validation_fraction=0.25, seed=1)
    b = module(files, validation_fraction=0.25, seed=1)
    assert len(a.splits["validation"]) == 10 and len(a.splits["train"]) == 30
    assert a.splits["validation"].labels.tolist() == b.splits["validation"].labels.tolist()
    assert sorted(a.splits["validation"].labels.tolist()) == [0] * 5 + [1] * 5  # stratified


def test_validation_fraction_zero_trains_on_all_of_train_and_validates_nothing(tmp_path):
    data = module({"train": write_table(tmp_path / "t.parquet", ROWS)}, validation_fraction=0)
    assert set(data.splits) == {"train"} and len(data.splits["train"]) == len(ROWS)
    assert not data.has_validation and data.val_dataloader() == []


def test_validation_fraction_zero_keeps_a_validation_split_the_source_has(tmp_path):
    files = {"train": write_table(tmp_path / "t.csv", ROWS), "validation": write_table(tmp_path / "v.csv", ROWS[:6])}
    data = module(files, validation_fraction=0)
    assert data.has_validation and len(data.splits["validation"]) == 6 and len(data.splits["train"]) == len(ROWS)


def test_the_tokenizer_is_trained_on_train_only(tmp_path):
    files = {
        "train": write_table(tmp_path / "train.csv", ROWS),
        "validation": write_table(tmp_path / "val.csv", [{"review": "zesty marmalade", "stars": "pos"}, {"review": "odd", "stars": "neg"}]),
    }
    data = module(files)
    assert "marmalade" not in data.tokenizer.get_vocab()
    assert data.splits["validation"].token_ids[0:2].tolist() == [UNK_ID, UNK_ID]


def test_sst2_copy_loads_with_its_published_sizes(small_sst2):
    data = SentimentDataModule(data_files=small_sst2, label_names=["negative", "positive"])
    assert data.classes == ["negative", "positive"]
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 2000, "validation": 200, "test": 200}


def test_long_reviews_are_truncated_and_counted(small_sst2, caplog):
    caplog.set_level("INFO", logger="sentikit")
    data = SentimentDataModule(data_files=small_sst2, max_length=5)
    assert max(split.lengths.max() for split in data.splits.values()) == 5
    assert any("truncated to 5 tokens" in message for message in caplog.messages)


def test_scored_splits_read_up_to_eval_max_length_and_the_checkpoint_keeps_it(small_sst2):
    data = SentimentDataModule(data_files=small_sst2, max_length=5, eval_max_length=12)
    assert data.splits["train"].lengths.max() == 5
    assert data.splits["validation"].lengths.max() == data.splits["test"].lengths.max() == 12
    loader_lengths = [int(n) for batch in data.test_dataloader() for n in batch["lengths"]]
    assert max(loader_lengths) == 12 and sorted(loader_lengths) == sorted(data.splits["test"].lengths.tolist())
    state = data.state_dict()  # new text (bundles, explain) is read as the scored splits are, not as train
    assert (state["max_length"], state["train_max_length"]) == (12, 5)


def test_eval_max_length_defaults_to_max_length_and_its_own_cache(small_sst2):
    short = SentimentDataModule(data_files=small_sst2, max_length=5)
    assert short.eval_max_length == 5 and short.state_dict()["max_length"] == 5
    longer = SentimentDataModule(data_files=small_sst2, max_length=5, eval_max_length=9)  # same files, other cache entry
    assert longer.splits["test"].lengths.max() == 9 and short.splits["test"].lengths.max() == 5


def test_batches_are_padded_with_pad_and_carry_lengths(small_sst2):
    data = SentimentDataModule(data_files=small_sst2, batch_size=16)
    batch = next(iter(data.train_dataloader()))
    assert batch["token_ids"].shape == (16, int(batch["lengths"].max()))
    for row, length in zip(batch["token_ids"], batch["lengths"]):
        assert (row[length:] == PAD_ID).all() and (row[:length] != PAD_ID).all()


def test_collate_reads_an_empty_review_as_one_unknown_token(tmp_path):
    rows = ROWS + [{"review": "", "stars": "pos"}, {"review": "   ", "stars": "neg"}]
    data = module({"train": write_table(tmp_path / "t.parquet", rows), "test": write_table(tmp_path / "e.parquet", rows[-2:])})
    test = data.splits["test"]
    assert test.lengths.tolist() == [1, 1] and test.token_ids.tolist() == [UNK_ID, UNK_ID]
    assert collate([test[0], test[1]])["token_ids"].tolist() == [[UNK_ID], [UNK_ID]]


def test_a_given_tokenizer_file_is_reused_not_retrained(tmp_path, small_sst2):
    trained = SentimentDataModule(data_files=small_sst2, vocab_size=500)
    path = save_tokenizer(trained.tokenizer, tmp_path / "tokenizer.json")
    reused = SentimentDataModule(data_files=small_sst2, vocab_size=90_000, tokenizer_file=str(path))
    assert reused.tokenizer.get_vocab() == trained.tokenizer.get_vocab()


def test_state_dict_carries_tokenizer_and_classes_and_refuses_a_mismatch(small_sst2):
    data = SentimentDataModule(data_files=small_sst2, vocab_size=500)
    state = data.state_dict()
    assert json.loads(state["tokenizer"])["model"]["vocab"] == data.tokenizer.get_vocab() or state["tokenizer"]
    data.load_state_dict(state)  # the same: accepted
    other = SentimentDataModule(data_files=small_sst2, vocab_size=400)
    with pytest.raises(ConfigError, match="another tokenizer"):
        other.load_state_dict(state)


# --- settings refused (bad files and columns: test_bad_input.py, through the command line) ------------


def test_both_or_neither_source_is_refused():
    with pytest.raises(ConfigError, match="one of data.data_files"):
        SentimentDataModule()
    with pytest.raises(ConfigError, match="one of data.data_files"):
        SentimentDataModule(data_files={"train": "a.csv"}, dataset="stanfordnlp/imdb")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(max_length=0), "max_length"),
        (dict(eval_max_length=0), "eval_max_length must be at least 1, got 0"),
        (dict(batch_size=0), "batch sizes"),
        (dict(validation_fraction=1.0), "validation_fraction"),
        (dict(validation_fraction=-0.1), "validation_fraction"),
    ],
)
def test_bad_settings_are_refused(small_sst2, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        SentimentDataModule(data_files=small_sst2, **kwargs)


def test_hub_dataset_offline_fails_fast_with_a_way_out(monkeypatch):
    import time

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(ConfigError, match="could not load dataset 'stanfordnlp/imdb'.*data_files"):
        SentimentDataModule(dataset="stanfordnlp/imdb").prepare()
    assert time.monotonic() - start < 10
