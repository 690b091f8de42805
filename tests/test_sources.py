"""Training on several data sources at once (`data.sources`): each source keeps its own column names and
label spellings yet lands on the run's classes, validation scores every source apart (`val_acc/<name>`),
and a source's weight sets its share of an epoch's training batches without repeating or dropping
validation examples.

The two sources below differ in every way a source can: a CSV shop whose `review`/`stars` columns hold
`good`/`bad` (mapped with `labels:`), with a test split but no validation split; and a parquet of films
whose `text`/`label` columns hold 0/1, with a validation split but no test split.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO, sentikit_in_process, write_table
from sentikit.data.datamodule import SentimentDataModule
from sentikit.data.sampler import BucketBatchSampler
from sentikit.data.sources import Source
from sentikit.errors import ConfigError

CLASSES = ["negative", "positive"]


def number(i: int) -> str:
    """`i` as four digits apart ("0 0 1 2"): every text is unique, in words that the tokenizer trained
    on train knows, so an example's token ids tell which row it was, in any split."""
    return " ".join(f"{i:04d}")


def shop_rows(count: int, start: int = 0) -> list[dict]:
    """Two thirds good: the sources differ in class balance, so a mixed-up source id changes an accuracy."""
    return [
        {"review": f"shop item {number(i)} was {'great' if i % 3 else 'awful'}", "stars": "good" if i % 3 else "bad"}
        for i in range(start, start + count)
    ]


def film_rows(count: int, start: int = 0) -> list[dict]:
    return [{"text": f"film {number(i)} felt {'moving' if i % 2 else 'dull'}", "label": i % 2} for i in range(start, start + count)]


def shop(tmp: Path, train: int = 40, test: int = 12, **options) -> dict:
    files = {"train": write_table(tmp / "shop-train.csv", shop_rows(train))}
    if test:
        files["test"] = write_table(tmp / "shop-test.csv", shop_rows(test, start=1000))
    labels = {"good": "positive", "bad": "negative"}
    return dict(name="shop", data_files=files, text_column="review", label_column="stars", labels=labels) | options


def films(tmp: Path, train: int = 20, validation: int = 10, **options) -> dict:
    files = {"train": write_table(tmp / "films-train.parquet", film_rows(train))}
    if validation:
        files["validation"] = write_table(tmp / "films-validation.parquet", film_rows(validation, start=1000))
    return dict(name="films", data_files=files) | options


def module(sources: list, **options) -> SentimentDataModule:
    settings = dict(label_names=CLASSES, min_frequency=1, batch_size=4, validation_fraction=0.25, seed=3)
    return SentimentDataModule(sources=sources, **settings | options)


def token_key(data: SentimentDataModule, text: str) -> tuple[int, ...]:
    return tuple(data.tokenizer.encode(text).ids)


def example_keys(data: SentimentDataModule, split: str) -> list[tuple[int, ...]]:
    reviews = data.splits[split]
    return [tuple(reviews.token_ids[reviews.offsets[i] : reviews.offsets[i + 1]].tolist()) for i in range(len(reviews))]


@pytest.fixture
def two_sources(tmp_path) -> SentimentDataModule:
    return module([Source(**shop(tmp_path)), films(tmp_path)])  # a `Source` or its fields as a dict alike


# --- the splits: every example, its class and its source -------------------------------------------------


def test_every_example_of_every_source_lands_once_with_its_class_and_source(two_sources):
    data = two_sources
    # What each raw row must become: (class id, source id), keyed by its token ids (every text is unique).
    expected = {}
    for source_id, (rows, text, label) in enumerate(
        [(shop_rows(40) + shop_rows(12, start=1000), "review", "stars"), (film_rows(20) + film_rows(10, start=1000), "text", "label")]
    ):
        for row in rows:
            class_name = {"good": "positive", "bad": "negative", 0: "negative", 1: "positive"}[row[label]]
            expected[token_key(data, row[text])] = (CLASSES.index(class_name), source_id)
    assert len(expected) == 82
    seen = []
    for split, reviews in data.splits.items():
        keys = example_keys(data, split)
        assert [expected[k] for k in keys] == list(zip(reviews.labels.tolist(), reviews.sources.tolist())), split
        seen += keys
    assert sorted(seen) == sorted(expected)  # nothing lost, nothing repeated


