"""The classifier without packed sequences, for `torch.export` (`sentikit export --format exported`).

`torch.export` cannot trace `pack_padded_sequence` in torch 2.13, and the fused recurrent ops fix the
number of time steps when traced. So the exported program reads right-padded reviews of a fixed length
(the bundle's `max_length`, recorded as `input_length` in `meta.json`) and gets the same logits as the
packed module another way:

- each direction of each layer runs the fused op on its own, from a zero state, on right-padded input:
  padding comes after a review's last token, so it cannot reach its states;
- the backward direction reads each review reversed WITHIN its length (`gates.reversal_index`), and its
  outputs are put back in text order with the same index;
- the head reads the forward direction's state at each review's last token and the backward one's at
  its first (the "last" pooling), or masks the padding out of the mean or the max.

The program has `forward(token_ids, lengths) -> logits` only: no `explain`. It pays for all
`input_length` steps whatever the review's length, which is why TorchScript stays the default format.
"""

from __future__ import annotations

import io

import torch
from torch import Tensor, nn

from sentikit.gates import reversal_index
from sentikit.model import SentimentClassifier


class UnpackedClassifier(nn.Module):
    """`SentimentClassifier`'s inference on right-padded input, without packing (module docstring).
    Shares the classifier's parameters."""

    def __init__(self, model: SentimentClassifier) -> None:
        super().__init__()
        self.embedding, self.head = model.embedding, model.head
        self.rnn = model.encoder.rnn
        self.cell = model.encoder.cell
        self.pooling = model.encoder.pooling
        self.directions = model.encoder.num_directions

    def run_direction(self, x: Tensor, layer: int, direction: int) -> Tensor:
        """`(batch, time, hidden)`: one direction of one layer, fused, from a zero state."""
        weights = self.rnn._flat_weights
        per = len(weights) // (self.rnn.num_layers * self.directions)
        first = (layer * self.directions + direction) * per
        own = weights[first : first + per]
        h0 = x.new_zeros(1, x.shape[0], self.rnn.hidden_size)
        if self.cell == "lstm":
            return torch.lstm(x, [h0, h0], own, True, 1, 0.0, False, False, True)[0]
        if self.cell == "gru":
            return torch.gru(x, h0, own, True, 1, 0.0, False, False, True)[0]
        return torch.rnn_tanh(x, h0, own, True, 1, 0.0, False, False, True)[0]

    def forward(self, token_ids: Tensor, lengths: Tensor) -> Tensor:
        x = self.embedding(token_ids)  # (batch, time, embedding)
        index = reversal_index(lengths, x.shape[1])[:, :, None]  # (batch, time, 1)
        for layer in range(self.rnn.num_layers):
            outputs = [self.run_direction(x, layer, 0)]
            if self.directions == 2:
                backward = self.run_direction(x.gather(1, index.expand(-1, -1, x.shape[-1])), layer, 1)
                outputs.append(backward.gather(1, index.expand(-1, -1, backward.shape[-1])))
            x = torch.cat(outputs, dim=-1)  # (batch, time, directions * hidden)
        hidden = self.rnn.hidden_size
        if self.pooling == "last":
            last = (lengths - 1)[:, None, None].expand(-1, 1, hidden)
            summary = [x[..., :hidden].gather(1, last)[:, 0]]  # forward: at the last token
            if self.directions == 2:
                summary.append(x[:, 0, hidden:])  # backward: its final state is at the first token
            return self.head(torch.cat(summary, dim=-1))
        valid = (torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None])[..., None]
        if self.pooling == "mean":
            return self.head((x * valid).sum(1) / lengths[:, None].to(x.dtype))
        return self.head(x.masked_fill(~valid, float("-inf")).amax(1))


def export_program(model: SentimentClassifier, input_length: int) -> bytes:
    """The `torch.export` program (`.pt2` bytes) of `model`'s inference for `(batch, input_length)`
    right-padded token ids and `(batch,)` lengths; any batch size."""
    unpacked = UnpackedClassifier(model).eval()
    batch = torch.export.Dim("batch", min=1)
    example_ids = torch.ones(2, input_length, dtype=torch.long)
    example_lengths = torch.tensor([input_length, 1])
    with torch.no_grad():
        program = torch.export.export(
            unpacked, (example_ids, example_lengths), dynamic_shapes={"token_ids": {0: batch}, "lengths": {0: batch}}
        )
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()


class PaddedProgram:
    """A loaded exported program, called like the TorchScript model: right-padded ids of any length up
    to `input_length` are padded out to it (the program's fixed time dimension). Not an `nn.Module`: an
    exported program has no training mode to switch (`.eval()` raises)."""

    exact = False  # no gates split: the program has forward only

    def __init__(self, program: nn.Module, input_length: int, pad_id: int) -> None:
        self.program, self.input_length, self.pad_id = program, input_length, pad_id

    def __call__(self, token_ids: Tensor, lengths: Tensor) -> Tensor:
        missing = self.input_length - token_ids.shape[1]
        if missing < 0:
            raise ValueError(f"this exported model reads at most {self.input_length} tokens, got {token_ids.shape[1]}")
        padded = torch.nn.functional.pad(token_ids, (0, missing), value=self.pad_id)
        return self.program(padded, lengths)
