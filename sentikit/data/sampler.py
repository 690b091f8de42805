"""Length-bucketed batches that shard themselves across DDP ranks.

Recurrent models pay for every padded position, so reviews of similar length should share a batch.
`BucketBatchSampler` shuffles the data, sorts it by length inside buckets of `bucket_size` batches,
cuts batches and shuffles their order: batches are nearly padding-free yet vary from epoch to epoch.

Lightning cannot wrap a custom batch sampler in its `DistributedSampler`, so this sampler shards by
rank itself (train with `use_distributed_sampler=False`): every rank gets a disjoint share of the
batches, all ranks get the same number of batches (DDP would hang otherwise), and every example is
used exactly once per epoch (nothing repeated, nothing dropped, so validation metrics are exact).

With `groups` and `group_weights` (one group per data source) a training epoch draws each group's
examples `weight` times on average instead of once: a fixed number per group, so every epoch, and
every rank, has the same number of batches.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from sentikit.errors import ConfigError


class EpochOrder(Sampler[int]):
    """The order in which one epoch visits the examples: a permutation drawn from `(seed, epoch)`,
    or `0..n-1` without shuffling. Lightning calls `set_epoch` on it at each epoch start (it looks
    for `batch_sampler.sampler.set_epoch`, as for PyTorch's `BatchSampler`).

    With `groups` (a group id per example) and `group_weights`, a shuffled epoch draws
    `round(weight * size)` examples of each group: whole shuffled passes over the group, then the start
    of one more. A weight below 1 thus takes a different random subset each epoch, and no example of a
    group is drawn twice before every example of it has been drawn once."""

    def __init__(
        self,
        num_examples: int,
        shuffle: bool,
        seed: int = 0,
        groups: np.ndarray | None = None,
        group_weights: Sequence[float] | None = None,
    ) -> None:
        self.shuffle, self.seed = shuffle, seed
        self.epoch = 0
        self.members: list[np.ndarray] | None = None
        self.draws: list[int] = []
        if groups is not None and group_weights is not None and shuffle:
            groups = np.asarray(groups)
            if len(groups) != num_examples:
                raise ConfigError(f"{len(groups)} group ids for {num_examples} examples")
            if any(not w > 0 for w in group_weights):
                raise ConfigError(f"group weights must be above 0, got {list(group_weights)}")
            self.members = [np.flatnonzero(groups == g) for g in range(len(group_weights))]
            self.draws = [round(w * len(m)) for w, m in zip(group_weights, self.members)]
            num_examples = sum(self.draws)
        self.num_examples = num_examples

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def rng(self, stream: int = 0) -> np.random.Generator:
        """An independent random stream for this epoch (0: example order; others for callers)."""
        return np.random.default_rng([self.seed, self.epoch, stream])

    def indices(self) -> np.ndarray:
        if self.members is not None:
            rng = self.rng(stream=2)
            drawn = []
            for members, left in zip(self.members, self.draws):
                while left > 0:  # whole shuffled passes, then the start of one more
                    drawn.append(rng.permutation(members)[:left])
                    left -= len(drawn[-1])
            return self.rng().permutation(np.concatenate(drawn))
        if self.shuffle:
            return self.rng().permutation(self.num_examples)
        return np.arange(self.num_examples)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return self.num_examples


class BucketBatchSampler(Sampler[list[int]]):
    """Yields this rank's batches of example indices, grouped by length.

    Args:
        lengths: the length (in tokens) of every example.
        batch_size: the largest batch; batches are split evenly, so some hold one example fewer.
        shuffle: shuffle examples and batch order each epoch (training). Without shuffling (evaluation)
            examples are globally sorted by length, which pads least.
        seed: seed of the shuffling; together with the epoch it fixes the batches exactly.
        num_replicas: the number of DDP processes (the trainer's world size).
        rank: this process's global rank.
        bucket_size: how many batches' worth of shuffled examples are sorted together. Larger buckets
            pad less but make batches less random.
        groups: a group id (0, 1, ...) per example, e.g. its data source. Used only with `group_weights`.
        group_weights: per group, how many times a shuffled epoch draws each of its examples on average
            (`EpochOrder`). Evaluation (no shuffling) reads every example once regardless.
    """

    def __init__(
        self,
        lengths: Sequence[int] | np.ndarray,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        bucket_size: int = 100,
        groups: Sequence[int] | np.ndarray | None = None,
        group_weights: Sequence[float] | None = None,
    ) -> None:
        self.lengths = np.asarray(lengths, dtype=np.int64)
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        if bucket_size < 1:
            raise ConfigError(f"bucket_size must be at least 1, got {bucket_size}")
        if not 0 <= rank < num_replicas:
            raise ConfigError(f"rank {rank} is outside 0..{num_replicas - 1}")
        self.batch_size, self.bucket_size = batch_size, bucket_size
        self.num_replicas, self.rank = num_replicas, rank
        self.sampler = EpochOrder(len(self.lengths), shuffle, seed, groups, group_weights)
        drawn = len(self.sampler)
        if drawn < num_replicas:
            raise ConfigError(f"{drawn} examples cannot be shared among {num_replicas} processes")
        # Round the batch count up to a multiple of the world size: equal shares, nothing dropped.
        batches = math.ceil(drawn / batch_size)
        self.total_batches = math.ceil(batches / num_replicas) * num_replicas
        if self.total_batches > drawn:
            raise ConfigError(
                f"{drawn} examples in batches of {batch_size} cannot give each of "
                f"{num_replicas} processes the same number of non-empty batches; "
                f"use a larger batch_size or fewer processes"
            )

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def global_batches(self) -> list[np.ndarray]:
        """All ranks' batches for the current epoch, in the order they are dealt out."""
        order = self.sampler.indices()
        if self.sampler.shuffle:
            span = self.batch_size * self.bucket_size
            buckets = []
            for k, start in enumerate(range(0, len(order), span)):
                bucket = order[start : start + span]
                bucket = bucket[np.argsort(self.lengths[bucket], kind="stable")]
                # Alternate ascending and descending buckets, so that a batch straddling two
                # buckets joins two long (or two short) ends instead of a short and a long one.
                buckets.append(bucket if k % 2 == 0 else bucket[::-1])
            order = np.concatenate(buckets)
        else:
            order = order[np.argsort(self.lengths[order], kind="stable")]
        batches = np.array_split(order, self.total_batches)
        if self.sampler.shuffle:
            batches = [batches[i] for i in self.sampler.rng(stream=1).permutation(len(batches))]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.global_batches()[self.rank :: self.num_replicas]:
            yield batch.tolist()

    def __len__(self) -> int:
        return self.total_batches // self.num_replicas
