"""The demo bundles shipped in data/bundles: loadable, small, and as accurate as their meta.json says."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from sentikit.bundle.bundle import evaluate_bundle, load_bundle

from conftest import REPO, SST2

BUNDLES = REPO / "data" / "bundles"


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_each_demo_bundle_reaches_its_recorded_validation_accuracy(cell):
    bundle = load_bundle(BUNDLES / f"sst2-{cell}")
    assert bundle.meta["cell"] == cell and bundle.label_names == ["negative", "positive"]
    table = pq.read_table(SST2 / "validation.parquet")
    measured = evaluate_bundle(bundle, table.column("text").to_pylist(), table.column("label").to_pylist())
    assert measured["examples"] == bundle.meta["validation"]["examples"] == 872
    assert measured["accuracy"] == pytest.approx(bundle.meta["validation"]["accuracy"], abs=1e-9)
    assert measured["accuracy"] > 0.8


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_each_demo_bundle_is_at_most_5_mb(cell):
    assert sum(f.stat().st_size for f in (BUNDLES / f"sst2-{cell}").iterdir()) <= 5_000_000
