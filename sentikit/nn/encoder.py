"""The swappable recurrent encoder: PyTorch's fused `nn.RNN`, `nn.LSTM` or `nn.GRU` on packed sequences.

Packing means the recurrence stops at each review's true length: padding never changes a result, and
the final state `h_T` really is the state after the last word (in both directions when bidirectional).
That final state is the default summary of a review because the gates issue splits it exactly into
per-word writes; mean and max pooling over time (and both side by side, `max_mean`) are there to compare
against, and read long documents better.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from sentikit.errors import ConfigError
from sentikit.nn.recurrence import direction_weights, reversal_index, run_direction

Cell = Literal["rnn", "lstm", "gru"]
Pooling = Literal["last", "mean", "max", "max_mean"]


class RecurrentEncoder(nn.Module):
    """Encodes a padded batch of embedded reviews into one vector per review.

    Args:
        input_size: size of each input vector (the embedding size).
        cell: `rnn` (`h_t = tanh(W_ih x_t + W_hh h_{t-1} + b)`), `lstm` (input/forget/output gates and a
            cell state) or `gru` (reset/update gates); `docs/explanations.md` writes out the equations.
        hidden_size: units per direction and layer.
        num_layers: stacked recurrent layers.
        bidirectional: also read each review right to left; the two final states are concatenated.
        dropout: dropout between stacked layers (needs `num_layers > 1`).
        input_dropout: dropout on the input vectors (embedding dropout).
        pooling: `last` (final hidden state of the top layer), `mean` or `max` over its outputs, or
            `max_mean`, the two side by side (twice the size): the max keeps the strongest evidence for
            each unit wherever it occurs, the mean how much of the review carries it.
    """

    def __init__(
        self,
        input_size: int,
        cell: Cell = "lstm",
        hidden_size: int = 256,
        num_layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.0,
        input_dropout: float = 0.0,
        pooling: Pooling = "last",
    ) -> None:
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            if value < 1:
                raise ConfigError(f"{name} must be at least 1, got {value}")
        for name, value in (("dropout", dropout), ("input_dropout", input_dropout)):
            if not 0 <= value < 1:
                raise ConfigError(f"{name} must lie in [0, 1), got {value}")
        if pooling not in get_args(Pooling):
            raise ConfigError(f"unknown pooling {pooling!r}; choose one of {', '.join(map(repr, get_args(Pooling)))}")
        options = dict(
            input_size=input_size,
            hidden_size=hidden_size,
            num_layers=num_layers,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
            batch_first=True,
        )
        if cell == "rnn":
            self.rnn = nn.RNN(nonlinearity="tanh", **options)
        elif cell == "lstm":
            self.rnn = nn.LSTM(**options)
            _open_forget_gates(self.rnn)
        elif cell == "gru":
            self.rnn = nn.GRU(**options)
        else:
            raise ConfigError(f"unknown cell {cell!r}; choose one of 'rnn', 'lstm', 'gru'")
        self.cell, self.pooling = cell, pooling
        self.input_dropout = nn.Dropout(input_dropout)
        self.num_directions = 2 if bidirectional else 1

    @property
    def state_size(self) -> int:
        """Size of the top layer's output at one step: its directions side by side."""
        return self.rnn.hidden_size * self.num_directions

    @property
    def output_size(self) -> int:
        """Size of the summary of a review that `forward` returns."""
        return 2 * self.state_size if self.pooling == "max_mean" else self.state_size

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """`inputs` (batch, time, input_size), right-padded; `lengths` (batch,) -> (batch, output_size)."""
        inputs = self.input_dropout(inputs)
        if self.training and inputs.device.type == "cpu":
            # On the CPU the fused modules' backward pass over packed sequences is many times slower than
            # over plain tensors (benchmarks/recurrence_speed.py), so training there takes the exact
            # unpacked route (`sentikit.nn.recurrence`); inference keeps the packed one.
            return self.pool(self.unpacked_outputs(inputs, lengths), lengths)
        packed = pack_padded_sequence(inputs, lengths.cpu(), batch_first=True, enforce_sorted=False)
        outputs, state = self.rnn(packed)
        if self.pooling == "last":
            h_n = state[0] if isinstance(state, tuple) else state  # (layers * directions, batch, hidden): the LSTM adds c_n
            top = h_n[-self.num_directions :]  # the top layer: forward, then backward
            return top.transpose(0, 1).reshape(inputs.shape[0], self.state_size)
        padded, _ = pad_packed_sequence(outputs, batch_first=True)  # (batch, time, state_size)
        return self.pool(padded, lengths)

    def unpacked_outputs(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """`(batch, time, state_size)`: the top layer's outputs, equal to the packed module's at every
        position before each review's length (junk after it), computed without packing
        (`sentikit.nn.recurrence`), with dropout between layers as the fused module applies it."""
        index = reversal_index(lengths.to(inputs.device), inputs.shape[1])[:, :, None]  # (batch, time, 1)
        x = inputs
        for layer in range(self.rnn.num_layers):
            if layer > 0:
                x = F.dropout(x, self.rnn.dropout, self.training)
            forward_weights = direction_weights(self.rnn._flat_weights, layer, 0, self.rnn.num_layers, self.num_directions)
            outputs = [run_direction(self.cell, x, forward_weights, self.training)]
            if self.num_directions == 2:
                backward_weights = direction_weights(self.rnn._flat_weights, layer, 1, self.rnn.num_layers, self.num_directions)
                reversed_x = x.gather(1, index.expand(-1, -1, x.shape[-1]))
                backward = run_direction(self.cell, reversed_x, backward_weights, self.training)
                outputs.append(backward.gather(1, index.expand(-1, -1, backward.shape[-1])))
            x = torch.cat(outputs, dim=-1)  # (batch, time, directions * hidden)
        return x

    def pool(self, outputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """`(batch, output_size)` from the top layer's `(batch, time, state_size)` outputs, ignoring
        positions at or past each review's length."""
        lengths = lengths.to(outputs.device)
        if self.pooling == "last":
            hidden = self.rnn.hidden_size
            last = (lengths - 1)[:, None, None].expand(-1, 1, hidden)
            summary = [outputs[..., :hidden].gather(1, last)[:, 0]]  # forward: at the last token
            if self.num_directions == 2:
                summary.append(outputs[:, 0, hidden:])  # backward: its final state is at the first token
            return torch.cat(summary, dim=-1)
        valid = (torch.arange(outputs.shape[1], device=outputs.device)[None, :] < lengths[:, None])[..., None]
        if self.pooling == "mean":
            return _masked_mean(outputs, valid, lengths)
        top = outputs.masked_fill(~valid, float("-inf")).amax(1)
        if self.pooling == "max":
            return top
        return torch.cat([top, _masked_mean(outputs, valid, lengths)], dim=-1)


def _masked_mean(outputs: torch.Tensor, valid: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """`(batch, features)`: the mean over each review's own positions (`valid`, `(batch, time, 1)`)."""
    return (outputs * valid).sum(1) / lengths[:, None].to(outputs.dtype)


def _open_forget_gates(lstm: nn.LSTM) -> None:
    """Start with forget gates leaning open (bias 1), so early training does not erase the cell state.

    PyTorch stacks the gates as (i, f, g, o) in each bias vector and adds `b_ih + b_hh`.
    """
    hidden = lstm.hidden_size
    with torch.no_grad():
        for name, bias in lstm.named_parameters():
            if name.startswith("bias_ih"):
                bias[hidden : 2 * hidden] = 1.0
            elif name.startswith("bias_hh"):
                bias[hidden : 2 * hidden] = 0.0
