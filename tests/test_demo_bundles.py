"""The demo bundles shipped in data/bundles: loadable, small, and as accurate as their meta.json says."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from sentikit.bundle.bundle import evaluate_bundle, load_bundle

from conftest import REPO, SST2

BUNDLES = REPO / "data" / "bundles"
ZH_SHOPPING = REPO / "data" / "zh_shopping"
CELLS = ["rnn", "lstm", "gru"]


def measure(bundle, path) -> dict:
    table = pq.read_table(path)
    return evaluate_bundle(bundle, table.column("text").to_pylist(), table.column("label").to_pylist())


def remeasure(bundle, split, examples: int, floor: float) -> None:
    measured = measure(bundle, split)
    assert measured["examples"] == bundle.meta["validation"]["examples"] == examples
    assert measured["accuracy"] == pytest.approx(bundle.meta["validation"]["accuracy"], abs=1e-9)
    assert measured["accuracy"] > floor


@pytest.mark.parametrize("cell", CELLS)
def test_each_english_demo_bundle_reaches_its_recorded_validation_accuracy(cell):
    bundle = load_bundle(BUNDLES / f"sst2-{cell}")
    assert bundle.meta["cell"] == cell and bundle.label_names == ["negative", "positive"]
    remeasure(bundle, SST2 / "validation.parquet", 872, 0.8)


@pytest.mark.parametrize("cell", CELLS)
def test_each_general_english_bundle_reaches_its_recorded_sst2_validation_accuracy(cell):
    """The app's English models (SST-2, IMDB and Amazon together) are scored on SST-2 validation like the
    SST-2-only ones, so the two sets of bundles compare on the same sentences."""
    bundle = load_bundle(BUNDLES / f"english-{cell}")
    assert bundle.meta["cell"] == cell and bundle.label_names == ["negative", "positive"]
    remeasure(bundle, SST2 / "validation.parquet", 872, 0.8)


# IMDB is not shipped: its test split is re-measured where a copy is in data/imdb (data/README.md).
ENGLISH_SCORES = [
    ("data/sst2/test.parquet", 1821, 0.75),
    ("data/amazon/electronics/validation.parquet", 300, 0.75),
    ("data/amazon/kitchen/validation.parquet", 300, 0.75),
    pytest.param("data/imdb/test.parquet", 25_000, 0.8, marks=pytest.mark.skipif(
        not (REPO / "data/imdb/test.parquet").is_file(), reason="no copy of IMDB in data/imdb (not shipped)")),
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize(("path", "examples", "floor"), ENGLISH_SCORES)
def test_each_general_english_bundle_reaches_its_recorded_held_out_scores(cell, path, examples, floor):
    bundle = load_bundle(BUNDLES / f"english-{cell}")
    (recorded,) = [s for s in bundle.meta["scores"] if s["file"] == path]
    measured = measure(bundle, REPO / path)
    assert measured["examples"] == recorded["examples"] == examples
    assert measured["accuracy"] == pytest.approx(recorded["accuracy"], abs=1e-9)
    assert measured["accuracy"] > floor


@pytest.mark.slow
@pytest.mark.parametrize("cell", CELLS)
def test_each_chinese_demo_bundle_reaches_its_recorded_validation_accuracy(cell):
    bundle = load_bundle(BUNDLES / f"zh-shopping-{cell}")
    assert bundle.meta["cell"] == cell and bundle.label_names == ["negative", "positive"]
    remeasure(bundle, ZH_SHOPPING / "validation.parquet", 5270, 0.9)


@pytest.mark.parametrize(
    ("name", "limit"),
    [(f"sst2-{c}", 5_000_000) for c in CELLS] + [(f"english-{c}", 12_000_000) for c in CELLS] + [(f"zh-shopping-{c}", 10_000_000) for c in CELLS],
)
def test_each_demo_bundle_stays_small(name, limit):
    assert sum(f.stat().st_size for f in (BUNDLES / name).iterdir()) <= limit
