"""The trained classifier as one TorchScript-compatible module: predict, read the gates, measure memory.

`PortableClassifier` holds the three parts a trained `SentimentClassifier` reads a review with (the
embedding, the fused recurrent encoder and the linear head; its own dropout and training state stay
behind) and adds the two readings that explain a prediction:

- `explain`: the gate replay of `gates/replay.py` on the same weights, with the exact per-token split of the
  logits and the retention of each token's write in the final memory;
- `memory`: `||d h_T / d x_t||`, how strongly the final forward state still depends on each input.

The code is written once for two uses. `Explainer` runs it eagerly on a checkpoint's model (sharing
its parameters, copying nothing); `bundle.export_bundle` compiles it with `torch.jit.script`, so a bundle
explains with exactly the code a checkpoint does, and a user without sentikit can call
`torch.jit.load("model.pt").explain(token_ids, lengths)`.
"""

from typing import TYPE_CHECKING, Dict, List

import torch
from torch import Tensor, nn

from sentikit.nn.encoder import RecurrentEncoder
from sentikit.gates.contributions import token_contributions
from sentikit.gates.replay import at_final_step, in_text_order, replay_reading, retained_writes

if TYPE_CHECKING:
    from sentikit.nn.classifier import SentimentClassifier

# How explanations name each recorded gate (PyTorch's symbols). The GRU's `z` is PyTorch's update gate:
# the share of the OLD state kept, `h_t = (1 - z_t) * n_t + z_t * h_{t-1}`.
GATE_NAMES: dict[str, dict[str, str]] = {
    "lstm": {"input": "i", "forget": "f", "output": "o"},
    "gru": {"reset": "r", "update": "z"},
    "rnn": {},
}


