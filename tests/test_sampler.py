import numpy as np
import pytest

from sentikit.errors import ConfigError
from sentikit.data.sampler import BucketBatchSampler

LENGTHS = np.random.default_rng(0).integers(1, 400, size=1003)


def rank_batches(world: int, shuffle: bool, epoch: int = 0, batch_size: int = 32, seed: int = 7, bucket_size: int = 10):
    samplers = [
        BucketBatchSampler(LENGTHS, batch_size, shuffle=shuffle, seed=seed, num_replicas=world, rank=rank, bucket_size=bucket_size)
        for rank in range(world)
    ]
    for sampler in samplers:
        sampler.set_epoch(epoch)
    return [list(sampler) for sampler in samplers]


@pytest.mark.parametrize("world", [1, 2, 3, 8])
@pytest.mark.parametrize("shuffle", [True, False])
def test_ranks_get_disjoint_shares_that_cover_every_example_once(world, shuffle):
    per_rank = rank_batches(world, shuffle)
    seen = [i for batches in per_rank for batch in batches for i in batch]
    assert sorted(seen) == list(range(len(LENGTHS)))


@pytest.mark.parametrize("world", [1, 2, 3, 8])
def test_all_ranks_get_the_same_number_of_batches_and_len_says_so(world):
    per_rank = rank_batches(world, shuffle=True)
    counts = {len(batches) for batches in per_rank}
    assert len(counts) == 1
    sampler = BucketBatchSampler(LENGTHS, 32, num_replicas=world, rank=0)
    assert counts == {len(sampler)}


def test_no_batch_exceeds_the_batch_size_and_none_is_empty():
    for batches in rank_batches(3, shuffle=True):
        assert all(1 <= len(batch) <= 32 for batch in batches)


def test_same_seed_and_epoch_give_the_same_batches_and_a_new_epoch_reshuffles():
    assert rank_batches(2, True, epoch=1) == rank_batches(2, True, epoch=1)
    assert rank_batches(2, True, epoch=1) != rank_batches(2, True, epoch=2)
    assert rank_batches(2, True, seed=1) != rank_batches(2, True, seed=2)


def padding_fraction(batches):
    padded = sum(len(b) * LENGTHS[b].max() for b in batches)
    return 1 - LENGTHS.sum() / padded


def test_bucketing_pads_far_less_than_random_batches():
    bucketed = [b for batches in rank_batches(1, shuffle=True, batch_size=16, bucket_size=50) for b in batches]
    order = np.random.default_rng(0).permutation(len(LENGTHS))
    random = [order[i : i + 16] for i in range(0, len(order), 16)]
    assert padding_fraction(bucketed) < 0.05
    assert padding_fraction(random) > 0.3


def test_evaluation_batches_are_sorted_by_length():
    (batches,) = rank_batches(1, shuffle=False)
    flat = [i for batch in batches for i in batch]
    assert list(LENGTHS[flat]) == sorted(LENGTHS)


def test_lightning_reseeds_the_epoch_through_batch_sampler_sampler():
    from lightning_fabric.utilities.data import _set_sampler_epoch
    from torch.utils.data import DataLoader

    sampler = BucketBatchSampler(LENGTHS, 32, shuffle=True, seed=3)
    loader = DataLoader(list(range(len(LENGTHS))), batch_sampler=sampler)
    _set_sampler_epoch(loader, 5)
    assert sampler.sampler.epoch == 5


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(batch_size=0), "batch_size"),
        (dict(batch_size=8, num_replicas=2, rank=2), "rank 2"),
        (dict(batch_size=8, bucket_size=0), "bucket_size"),
    ],
)
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        BucketBatchSampler(LENGTHS, **kwargs)


def test_more_processes_than_examples_is_refused():
    with pytest.raises(ConfigError, match="cannot be shared among 4"):
        BucketBatchSampler([3, 4, 5], 2, num_replicas=4, rank=0)


def test_too_few_examples_for_equal_non_empty_shares_is_refused():
    # 3 examples in batches of 1 make 3 batches; 2 processes would need 4, one of them empty.
    with pytest.raises(ConfigError, match="same number of non-empty batches"):
        BucketBatchSampler([5, 6, 7], batch_size=1, num_replicas=2)
    assert len(BucketBatchSampler([5, 6, 7, 8], batch_size=1, num_replicas=2)) == 2
