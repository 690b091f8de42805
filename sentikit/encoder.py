"""The swappable recurrent encoder: PyTorch's fused `nn.RNN`, `nn.LSTM` or `nn.GRU` on packed sequences.

Packing means the recurrence stops at each review's true length: padding never changes a result, and
the final state `h_T` really is the state after the last word (in both directions when bidirectional).
That final state is the default summary of a review because the gates issue splits it exactly into
per-word writes; mean and max pooling over time are there to compare against.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from sentikit.errors import ConfigError

Cell = Literal["rnn", "lstm", "gru"]
Pooling = Literal["last", "mean", "max"]


class RecurrentEncoder(nn.Module):
    """Encodes a padded batch of embedded reviews into one vector per review.

    Args:
        input_size: size of each input vector (the embedding size).
        cell: `rnn` (`h_t = tanh(W_ih x_t + W_hh h_{t-1} + b)`), `lstm` (input/forget/output gates and a
            cell state) or `gru` (reset/update gates). See `../shared/REFERENCE.md` for the equations.
        hidden_size: units per direction and layer.
        num_layers: stacked recurrent layers.
        bidirectional: also read each review right to left; the two final states are concatenated.
        dropout: dropout between stacked layers (needs `num_layers > 1`).
        input_dropout: dropout on the input vectors (embedding dropout).
        pooling: `last` (final hidden state of the top layer), `mean` or `max` over its outputs.
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
        if pooling not in ("last", "mean", "max"):
            raise ConfigError(f"unknown pooling {pooling!r}; choose one of 'last', 'mean', 'max'")
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
    def output_size(self) -> int:
        return self.rnn.hidden_size * self.num_directions

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """`inputs` (batch, time, input_size), right-padded; `lengths` (batch,) -> (batch, output_size)."""
        packed = pack_padded_sequence(self.input_dropout(inputs), lengths.cpu(), batch_first=True, enforce_sorted=False)
        outputs, state = self.rnn(packed)
        if self.pooling == "last":
            h_n = state[0] if isinstance(state, tuple) else state  # (layers * directions, batch, hidden): the LSTM adds c_n
            top = h_n[-self.num_directions :]  # the top layer: forward, then backward
            return top.transpose(0, 1).reshape(inputs.shape[0], self.output_size)
        padded, _ = pad_packed_sequence(outputs, batch_first=True)  # (batch, time, output_size)
        mask = torch.arange(padded.shape[1], device=padded.device)[None, :] < lengths.to(padded.device)[:, None]
        if self.pooling == "mean":
            return (padded * mask[..., None]).sum(1) / lengths.to(padded)[:, None]
        return padded.masked_fill(~mask[..., None], float("-inf")).amax(1)


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
