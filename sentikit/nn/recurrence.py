"""The recurrence without packing, one direction at a time: the helpers that the encoder's CPU training
route, the gate replay and the exported program all run, written once.

PyTorch's fused `nn.RNN` / `nn.LSTM` / `nn.GRU` read packed sequences, which stop each review's
recurrence at its own length. The same states come out of plain right-padded tensors when

- each direction of each layer runs the fused op on its own, from a zero state: padding comes after a
  review's last token, so it cannot reach that review's states (the states past the end are junk);
- the backward direction reads each review reversed WITHIN its length (`reversal_index`), and its
  outputs are put back in text order with the same index, which is its own inverse.

Every function here is TorchScript-compatible: scripted bundles run them.
"""

from __future__ import annotations

from typing import List

import torch
from torch import Tensor


def reversal_index(lengths: Tensor, time: int) -> Tensor:
    """`(batch, time)` positions that reverse each review within its length and leave padding in place.

    Applying it twice is the identity, so the same index takes a sequence into the backward
    direction's reading order and back."""
    steps = torch.arange(time, device=lengths.device)[None, :]
    lengths = lengths[:, None]
    return torch.where(steps < lengths, lengths - 1 - steps, steps)


def reverse_backward(x: Tensor, index: Tensor) -> Tensor:
    """`(directions, batch, time, ·)` with the backward direction (if any) reversed by `index`
    (`reversal_index`): text order to reading order, and back."""
    if x.shape[0] == 1:
        return x
    if bool((index[:, 0] == index.shape[1] - 1).all()):  # no review is padded: a plain flip, much cheaper than a gather
        return torch.stack([x[0], x[1].flip(1)])
    return torch.stack([x[0], x[1].gather(1, index[:, :, None].expand_as(x[1]))])


def text_order(x: Tensor, lengths: Tensor) -> Tensor:
    """`(directions, batch, time, features)` in reading order -> the same in text order (undo the reversal)."""
    return reverse_backward(x, reversal_index(lengths, x.shape[2]))


def direction_weights(flat_weights: List[Tensor], layer: int, direction: int, num_layers: int, directions: int) -> List[Tensor]:
    """`w_ih, w_hh, b_ih, b_hh` of one direction of one layer of a fused module.

    `flat_weights` is the module's `_flat_weights`: per layer and direction, `w_ih, w_hh` and, with
    biases, `b_ih, b_hh`. A module built with `bias=False` gets zero biases of the right height.
    Reading that list (not the named parameters) keeps the weights shared and TorchScript-compatible."""
    per = len(flat_weights) // (num_layers * directions)
    first = (layer * directions + direction) * per
    own = flat_weights[first : first + per]
    if per == 2:
        zeros = torch.zeros(own[1].shape[0], dtype=own[1].dtype, device=own[1].device)
        own = [own[0], own[1], zeros, zeros]
    return own


def run_direction(cell: str, inputs: Tensor, weights: List[Tensor], train: bool = False) -> Tensor:
    """The outputs `h` `(batch, time, hidden)` of ONE direction of one layer, from the fused kernel, on
    right-padded `inputs` `(batch, time, input)` in its reading order, from a zero state.

    `weights` are that direction's `w_ih, w_hh, b_ih, b_hh` (`direction_weights`); `train` tells the
    kernel whether a backward pass will follow (cuDNN keeps its workspace only then)."""
    h0 = inputs.new_zeros(1, inputs.shape[0], weights[1].shape[1])
    if cell == "lstm":
        return torch.lstm(inputs, [h0, h0], weights, True, 1, 0.0, train, False, True)[0]
    if cell == "gru":
        return torch.gru(inputs, h0, weights, True, 1, 0.0, train, False, True)[0]
    return torch.rnn_tanh(inputs, h0, weights, True, 1, 0.0, train, False, True)[0]
