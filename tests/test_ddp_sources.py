"""Several weighted sources under DDP on two CPU processes (gloo): the weights hold across both ranks
together, validation still reads every example of every source exactly once, and both ranks log the same
exact accuracy per source.

The sources (helpers/ddp_sources_probe.py): a shop of 120 reviews in a CSV (review/stars, good/bad), 30
of them carved out for validation, weight 1; films in parquet (text/label, 0/1), 50 to train on and 21
to validate on, weight 1.5.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, write_table

pytestmark = pytest.mark.slow

TRAIN_SIZES = {"shop": 90, "films": 50}
VALIDATION_SIZES = {"shop": 30, "films": 21}


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp-sources")
    shop = [{"review": f"shop item {i} was {'great' if i % 3 else 'awful'}", "stars": "good" if i % 3 else "bad"} for i in range(120)]
    films = [{"text": f"film {i} felt {'moving' if i % 2 else 'dull'}", "label": i % 2} for i in range(71)]
    write_table(out / "shop.csv", shop)
    write_table(out / "films-train.parquet", films[:50])
    write_table(out / "films-validation.parquet", films[50:])
    command = [sys.executable, str(Path(__file__).with_name("helpers") / "ddp_sources_probe.py"), str(out), str(out)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads((out / f"rank{rank}.json").read_text()) for rank in range(2)]


def examples(rank: dict, stage: str, epoch: int) -> list[list]:
    """This rank's examples of one epoch and stage: [index, source(, right)] each, batches joined."""
    return [example for batch in rank["seen"][f"{stage}/{epoch}"] for example in batch]


def test_two_ranks_built_the_same_splits_of_the_expected_sizes(ddp_run):
    assert [r["world_size"] for r in ddp_run] == [2, 2]
    rank0, rank1 = ddp_run
    assert rank0["source_names"] == ["shop", "films"]
    assert rank0["train_sources"] == rank1["train_sources"] and rank0["validation_sources"] == rank1["validation_sources"]
    assert np.bincount(rank0["train_sources"]).tolist() == list(TRAIN_SIZES.values())
    assert np.bincount(rank0["validation_sources"]).tolist() == list(VALIDATION_SIZES.values())


@pytest.mark.parametrize("epoch", [0, 1])
def test_validation_reads_every_example_of_every_source_once_in_disjoint_shares(ddp_run, epoch):
    shares = [[index for index, _, _ in examples(rank, "validation", epoch)] for rank in ddp_run]
    assert not set(shares[0]) & set(shares[1])
    assert sorted(shares[0] + shares[1]) == list(range(sum(VALIDATION_SIZES.values())))
    truth = ddp_run[0]["validation_sources"]
    assert all(truth[index] == source for rank in ddp_run for index, source, _ in examples(rank, "validation", epoch))


@pytest.mark.parametrize("stage", ["train", "validation"])
@pytest.mark.parametrize("epoch", [0, 1])
def test_ranks_run_the_same_number_of_batches(ddp_run, stage, epoch):
    assert len(ddp_run[0]["seen"][f"{stage}/{epoch}"]) == len(ddp_run[1]["seen"][f"{stage}/{epoch}"]) > 1


@pytest.mark.parametrize("epoch", [0, 1])
def test_both_ranks_together_draw_round_weight_times_size_of_each_source(ddp_run, epoch):
    drawn = [example for rank in ddp_run for example in examples(rank, "train", epoch)]
    truth = ddp_run[0]["train_sources"]
    assert all(truth[index] == source for index, source in drawn)
    counts = np.bincount([index for index, _ in drawn], minlength=len(truth))
    shop, films = np.asarray(truth) == 0, np.asarray(truth) == 1
    assert counts[shop].tolist() == [1] * TRAIN_SIZES["shop"]  # weight 1: every example exactly once
    assert counts[films].sum() == round(1.5 * TRAIN_SIZES["films"])
    assert set(counts[films].tolist()) == {1, 2}  # weight 1.5: each once, half of them twice


def test_a_new_epoch_draws_other_films_twice(ddp_run):
    def twice(epoch: int) -> set[int]:
        counts = np.bincount([index for rank in ddp_run for index, _ in examples(rank, "train", epoch)])
        return set(np.flatnonzero(counts == 2).tolist())

    assert twice(0) != twice(1)


@pytest.mark.parametrize("epoch", [0, 1])
def test_both_ranks_log_the_same_exact_accuracy_per_source(ddp_run, epoch):
    """Each rank scored its own share; the logged figure is over both shares, identical on both ranks."""
    right, seen = np.zeros(2), np.zeros(2)
    for rank in ddp_run:
        for _, source, correct in examples(rank, "validation", epoch):
            right[source] += correct
            seen[source] += 1
    logged = [rank["logged"][str(epoch)] for rank in ddp_run]
    for number, name in enumerate(["shop", "films"]):
        assert logged[0][f"val_acc/{name}"] == logged[1][f"val_acc/{name}"] == pytest.approx(right[number] / seen[number], abs=1e-6)
    assert logged[0]["val_acc"] == logged[1]["val_acc"] == pytest.approx(right.sum() / seen.sum(), abs=1e-6)
