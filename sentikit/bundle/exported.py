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

That route is `RecurrentEncoder.unpacked_outputs` and `pool`, which CPU training takes as well.

The program has `forward(token_ids, lengths) -> logits` only: no `explain`. It pays for all
`input_length` steps whatever the review's length, which is why TorchScript stays the default format.
"""

from __future__ import annotations

import io

import torch
from torch import Tensor, nn

from sentikit.nn.classifier import SentimentClassifier


class UnpackedClassifier(nn.Module):
    """`SentimentClassifier`'s inference on right-padded input, without packing: the encoder's
    `unpacked_outputs` and `pool` (module docstring). Shares the classifier's parameters."""

    def __init__(self, model: SentimentClassifier) -> None:
        super().__init__()
        self.embedding, self.encoder, self.head = model.embedding, model.encoder, model.head

    def forward(self, token_ids: Tensor, lengths: Tensor) -> Tensor:
        outputs = self.encoder.unpacked_outputs(self.embedding(token_ids), lengths)
        return self.head(self.encoder.pool(outputs, lengths))


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
