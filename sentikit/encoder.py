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
from sentikit.gates import reversal_index

Cell = Literal["rnn", "lstm", "gru"]
Pooling = Literal["last", "mean", "max", "max_mean"]


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
        recurrent_dropout: DropConnect on the hidden-to-hidden weights (`weight_hh`, the "weight drop" of
            Merity et al. 2018): each training batch cuts this share of the recurrent connections, the
            same ones at every time step, so the memory itself is regularised without a per-step mask
            that would break the fused kernels. Training with it takes the unpacked route on every device.
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
        recurrent_dropout: float = 0.0,
        pooling: Pooling = "last",
    ) -> None:
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            if value < 1:
                raise ConfigError(f"{name} must be at least 1, got {value}")
        for name, value in (("dropout", dropout), ("input_dropout", input_dropout), ("recurrent_dropout", recurrent_dropout)):
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
        self.recurrent_dropout: float = recurrent_dropout
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
        if self.training and (inputs.device.type == "cpu" or self.recurrent_dropout > 0):
            # On the CPU the fused modules' backward pass over packed sequences is slow: a training step
            # of 200 steps took 17x as long for a BiLSTM and 12x for a BiGRU (torch 2.13,
            # benchmarks/recurrence_speed.py) as over plain tensors.
            # Training there takes the exact unpacked route; inference keeps the packed one. So does
            # training with recurrent dropout anywhere: the route hands each direction its weights.
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
        position before each review's length (garbage after it), computed without packing:

        - each direction of each layer runs the fused op on its own from a zero state, on right-padded
          input: padding comes after a review's last token, so it cannot reach the review's states;
        - the backward direction reads each review reversed WITHIN its length (`reversal_index`), and its
          outputs are put back in text order with the same index;
        - dropout between layers as the fused module applies it.
        """
        index = reversal_index(lengths.to(inputs.device), inputs.shape[1])[:, :, None]  # (batch, time, 1)
        x = inputs
        for layer in range(self.rnn.num_layers):
            if layer > 0:
                x = F.dropout(x, self.rnn.dropout, self.training)
            outputs = [self._run_direction(x, layer, 0)]
            if self.num_directions == 2:
                backward = self._run_direction(x.gather(1, index.expand(-1, -1, x.shape[-1])), layer, 1)
                outputs.append(backward.gather(1, index.expand(-1, -1, backward.shape[-1])))
            x = torch.cat(outputs, dim=-1)  # (batch, time, directions * hidden)
        return x

    def one_way_outputs(self, inputs: torch.Tensor, lengths: torch.Tensor, direction: int) -> torch.Tensor:
        """`(batch, time, hidden)`: the stack of one direction alone, in its own reading order (backward:
        each review reversed within its length), valid before each review's length.

        Every layer above the first reads only its own direction's outputs below it: the columns of
        `weight_ih` that take the other direction's are left out. In the bidirectional stack the second
        layer's forward state at word t has seen, through the first layer's backward outputs, the words
        after t; this way it has not, so its state at t can be trained to predict word t + 1 (the
        language model of `sentikit.language_model`, which trains the encoder before the classifier)."""
        x = self.input_dropout(inputs)
        if direction == 1:
            index = reversal_index(lengths.to(x.device), x.shape[1])[:, :, None]
            x = x.gather(1, index.expand(-1, -1, x.shape[-1]))
        hidden = self.rnn.hidden_size
        for layer in range(self.rnn.num_layers):
            if layer > 0:
                x = F.dropout(x, self.rnn.dropout, self.training)
            mixed = layer > 0 and self.num_directions == 2  # this layer's input holds both directions
            x = self._run_direction(x, layer, direction, direction * hidden if mixed else 0)
        return x

    def _run_direction(self, x: torch.Tensor, layer: int, direction: int, first_column: int = 0) -> torch.Tensor:
        """`(batch, time, hidden)`: one direction of one layer with the module's own weights, fused.
        An input `x` narrower than the layer's reads only that many input-weight columns, from
        `first_column` on (`one_way_outputs`). TorchScript compiles this (through `PortableClassifier`)."""
        weights = self.rnn._flat_weights
        per = len(weights) // (self.rnn.num_layers * self.num_directions)
        first = (layer * self.num_directions + direction) * per
        own = weights[first : first + per]
        if x.shape[-1] != own[0].shape[1]:
            own = [own[0][:, first_column : first_column + x.shape[-1]].contiguous()] + own[1:]
        if self.training and self.recurrent_dropout > 0:  # one mask for the whole batch and every step
            own = [own[0], F.dropout(own[1], self.recurrent_dropout, True)] + own[2:]
        h0 = x.new_zeros(1, x.shape[0], self.rnn.hidden_size)
        if self.cell == "lstm":
            return torch.lstm(x, [h0, h0], own, True, 1, 0.0, self.training, False, True)[0]
        if self.cell == "gru":
            return torch.gru(x, h0, own, True, 1, 0.0, self.training, False, True)[0]
        return torch.rnn_tanh(x, h0, own, True, 1, 0.0, self.training, False, True)[0]

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