def test_each_split_holds_the_files_of_that_split_and_the_shop_test_alone(two_sources):
    data = two_sources
    keys = {split: set(example_keys(data, split)) for split in data.splits}
    assert set(keys) == {"train", "validation", "test"}
    assert keys["test"] == {token_key(data, r["review"]) for r in shop_rows(12, start=1000)}  # films have no test
    films_validation = {token_key(data, r["text"]) for r in film_rows(10, start=1000)}
    assert films_validation <= keys["validation"]
    assert {token_key(data, r["text"]) for r in film_rows(20)} <= keys["train"]  # nothing carved from films


def test_a_source_without_validation_gives_up_a_stratified_seeded_share_of_its_own_train(two_sources, tmp_path):
    data = two_sources
    validation = data.splits["validation"]
    carved = {key for key, source in zip(example_keys(data, "validation"), validation.sources) if source == 0}
    shop_train = {token_key(data, r["review"]) for r in shop_rows(40)}
    assert len(carved) == 10 and carved <= shop_train  # a quarter of the shop's 40, from the shop
    assert not carved & set(example_keys(data, "train"))
    bad = (validation.labels[validation.sources == 0] == 0).sum()
    assert bad in (3, 4)  # stratified: 14 of the shop's 40 are bad, so 3.5 of 10
    again = module([shop(tmp_path), films(tmp_path)])
    assert example_keys(again, "validation") == example_keys(data, "validation")
    reseeded = module([shop(tmp_path), films(tmp_path)], seed=4)
    assert set(example_keys(reseeded, "validation")) != set(example_keys(data, "validation"))


def test_source_names_follow_the_list_and_batches_carry_each_example_s_source(two_sources):
    data = two_sources
    assert data.source_names == ["shop", "films"]
    for loader, split in ((data.train_dataloader(), "train"), (data.val_dataloader(), "validation")):
        for batch in loader:
            assert batch["sources"].tolist() == data.splits[split].sources[batch["indices"].numpy()].tolist()


def test_integer_labels_follow_the_mapping_when_one_is_given(tmp_path):
    """`labels: {0: positive, 1: negative}` is applied, not overruled by reading 0/1 as class ids."""
    flipped = module([films(tmp_path, labels={0: "positive", 1: "negative"})])
    plain = module([films(tmp_path)])
    assert (flipped.splits["train"].labels == 1 - plain.splits["train"].labels).all()
    assert plain.splits["train"].labels.tolist() == [i % 2 for i in range(20)]


@pytest.mark.parametrize(
    "labels, expected",
    [
        (None, [0, 1, 0, 1]),  # its ids index the classes
        ({"neg": "negative", "pos": "positive"}, [0, 1, 0, 1]),  # mapped by the ClassLabel's names
        ({"neg": "positive", "pos": "negative"}, [1, 0, 1, 0]),
        ({0: "positive", 1: "negative"}, [1, 0, 1, 0]),  # or by its ids
    ],
)
def test_a_class_label_column_is_mapped_by_its_names_or_its_ids(tmp_path, labels, expected):
    import datasets

    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])})
    rows = film_rows(20)
    datasets.Dataset.from_list(rows, features=features).to_parquet(str(tmp_path / "class-label.parquet"))
    data = module([{"name": "hub_like", "data_files": {"train": str(tmp_path / "class-label.parquet")}, "labels": labels}], validation_fraction=0)
    assert data.splits["train"].labels.tolist()[:4] == expected


def test_a_source_of_one_class_trains_beside_the_others_and_is_validated_on(tmp_path):
    """A single-dataset run refuses a train split of one class; one source of many may hold one (a file of
    complaints), since the classes are those of all sources together."""
    complaints = [{"text": f"complaint {number(i)} : awful", "label": "negative"} for i in range(20)]
    data = module([films(tmp_path), {"name": "complaints", "data_files": {"train": write_table(tmp_path / "c.csv", complaints)}}])
    validation = data.splits["validation"]
    assert np.bincount(validation.sources).tolist() == [10, 5]
    assert (validation.labels[validation.sources == 1] == 0).all()


