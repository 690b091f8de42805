"""Two CPU processes under DDP (gloo): every rank gets a disjoint share and the same number of batches."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO


@pytest.fixture(scope="module")
def ddp_run(small_sst2, tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    command = [sys.executable, str(Path(__file__).with_name("helpers") / "ddp_probe.py"), str(out), small_sst2["train"], small_sst2["validation"]]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads((out / f"rank{rank}.json").read_text()) for rank in range(2)]


pytestmark = pytest.mark.slow


def test_two_ranks_ran(ddp_run):
    assert [r["world_size"] for r in ddp_run] == [2, 2]
    assert ddp_run[0]["vocab"] == ddp_run[1]["vocab"]


@pytest.mark.parametrize("stage, size", [("train", 2000), ("validation", 200)])
@pytest.mark.parametrize("epoch", [0, 1])
def test_ranks_see_disjoint_shares_covering_each_split_once(ddp_run, stage, size, epoch):
    shares = [[i for batch in r["seen"][f"{stage}/{epoch}"] for i in batch] for r in ddp_run]
    assert not set(shares[0]) & set(shares[1])
    assert sorted(shares[0] + shares[1]) == list(range(size))


@pytest.mark.parametrize("stage", ["train", "validation"])
def test_ranks_run_the_same_number_of_batches(ddp_run, stage):
    for epoch in (0, 1):
        assert len(ddp_run[0]["seen"][f"{stage}/{epoch}"]) == len(ddp_run[1]["seen"][f"{stage}/{epoch}"])


def test_ranks_end_with_the_same_weights(ddp_run):
    assert ddp_run[0]["weights"] == pytest.approx(ddp_run[1]["weights"], rel=1e-6)


def test_training_batches_change_between_epochs(ddp_run):
    rank0 = ddp_run[0]["seen"]
    assert rank0["train/0"] != rank0["train/1"]
