"""The demo bundles shipped in data/bundles: loadable, small, and as accurate as their meta.json says."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from sentikit.bundle.bundle import evaluate_bundle, load_bundle

from conftest import REPO, SST2

BUNDLES = REPO / "data" / "bundles"
ZH_SHOPPING = REPO / "data" / "zh_shopping"
CELLS = ["rnn", "lstm", "gru"]


def remeasure(bundle, split, examples: int, floor: float) -> None:
    table = pq.read_table(split)
    measured = evaluate_bundle(bundle, table.column("text").to_pylist(), table.column("label").to_pylist())
    assert measured["examples"] == bundle.meta["validation"]["examples"] == examples
    assert measured["accuracy"] == pytest.approx(bundle.meta["validation"]["accuracy"], abs=1e-9)
    assert measured["accuracy"] > floor


@pytest.mark.parametrize("cell", CELLS)
def test_each_english_demo_bundle_reaches_its_recorded_validation_accuracy(cell):
    bundle = load_bundle(BUNDLES / f"sst2-{cell}")
    assert bundle.meta["cell"] == cell and bundle.label_names == ["negative", "positive"]
    remeasure(bundle, SST2 / "validation.parquet", 872, 0.8)


@pytest.mark.slow
@pytest.mark.parametrize("cell", CELLS)
def test_each_chinese_demo_bundle_reaches_its_recorded_validation_accuracy(cell):
    bundle = load_bundle(BUNDLES / f"zh-shopping-{cell}")
    assert bundle.meta["cell"] == cell and bundle.label_names == ["negative", "positive"]
    remeasure(bundle, ZH_SHOPPING / "validation.parquet", 5270, 0.9)


@pytest.mark.parametrize(("name", "limit"), [(f"sst2-{c}", 5_000_000) for c in CELLS] + [(f"zh-shopping-{c}", 10_000_000) for c in CELLS])
def test_each_demo_bundle_stays_small(name, limit):
    assert sum(f.stat().st_size for f in (BUNDLES / name).iterdir()) <= limit