def test_string_labels_that_are_class_names_need_no_mapping(tmp_path):
    rows = [{"text": r["review"], "label": {"good": "positive", "bad": "negative"}[r["stars"]]} for r in shop_rows(40)]
    named = module([{"name": "named", "data_files": {"train": write_table(tmp_path / "named.jsonl", rows)}}], validation_fraction=0)
    assert named.splits["train"].labels.tolist() == [int(i % 3 != 0) for i in range(40)]


# --- bad input: one line naming the problem ----------------------------------------------------------------


def bad_label_in(split: str):
    def make(tmp: Path) -> list:
        rows = shop_rows(40) if split == "train" else shop_rows(12, start=1000)
        rows[5]["stars"] = "meh"
        path = write_table(tmp / f"bad-{split}.csv", rows)
        source = shop(tmp)
        source["data_files"][split] = path
        return [source, films(tmp)]

    return make


# name -> (sources from a tmp folder, other options, the message's telling part)
CASES = {
    "a label in train that maps onto no class": (
        bad_label_in("train"), {},
        "source 'shop', split 'train' ({tmp}/bad-train.csv): label 'meh' in column 'stars' (row 5) maps onto none of the classes",
    ),
    "a label in test that maps onto no class": (
        bad_label_in("test"), {},
        "source 'shop', split 'test' ({tmp}/bad-test.csv): label 'meh' in column 'stars' (row 5) maps onto none of the classes",
    ),
    "an integer label beyond the classes": (
        lambda tmp: [{"name": "films", "data_files": {"train": write_table(tmp / "f.parquet", film_rows(9) + [{"text": "a third", "label": 2}])}}],
        {}, "source 'films', split 'train' ({tmp}/f.parquet): label 2 in column 'label' (row 9) maps onto none",
    ),
    "a mapping onto a class that does not exist": (
        lambda tmp: [shop(tmp, labels={"good": "postive", "bad": "negative"})], {},
        "source 'shop': labels maps onto 'postive', which is not one of the classes ['negative', 'positive']",
    ),
    "a text column the source does not have": (
        lambda tmp: [shop(tmp, text_column="text")], {},
        "source 'shop', split 'train' ({tmp}/shop-train.csv) has no column 'text'",
    ),
    "sources without label_names": (
        lambda tmp: [shop(tmp), films(tmp)], {"label_names": None},
        "data.sources needs data.label_names",
    ),
    "two sources of one name": (
        lambda tmp: [shop(tmp), films(tmp, name="shop")], {},
        "source names must differ; repeated: shop",
    ),
    "a source name with a space": (
        lambda tmp: [shop(tmp, name="my shop")], {},
        "source name 'my shop': use letters, digits, '_' and '-' only",
    ),
    "a source name with a slash": (
        lambda tmp: [shop(tmp, name="shop/2")], {},
        "source name 'shop/2'",
    ),
    "a weight of 0": (
        lambda tmp: [shop(tmp, weight=0)], {},
        "source 'shop': weight must be above 0, got 0",
    ),
    "a negative weight": (
        lambda tmp: [shop(tmp, weight=-1.5)], {},
        "source 'shop': weight must be above 0, got -1.5",
    ),
    "a source without a train split": (
        lambda tmp: [shop(tmp), films(tmp) | {"data_files": {"validation": write_table(tmp / "v.parquet", film_rows(8))}}], {},
        "source 'films' has no 'train' split",
    ),
    "a source with both files and a hub id": (
        lambda tmp: [shop(tmp, dataset="stanfordnlp/imdb")], {},
        "source 'shop': give either data_files (local files per split) or dataset (a hub id), not both",
    ),
    "a source with neither files nor a hub id": (
        lambda tmp: [{"name": "nowhere"}], {},
        "source 'nowhere': give either data_files",
    ),
    "an empty list of sources": (
        lambda tmp: [], {},
        "data.sources is empty",
    ),
    "both sources and data_files": (
        lambda tmp: [shop(tmp)], {"data_files": {"train": "train.parquet"}},
        "give one of data.data_files (local files per split), data.dataset (a hub id) or data.sources",
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
def test_bad_sources_fail_with_one_line_naming_the_problem(name, tmp_path):
    make_sources, options, expected = CASES[name]
    with pytest.raises(ConfigError) as error:
        module(make_sources(tmp_path), **options).prepare()
    message = str(error.value)
    assert len(message.splitlines()) == 1, message
    assert expected.format(tmp=tmp_path) in message


def test_an_unmapped_label_counts_the_rows_it_affects(tmp_path):
    rows = shop_rows(40)
    for row in rows[10:14]:
        row["stars"] = "meh"
    source = shop(tmp_path) | {"data_files": {"train": write_table(tmp_path / "meh.csv", rows)}}
    with pytest.raises(ConfigError, match=r"\(row 10\) .* 4 rows affected"):
        module([source]).prepare()


# --- sampling weights: the sampler ----------------------------------------------------------------------

# Two groups of examples: 0 (90 examples) and 1 (50 examples), lengths at random.
GROUPS = np.array([0] * 90 + [1] * 50)
LENGTHS = np.random.default_rng(0).integers(1, 60, size=len(GROUPS))


def epoch_batches(weights, epoch: int = 0, world: int = 2, shuffle: bool = True, batch_size: int = 8) -> list[list[list[int]]]:
    """Every rank's batches of one epoch."""
    ranks = []
    for rank in range(world):
        sampler = BucketBatchSampler(
            LENGTHS, batch_size, shuffle=shuffle, seed=5, num_replicas=world, rank=rank, bucket_size=4,
            groups=GROUPS if weights is not None else None, group_weights=weights,
        )  # fmt: skip
        sampler.set_epoch(epoch)
        ranks.append(list(sampler))
    return ranks


def draws(ranks: list[list[list[int]]]) -> np.ndarray:
    """How often each example was drawn, over all ranks' batches."""
    return np.bincount([i for batches in ranks for batch in batches for i in batch], minlength=len(GROUPS))


@pytest.mark.parametrize("weights", [(1, 2), (2, 0.5), (0.5, 1.5), (1, 0.3), (1.7, 2.5)])
@pytest.mark.parametrize("epoch", [0, 1])
def test_an_epoch_draws_round_weight_times_size_of_each_group(weights, epoch):
    counts = draws(epoch_batches(weights, epoch))
    for group, weight in enumerate(weights):
        assert counts[GROUPS == group].sum() == round(weight * (GROUPS == group).sum())


@pytest.mark.parametrize("weights", [(1, 2), (2, 0.5), (0.5, 1.5), (1.7, 2.5)])
def test_a_group_s_examples_are_drawn_evenly_whole_passes_first(weights):
    """No example of a group is drawn again before every example of it was drawn once: weight 2 draws
    each example exactly twice, 1.5 each once or twice, 0.5 none twice."""
    counts = draws(epoch_batches(weights))
    for group, weight in enumerate(weights):
        mine = counts[GROUPS == group]
        assert mine.max() - mine.min() <= 1
        assert set(mine.tolist()) <= {int(np.floor(weight)), int(np.ceil(weight))}


@pytest.mark.parametrize("weights", [(1, 2), (2, 0.5), (0.5, 1.5), (1, 0.3)])
@pytest.mark.parametrize("world", [1, 2, 3])
def test_every_rank_gets_the_same_number_of_non_empty_batches_in_every_epoch(weights, world):
    lengths = {len(batches) for epoch in (0, 1, 2) for batches in epoch_batches(weights, epoch, world)}
    assert len(lengths) == 1
    sampler = BucketBatchSampler(LENGTHS, 8, num_replicas=world, groups=GROUPS, group_weights=weights)
    assert lengths == {len(sampler)}
    assert all(1 <= len(batch) <= 8 for batches in epoch_batches(weights, world=world) for batch in batches)


def test_a_weight_below_one_draws_another_subset_each_epoch():
    subsets = [frozenset(np.flatnonzero(draws(epoch_batches((1, 0.5), epoch)) & (GROUPS == 1))) for epoch in range(3)]
    assert all(len(s) == 25 for s in subsets)
    assert len(set(subsets)) == 3
    assert epoch_batches((1, 0.5), epoch=1) == epoch_batches((1, 0.5), epoch=1)  # seeded


@pytest.mark.parametrize(
    "weights, shuffle", [(None, True), (None, False), ((2, 0.5), False), ((1, 1), True)]
)  # fmt: skip
def test_without_weights_or_shuffling_every_example_appears_once(weights, shuffle):
    """Evaluation (no shuffling) reads every example once whatever the weights."""
    assert draws(epoch_batches(weights, shuffle=shuffle)).tolist() == [1] * len(GROUPS)


def test_bad_group_weights_are_refused():
    with pytest.raises(ConfigError, match="group weights must be above 0"):
        BucketBatchSampler(LENGTHS, 8, groups=GROUPS, group_weights=[1, 0])
    with pytest.raises(ConfigError, match="139 group ids for 140 examples"):
        BucketBatchSampler(LENGTHS, 8, groups=GROUPS[1:], group_weights=[1, 1])


# --- sampling weights: through the data module ---------------------------------------------------------


def test_weights_set_each_source_s_share_of_training_while_validation_reads_each_example_once(tmp_path):
    data = module([shop(tmp_path, weight=2), films(tmp_path, weight=0.5)])
    train, validation = data.splits["train"], data.splits["validation"]
    sizes = np.bincount(train.sources)  # shop: 30 after its validation share; films: 20
    assert sizes.tolist() == [30, 20]
    for epoch in (0, 1):
        loader = data.train_dataloader()
        loader.batch_sampler.set_epoch(epoch)  # what Lightning calls each epoch
        sources = torch.cat([batch["sources"] for batch in loader])
        assert torch.bincount(sources).tolist() == [60, 10]
    indices = torch.cat([batch["indices"] for batch in data.val_dataloader()])
    assert sorted(indices.tolist()) == list(range(len(validation)))
    assert np.bincount(validation.sources).tolist() == [10, 10]


def test_sources_of_weight_one_train_on_every_example_once_an_epoch(tmp_path):
    data = module([shop(tmp_path), films(tmp_path)])
    indices = torch.cat([batch["indices"] for batch in data.train_dataloader()])
    assert sorted(indices.tolist()) == list(range(len(data.splits["train"])))


# --- accuracy per source --------------------------------------------------------------------------------


def test_accuracy_per_source_is_exactly_the_share_of_that_source_s_validation_examples_predicted_right(two_sources):
    import pytorch_lightning as pl

    from sentikit.nn.classifier import SentimentClassifier

    data = two_sources
    data.eval_batch_size = 3  # several batches, each mixing the sources
    torch.manual_seed(0)
    model = SentimentClassifier(data.vocabulary_size, data.classes, cell="gru", embedding_dim=8, hidden_size=8)
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    (logged,) = trainer.validate(model, datamodule=data, verbose=False)
    right, seen = np.zeros(2), np.zeros(2)
    model.eval()
    with torch.no_grad():
        for batch in data.val_dataloader():
            correct = (model(batch["token_ids"], batch["lengths"]).argmax(-1) == batch["labels"]).numpy()
            np.add.at(right, batch["sources"].numpy(), correct)
            np.add.at(seen, batch["sources"].numpy(), 1)
    assert seen.tolist() == [10, 10]
    accuracy = right / seen
    assert len(set(accuracy.tolist())) == 2, accuracy  # the sources score apart, so a mix-up would show
    assert logged["val_acc/shop"] == pytest.approx(accuracy[0], abs=1e-7)
    assert logged["val_acc/films"] == pytest.approx(accuracy[1], abs=1e-7)
    assert logged["val_acc"] == pytest.approx(right.sum() / seen.sum(), abs=1e-7)


def test_one_dataset_logs_no_accuracy_per_source(tmp_path):
    import pytorch_lightning as pl

    from sentikit.nn.classifier import SentimentClassifier

    source = films(tmp_path)
    data = SentimentDataModule(data_files=source["data_files"], min_frequency=1, batch_size=4)
    assert data.source_names is None
    model = SentimentClassifier(data.vocabulary_size, data.classes, cell="gru", embedding_dim=8, hidden_size=8)
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    (logged,) = trainer.validate(model, datamodule=data, verbose=False)
    assert not [name for name in logged if "/" in name]
    assert "sources" not in next(iter(data.val_dataloader()))


# --- the command line --------------------------------------------------------------------------------------


def config(tmp: Path, sources: list[dict], **data) -> str:
    import yaml

    settings = {
        "seed_everything": 1,
        "trainer": {"max_epochs": 2, "default_root_dir": str(tmp / "runs"), "callbacks": [], "enable_progress_bar": False},
        "model": {"cell": "gru", "embedding_dim": 8, "hidden_size": 8},
        "data": {"label_names": CLASSES, "batch_size": 8, "min_frequency": 1, "validation_fraction": 0.25, "sources": sources} | data,
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(settings))
    return str(path)


sentikit = sentikit_in_process


def logged(metrics_csv: Path) -> list[dict[str, str]]:
    with open(metrics_csv) as file:
        return list(csv.DictReader(file))


@pytest.mark.slow
def test_fit_logs_accuracy_per_source_and_test_logs_it_for_the_sources_with_a_test_split(tmp_path, monkeypatch, capsys):
    cfg = config(tmp_path, [shop(tmp_path), films(tmp_path, weight=2)])
    assert sentikit(["fit", "-c", cfg], monkeypatch) == 0, capsys.readouterr().err[-3000:]
    runs = tmp_path / "runs" / "lightning_logs"
    validated = [row for row in logged(runs / "version_0" / "metrics.csv") if row["val_acc"]]
    assert len(validated) == 2  # one row per epoch
    for row in validated:
        assert row["val_acc/shop"] and row["val_acc/films"]
        # 10 validation reviews each: the overall accuracy is the mean of the two
        assert float(row["val_acc"]) == pytest.approx((float(row["val_acc/shop"]) + float(row["val_acc/films"])) / 2, abs=1e-6)
    best = runs / "version_0" / "checkpoints" / "best.ckpt"
    assert sentikit(["test", "-c", cfg, "--ckpt_path", str(best)], monkeypatch) == 0, capsys.readouterr().err[-3000:]
    (tested,) = logged(runs / "version_1" / "metrics.csv")
    assert "test_acc/shop" in tested and "test_acc/films" not in tested  # the films have no test split
    assert tested["test_acc/shop"] == tested["test_acc"]  # the shop is the whole test split


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"weight": 0}, "sentikit: error: source 'films': weight must be above 0, got 0"),
        ({"name": "my films"}, "sentikit: error: source name 'my films': use letters, digits, '_' and '-' only"),
        ({"labels": {0: "negative", 1: "postive"}}, "sentikit: error: source 'films': labels maps onto 'postive'"),
    ],
)
def test_a_bad_source_in_a_config_is_one_error_line(change, expected, tmp_path, monkeypatch, capsys):
    cfg = config(tmp_path, [shop(tmp_path), films(tmp_path) | change])
    code = sentikit(["fit", "-c", cfg], monkeypatch)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("sentikit: error:")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in err, err[-2000:]
    assert errors[0].startswith(expected)