class PortableClassifier(nn.Module):
    """`embedding -> encoder -> head`, with the gate readings, in TorchScript-compatible code.

    Args:
        embedding: the word vectors (`PAD_ID` row zero).
        encoder: the `RecurrentEncoder` (fused `nn.RNN`/`nn.LSTM`/`nn.GRU`, packed sequences).
        head: the linear layer from the encoder's summary to the logits.
        label_names: the classes in id order (kept as an attribute of the scripted module too).

    Every method takes right-padded `token_ids` `(batch, time)` and their `lengths` `(batch,)`.
    """

    # Declared for TorchScript (which reads class annotations, and only the `typing` spellings here).
    gate_names: Dict[str, str]
    label_names: List[str]

    def __init__(self, embedding: nn.Embedding, encoder: RecurrentEncoder, head: nn.Linear, label_names: list[str]) -> None:
        super().__init__()
        self.embedding, self.encoder, self.head = embedding, encoder, head
        self.cell: str = encoder.cell
        self.pooling: str = encoder.pooling
        self.directions: int = encoder.num_directions
        self.num_layers: int = encoder.rnn.num_layers
        self.hidden_size: int = encoder.rnn.hidden_size
        # The logits split exactly over the tokens when a gated cell is read through its final state.
        self.exact: bool = encoder.cell in ("lstm", "gru") and encoder.pooling == "last"
        self.gate_names = dict(GATE_NAMES[encoder.cell])
        self.label_names = list(label_names)

    @classmethod
    def from_classifier(cls, model: "SentimentClassifier") -> "PortableClassifier":
        """The inference part of a trained classifier, sharing its parameters, in eval mode."""
        return cls(model.embedding, model.encoder, model.head, list(model.label_names)).eval()

    def forward(self, token_ids: Tensor, lengths: Tensor) -> Tensor:
        """Logits `(batch, classes)` from the fused module on packed sequences (padding changes nothing)."""
        return self.head(self.encoder(self.embedding(token_ids), lengths))

    @torch.jit.export
    def explain(self, token_ids: Tensor, lengths: Tensor) -> dict[str, Tensor]:
        """The prediction and what the gates did, per token. Keys:

        - `logits` `(batch, classes)`: as `forward` (read off the replay's final states when the head reads
          them, which spares a second pass through the fused module);
        - `gate_<name>` `(batch, time)`: each gate of the top layer (`input`/`forget`/`output` for the LSTM,
          `reset`/`update` for the GRU, PyTorch's conventions) averaged over units and directions;
        - `l<k>.<symbol>` `(directions, batch, time, hidden)`: the full trace of layer `k` (`h`, `c`, `i`, `f`,
          `g`, `o` for the LSTM; `h`, `r`, `z`, `n` for the GRU; `h` for the RNN), text order;
        - when the split is exact (`self.exact`): `contributions` `(batch, time, classes)`, each token's part
          of the logits (they add up to `logits - head.bias`), and `retention` `(batch, time)`, the share of
          the final memory that the token's write still holds (`|u_t|` or `|v_t|` summed over units and
          directions, normalised over the review).

        Padded positions are zero."""
        with torch.no_grad():
            embedded = self.embedding(token_ids)  # (batch, time, embedding)
            weights, candidates, layer_states = replay_reading(self.cell, self.encoder.rnn._flat_weights, self.num_layers, self.directions, embedded, lengths)
            traces = in_text_order(layer_states, lengths)
            if self.pooling == "last":
                summary = torch.cat(at_final_step(traces[-1]["h"], lengths).unbind(0), dim=-1)  # (batch, directions * hidden)
            else:
                summary = self.encoder(embedded, lengths)
            result: dict[str, Tensor] = {"logits": self.head(summary)}
            for layer, states in enumerate(traces):
                for symbol, value in states.items():
                    result["l" + str(layer) + "." + symbol] = value
            top = traces[-1]
            for name, symbol in self.gate_names.items():
                result["gate_" + name] = top[symbol].mean(-1).mean(0)
            if self.exact:
                result["contributions"] = self._contributions(lengths, weights, candidates, layer_states)
                result["retention"] = self._retention(top, lengths)
        return result

    @torch.jit.export
    def contributions(self, token_ids: Tensor, lengths: Tensor) -> Tensor:
        """`(batch, time, classes)`: `explain`'s `contributions` alone (no forward pass, gate means or
        traces kept), for callers that only rank tokens. Needs `self.exact`."""
        with torch.no_grad():
            embedded = self.embedding(token_ids)  # (batch, time, embedding)
            weights, candidates, layer_states = replay_reading(self.cell, self.encoder.rnn._flat_weights, self.num_layers, self.directions, embedded, lengths)
            return self._contributions(lengths, weights, candidates, layer_states)

    def _contributions(self, lengths: Tensor, weights: List[List[Tensor]], candidates: List[List[Tensor]], layer_states: List[Dict[str, Tensor]]) -> Tensor:
        """`(batch, time, classes)`: each token's exact part of the logits (`contributions.py`)."""
        return token_contributions(self.cell, lengths, weights, candidates, layer_states, self.head.weight.detach())

    def _retention(self, top: Dict[str, Tensor], lengths: Tensor) -> Tensor:
        """`(batch, time)`: each token's share of the top layer's final memory (`gates.retained_writes`)."""
        retention = retained_writes(self.cell, top, lengths).abs().sum(-1).sum(0)
        return retention / retention.sum(-1, keepdim=True).clamp_min(1e-12)

    @torch.jit.export
    def memory(self, token_ids: Tensor, lengths: Tensor, probes: Tensor) -> Tensor:
        """`(batch, time)`: `||d h_T / d x_t||` (Frobenius norm), the sensitivity of the top layer's final
        FORWARD state to each input vector: how much the memory at the end still depends on token `t`.

        Estimated with random projections, `E ||J^T v||^2 = ||J||_F^2` for `v ~ N(0, I)`: `probes`
        `(batch * P, hidden)` holds P standard normal vectors per review, review by review, all taken in one
        batched backward pass through the fused ops. Needs gradients enabled; zero at padding."""
        batch = token_ids.shape[0]
        per_review = probes.shape[0] // batch
        embedded = self.embedding(token_ids).detach().repeat_interleave(per_review, 0).requires_grad_(True)
        repeated = lengths.repeat_interleave(per_review)
        # The unpacked route (`RecurrentEncoder.unpacked_outputs`): the same states as the packed module,
        # and a backward pass that stays fast on long reviews, where the packed one is not.
        outputs = self.encoder.unpacked_outputs(embedded, repeated)  # (batch * P, time, directions * hidden)
        last = (repeated - 1)[:, None, None].expand(-1, 1, self.hidden_size)
        final_forward = outputs[:, :, : self.hidden_size].gather(1, last)[:, 0]  # the top layer's forward direction
        gradients = torch.autograd.grad([(final_forward * probes).sum()], [embedded])
        gradient = gradients[0]
        assert gradient is not None
        squared = gradient.pow(2).sum(-1).view(batch, per_review, -1).mean(1)
        return squared.sqrt().detach()
