#!/usr/bin/env python
"""The recurrence alone, per cell: a training step (forward + backward) over packed sequences against the
unpacked route that CPU training takes, and inference, in tokens/s on one batch shape.

`RecurrentEncoder` in training mode on the CPU runs each direction of each layer on its own over right-padded
input (`unpacked_outputs`); in eval mode it packs the batch. Both compute the same function (tests check
outputs and gradients), so this script only asks which is faster. The batch is what bucketing serves: reviews
(64 unless `--batch_size` says otherwise) whose lengths differ by a few tokens. The encoder is bidirectional
with 128-dim inputs and 256 units (configs/imdb-lstm.yaml), one layer unless `--num_layers` says otherwise.
Every setting and route takes its turn in each of `--repeats` rounds and medians are printed, so a busy
machine slows all alike. Denormals are flushed, as `sentikit fit` does (`sentikit.training.denormals`): an untrained
recurrence read through its final state sends denormal gradients to the early steps, and without the flush
they, not the route, would set the pace. `--num_layers 2 3` times deeper stacks side by side (dropout between
layers left out: it costs little), as the question of a third layer in configs/imdb-gru.yaml asks; epochs
timed in different sessions on a shared machine cannot settle such a ratio. `--batch_size 32 64` times batch
sizes side by side in the same way.

    python benchmarks/recurrence_speed.py                 # 50 and 200 steps (about 3 minutes here)
    python benchmarks/recurrence_speed.py --steps 400     # the packed backward pass grows slower still
    python benchmarks/recurrence_speed.py --cells gru --num_layers 2 3 --steps 200
    python benchmarks/recurrence_speed.py --cells gru --num_layers 2 --batch_size 32 64 --steps 250
    python benchmarks/recurrence_speed.py --quick         # small sizes, for CI: figures meaningless
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
import typing

import torch

from sentikit.training.denormals import flush_denormals
from sentikit.nn.encoder import Cell, RecurrentEncoder


def packed_step(encoder: RecurrentEncoder, x: torch.Tensor, lengths: torch.Tensor) -> None:
    """Forward and backward through the packed fused module (what training ran before)."""
    from torch.nn.utils.rnn import pack_padded_sequence

    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    _, state = encoder.rnn(packed)
    (state[0] if isinstance(state, tuple) else state).sum().backward()


def unpacked_step(encoder: RecurrentEncoder, x: torch.Tensor, lengths: torch.Tensor) -> None:
    encoder.pool(encoder.unpacked_outputs(x, lengths), lengths).sum().backward()


def inference(encoder: RecurrentEncoder, x: torch.Tensor, lengths: torch.Tensor) -> None:
    with torch.inference_mode():
        encoder.eval()(x, lengths)
    encoder.train()


def timed(step, encoder: RecurrentEncoder, x: torch.Tensor, lengths: torch.Tensor) -> float:
    inputs = x.detach().requires_grad_(step is not inference)
    started = time.perf_counter()
    step(encoder, inputs, lengths)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, nargs="+", default=[50, 200], help="longest review in the batch")
    cells = list(typing.get_args(Cell))
    parser.add_argument("--cells", nargs="+", choices=cells, default=cells)
    parser.add_argument("--num_layers", type=int, nargs="+", default=[1], help="stack depths to compare")
    parser.add_argument("--batch_size", type=int, nargs="+", default=[64], help="batch sizes to compare")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    with flush_denormals():
        time_the_routes(args)


def time_the_routes(args: argparse.Namespace) -> None:
    inputs, hidden = (16, 16) if args.quick else (128, 256)
    batches = [8] if args.quick else args.batch_size
    steps_list, repeats = ([20] if args.quick else args.steps), (1 if args.quick else args.repeats)
    print(f"\nRecurrence speed: {inputs}-dim inputs, bidirectional, {hidden} units, "
          f"{torch.get_num_threads()} threads; tokens/s, medians of {repeats}\n")
    print("| cell | layers | batch | steps | train, packed | train, unpacked route | speed-up | inference, packed |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    torch.manual_seed(0)
    routes = {"packed": packed_step, "unpacked": unpacked_step, "inference": inference}
    for steps in steps_list:
        # One encoder per cell and depth, read at every batch size: the sizes differ in shape, not weights.
        encoders = {
            (cell, layers): RecurrentEncoder(
                inputs, cell, hidden_size=hidden, num_layers=layers, bidirectional=True, pooling="last"
            ).train()
            for cell, layers in itertools.product(args.cells, args.num_layers)
        }
        batches_of = {}
        for batch in batches:
            lengths = torch.linspace(steps * 0.97, steps, batch).round().long()  # a bucketed batch
            batches_of[batch] = (torch.randn(batch, steps, inputs), lengths)
        settings = list(itertools.product(encoders, batches))
        times = {(key, batch, name): [] for key, batch in settings for name in routes}
        for key, batch in settings:
            timed(unpacked_step, encoders[key], *batches_of[batch])  # warm-up
        for _ in range(repeats):  # each round times every setting and route once, in turn
            for (key, batch), (name, step) in itertools.product(settings, routes.items()):
                times[key, batch, name].append(timed(step, encoders[key], *batches_of[batch]))
        for (cell, layers), batch in settings:
            tokens = int(batches_of[batch][1].sum())
            speed = {name: tokens / statistics.median(times[(cell, layers), batch, name]) for name in routes}
            print(
                f"| {cell} | {layers} | {batch} | {steps} | {speed['packed']:,.0f} | {speed['unpacked']:,.0f} | "
                f"{speed['unpacked'] / speed['packed']:.1f}x | {speed['inference']:,.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