@pytest.mark.slow  # a fit, once it passes
def test_labels_spelled_yes_and_no_in_a_config_map_as_written(tmp_path, monkeypatch, capsys):
    rows = [{"text": f"film {i} felt {'moving' if i % 2 else 'dull'}", "liked": "yes" if i % 2 else "no"} for i in range(40)]
    source = {"name": "liked", "data_files": {"train": write_table(tmp_path / "liked.csv", rows)}, "label_column": "liked"}
    cfg = config(tmp_path, [source], validation_fraction=0.25)
    # Written as a user would, unquoted: yaml.safe_dump would quote them.
    Path(cfg).write_text(Path(cfg).read_text().replace("label_column: liked", "label_column: liked\n    labels: {yes: positive, no: negative}"))
    code = sentikit(["fit", "-c", cfg, "--trainer.max_epochs", "1"], monkeypatch)
    assert code == 0, capsys.readouterr().err[-2000:]


def test_a_class_too_small_to_carve_validation_from_is_named_in_one_line(tmp_path):
    rows = [{"text": f"review {i}", "label": 1 if i == 0 else 0} for i in range(5)]
    source = {"name": "tiny", "data_files": {"train": write_table(tmp_path / "tiny.csv", rows)}}
    with pytest.raises(ConfigError, match="^source 'tiny': cannot hold 0.1 of train out for validation stratified by label"):
        SentimentDataModule(sources=[source], label_names=["negative", "positive"]).prepare()
