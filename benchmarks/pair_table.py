#!/usr/bin/env python
"""What a word-pair table (`model.bigram_buckets`) costs a training step, side by side with none.

The model is `configs/imdb-gru.yaml`'s (a two-layer BiGRU over 30,000 words) with 0 and each
`--buckets` count of pair rows. A step is timed in three parts: forward and backward, the AdamW step
(set up as `sentikit.optim` does: decay on matrices only) and an EMA update of every weight, as
`EMAWeightAveraging` does after each step. The last two touch every row of the pair table whatever
the batch holds, so they grow with the table, while forward and backward only read the batch's rows.
The batch is random word ids, `--batch-size` reviews of `--tokens` each. The settings alternate
`--repeats` times after one untimed step each; medians are reported, and the ratio to the model
without pairs is measured in the same run.

    python benchmarks/pair_table.py                   # 0, 131,072 and 524,288 rows, 1 thread
    python benchmarks/pair_table.py --buckets 65536 --tokens 800
    python benchmarks/pair_table.py --quick           # a smoke run for CI: small batch, figures meaningless
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

from sentikit.denormals import flush_denormals
from sentikit.model import SentimentClassifier

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "imdb-gru.yaml"
VOCAB = 30_000
EMA_DECAY = 0.99


class Setting:
    """One model with its optimiser and weight average, ready to take timed steps."""

    def __init__(self, buckets: int, model_options: dict) -> None:
        torch.manual_seed(0)
        self.buckets = buckets
        self.model = SentimentClassifier(VOCAB, ["neg", "pos"], **{**model_options, "bigram_buckets": buckets})
        params = list(self.model.parameters())
        self.optimizer = torch.optim.AdamW(
            [{"params": [p for p in params if p.dim() > 1], "weight_decay": 0.01},
             {"params": [p for p in params if p.dim() <= 1], "weight_decay": 0.0}],
            lr=1e-3,
        )
        self.average = [p.detach().clone() for p in params]
        self.params = params
        self.times: list[tuple[float, float, float]] = []

    def step(self, token_ids: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor) -> tuple[float, float, float]:
        started = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(self.model(token_ids, lengths), labels).backward()
        backward_done = time.perf_counter()
        self.optimizer.step()
        optimizer_done = time.perf_counter()
        with torch.no_grad():
            torch._foreach_lerp_(self.average, [p.detach() for p in self.params], 1 - EMA_DECAY)
        return backward_done - started, optimizer_done - backward_done, time.perf_counter() - optimizer_done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--buckets", type=int, nargs="+", default=[131_072, 524_288], help="pair-table rows to compare with none")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=200, help="tokens per review (default 200)")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per setting, alternating")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="4 reviews of 16 tokens, 8,192 rows, 1 repeat")
    args = parser.parse_args()
    if args.quick:
        args.buckets, args.batch_size, args.tokens, args.repeats = [8192], 4, 16, 1
    if min(args.buckets) <= 0 or args.batch_size <= 0 or args.tokens <= 0 or args.repeats <= 0:
        parser.error("--buckets, --batch-size, --tokens and --repeats must be positive")
    torch.set_num_threads(args.threads)

    model_options = yaml.safe_load(CONFIG.read_text())["model"]
    settings = [Setting(b, model_options) for b in [0, *args.buckets]]
    generator = torch.Generator().manual_seed(0)
    token_ids = torch.randint(2, VOCAB, (args.batch_size, args.tokens), generator=generator)
    lengths = torch.full((args.batch_size,), args.tokens)
    labels = torch.randint(0, 2, (args.batch_size,), generator=generator)

    with flush_denormals():
        for setting in settings:
            setting.step(token_ids, lengths, labels)  # untimed: first-call allocations
        for _ in range(args.repeats):
            for setting in settings:
                setting.times.append(setting.step(token_ids, lengths, labels))

    print(f"{CONFIG.name} model, {args.batch_size} reviews x {args.tokens} tokens, {args.threads} thread(s), "
          f"median of {args.repeats} steps (seconds)")
    print(f"{'pair rows':>10} {'parameters':>12} {'fwd+bwd':>8} {'AdamW':>8} {'EMA':>8} {'step':>8} {'vs none':>8}")
    base = None
    for setting in settings:
        parts = [statistics.median(t[i] for t in setting.times) for i in range(3)]
        total = sum(parts)
        base = base or total
        print(f"{setting.buckets:>10,} {setting.model.num_parameters:>12,} "
              + " ".join(f"{p:>8.3f}" for p in parts) + f" {total:>8.3f} {total / base:>7.2f}x")


if __name__ == "__main__":
    main()
