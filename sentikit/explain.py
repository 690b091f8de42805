"""Explain one prediction word by word: what the gates retained and how much each word pushed each class.

`Explainer(model, tokenizer, max_length).explain(text)` returns a plain, JSON-serialisable dict:

- `label`, `probabilities`, `logits`, and `bias` (the head's bias: per-word contributions plus the bias
  give the logits exactly when `method` is `"gates"`);
- `method`: `"gates"` for an LSTM or GRU read through its final state (the default pooling), where the
  final state is a sum of one write per step and the logits split exactly over the words; `"occlusion"`
  otherwise (the plain RNN, mean/max pooling): each word's contribution is the drop in the logits when it
  is left out, all variants run in one batch;
- `words`: one entry per word of the input (`word`, `start`, `end` as character offsets into `text`),
  with `contributions` (one number per class), `retention` (the share of the final memory that the word's
  write still holds; `None` under occlusion), `memory` (`||d h_T / d x_t||`: how strongly the final forward
  state still depends on the word; small for early words of a plain RNN, the vanishing gradient) and
  `gates` (the gate means over units, over the word's tokens and both directions of the top layer).

Scores are computed per token and summed into the word that the tokenizer's pre-tokenizer cut
(sub-word pieces of one word get one score). `../shared/REFERENCE.md` has the equations.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from tokenizers import Tokenizer

from sentikit.errors import ConfigError
from sentikit.gates import FinalStateSplit, final_state_split, replay
from sentikit.model import SentimentClassifier

Method = Literal["auto", "gates", "occlusion"]

# How the page and the JSON name each recorded gate, in PyTorch's conventions.
GATE_NAMES = {
    "lstm": {"input": "i", "forget": "f", "output": "o"},
    "gru": {"reset": "r", "update": "z"},
    "rnn": {},
}
CONVENTIONS = {
    "lstm": "LSTM (PyTorch): c_t = f_t * c_{t-1} + i_t * g_t, h_t = o_t * tanh(c_t); forget near 1 keeps the old memory.",
    "gru": (
        "GRU (PyTorch): h_t = (1 - z_t) * n_t + z_t * h_{t-1}; the update gate z is the share of the OLD state kept "
        "(many articles call 1 - z the update gate)."
    ),
    "rnn": "RNN: h_t = tanh(W_ih x_t + W_hh h_{t-1} + b); no gates.",
}


@dataclass
class EncodedText:
    """A text as the model reads it, with each token tied to a word of the original text."""

    ids: list[int]
    token_word: list[int]  # index into `words` for every token
    words: list[tuple[int, int]]  # character spans into the text
    num_tokens: int  # before truncation

    @property
    def truncated(self) -> bool:
        return self.num_tokens > len(self.ids)


def encode_text(tokenizer: Tokenizer, text: str, max_length: int) -> EncodedText:
    """Tokenize `text`, truncate to `max_length` tokens and group the tokens into words of `text`."""
    if not isinstance(text, str):
        raise ConfigError(f"the text to explain must be a string, got {type(text).__name__}")
    if not text.strip():
        raise ConfigError("the text to explain is empty")
    encoding = tokenizer.encode(text, add_special_tokens=False)
    if not encoding.ids:
        raise ConfigError(f"the text holds no token the tokenizer reads: {text[:80]!r}")
    ids = encoding.ids[:max_length]
    token_word, words, previous = [], [], None
    for position, (word_id, (start, end)) in enumerate(zip(encoding.word_ids[: len(ids)], encoding.offsets[: len(ids)])):
        key = (word_id, encoding.sequence_ids[position]) if word_id is not None else ("token", position)
        if key != previous:
            words.append((start, end))
            previous = key
        else:  # another piece of the same word
            words[-1] = (min(words[-1][0], start), max(words[-1][1], end))
        token_word.append(len(words) - 1)
    return EncodedText(ids=ids, token_word=token_word, words=words, num_tokens=len(encoding.ids))


class Explainer:
    """Explains the predictions of a trained `SentimentClassifier`.

    Args:
        model: the classifier (put in eval mode here; its weights are not changed).
        tokenizer: the tokenizer it was trained with.
        max_length: longest input in tokens, as in training; longer texts are truncated and say so.
    """

    def __init__(self, model: SentimentClassifier, tokenizer: Tokenizer, max_length: int) -> None:
        self.model = model.eval()
        self.tokenizer, self.max_length = tokenizer, max_length
        self.classes = list(model.label_names)
        self.cell = model.encoder.cell

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> "Explainer":
        from sentikit.checkpoint import load_classifier

        loaded = load_classifier(path)
        return cls(loaded.model, loaded.tokenizer, loaded.max_length)

    @property
    def exact(self) -> bool:
        """Whether the logits split exactly over the words (gated cell read through its final state)."""
        return self.cell in ("lstm", "gru") and self.model.encoder.pooling == "last"

    def explain(self, text: str, method: Method = "auto", memory_probes: int = 32) -> dict[str, Any]:
        """The explanation of one text as a JSON-serialisable dict (see the module docstring).

        Args:
            text: the review.
            method: `gates` (exact split, LSTM/GRU with final-state pooling only), `occlusion`, or
                `auto` (gates where possible).
            memory_probes: random projections used to estimate `||d h_T / d x_t||` (0: skip it).
        """
        if method == "auto":
            method = "gates" if self.exact else "occlusion"
        if method == "gates" and not self.exact:
            raise ConfigError(
                f"the gates split needs an LSTM or GRU read through its final state; this model is a "
                f"{self.cell} with {self.model.encoder.pooling} pooling: use method='occlusion'"
            )
        encoded = encode_text(self.tokenizer, text, self.max_length)
        ids = torch.tensor([encoded.ids])
        lengths = torch.tensor([len(encoded.ids)])
        with torch.no_grad():
            embedded = self.model.embedding(ids)
            logits = self.model.head(self.model.encoder(embedded, lengths))[0]
        traces = replay(self.model.encoder.rnn, embedded, lengths)
        top = traces[-1]
        if method == "gates":
            split = final_state_split(top, lengths)
            contributions = self.split_logits(split)[0]
            retention = split.writes[:, 0].abs().sum(-1).sum(0)
            retention = retention / retention.sum().clamp_min(1e-12)
        else:
            contributions, retention = occlusion(self.model, ids[0]), None
        memory = memory_decay(self.model, ids, lengths, memory_probes)[0] if memory_probes else None
        gates = {name: top.states[key][:, 0].mean(-1).mean(0) for name, key in GATE_NAMES[self.cell].items()}
        return self._report(text, encoded, logits, contributions, retention, memory, gates, method)

    def token_contributions(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """`(batch, time, classes)`: each token's exact part of the logits (the gates split, bias excluded,
        zero at padding) for right-padded `ids` `(batch, time)`: the numbers `explain` reports before they
        are summed into words, without its gate means, memory estimate and report, for callers that
        only need the scores (the faithfulness evaluation)."""
        if not self.exact:
            raise ConfigError(
                f"the gates split needs an LSTM or GRU read through its final state; this model is a "
                f"{self.cell} with {self.model.encoder.pooling} pooling"
            )
        with torch.no_grad():
            embedded = self.model.embedding(ids)
        top = replay(self.model.encoder.rnn, embedded, lengths)[-1]
        return self.split_logits(final_state_split(top, lengths))

    def split_logits(self, split: FinalStateSplit) -> torch.Tensor:
        """`(batch, time, classes)`: each step's part of the logits, both directions added (bias excluded)."""
        weight = self.model.head.weight.detach()  # (classes, directions * hidden)
        directions, _, _, hidden = split.parts.shape
        per_direction = weight.view(weight.shape[0], directions, hidden).permute(1, 2, 0)  # (directions, hidden, classes)
        return torch.einsum("dbth,dhc->btc", split.parts, per_direction)

    def _report(self, text, encoded, logits, contributions, retention, memory, gates, method) -> dict[str, Any]:
        words = len(encoded.words)
        to_word = torch.tensor(encoded.token_word)

        def per_word(values: torch.Tensor | None, reduce: str = "sum") -> list | None:
            if values is None:
                return None
            shape = (words,) + tuple(values.shape[1:])
            total = torch.zeros(shape, dtype=torch.float64).index_add_(0, to_word, values.double())
            if reduce == "mean":
                counts = torch.bincount(to_word, minlength=words).double().view(-1, *[1] * (len(shape) - 1))
                total = total / counts
            return total.tolist()

        probabilities = logits.softmax(-1)
        word_contributions = per_word(contributions)
        word_retention = per_word(retention)
        word_memory = per_word(memory, "mean")
        word_gates = {name: per_word(value, "mean") for name, value in gates.items()}
        return {
            "text": text,
            "label": self.classes[int(probabilities.argmax())],
            "classes": self.classes,
            "probabilities": probabilities.tolist(),
            "logits": logits.tolist(),
            "bias": self.model.head.bias.detach().tolist(),
            "method": method,
            "cell": self.cell,
            "bidirectional": self.model.encoder.num_directions == 2,
            "convention": CONVENTIONS[self.cell],
            "num_tokens": encoded.num_tokens,
            "max_length": self.max_length,
            "truncated": encoded.truncated,
            "words": [
                {
                    "word": text[start:end],
                    "start": start,
                    "end": end,
                    "contributions": word_contributions[w],
                    "retention": None if word_retention is None else word_retention[w],
                    "memory": None if word_memory is None else word_memory[w],
                    "gates": {name: values[w] for name, values in word_gates.items()},
                }
                for w, (start, end) in enumerate(encoded.words)
            ],
        }


@torch.no_grad()
def occlusion(model: SentimentClassifier, ids: torch.Tensor) -> torch.Tensor:
    """`(time, classes)`: the logits of the full review minus those with token `t` left out, for every `t`
    in one batched forward pass. Leaving out the only token leaves no input: the head then reads an all-zero
    summary (the initial state), so its logits are the head's bias."""
    model.eval()
    n = len(ids)
    full = model(ids[None], torch.tensor([n]))[0]
    if n == 1:
        return (full - model.head.bias)[None]
    keep = ~torch.eye(n, dtype=torch.bool)
    variants = ids[None].expand(n, n)[keep].view(n, n - 1)
    dropped = model(variants, torch.full((n,), n - 1))
    return full[None] - dropped


def memory_decay(model: SentimentClassifier, ids: torch.Tensor, lengths: torch.Tensor, probes: int = 32, seed: int = 0) -> torch.Tensor:
    """`(batch, time)`: `||d h_T / d x_t||` (Frobenius norm), the sensitivity of the top layer's final
    FORWARD state to each input vector: how much the memory at the end still depends on word `t`.

    The norm is estimated with `probes` random projections (`E ||J^T v||^2 = ||J||_F^2` for
    `v ~ N(0, I)`), all in one batched backward pass through the fused module; zero at padding."""
    model.eval()
    batch, time = ids.shape
    generator = torch.Generator().manual_seed(seed)
    with torch.enable_grad():
        embedded = model.embedding(ids).detach().repeat_interleave(probes, 0).requires_grad_(True)
        encoder = model.encoder
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            embedded, lengths.repeat_interleave(probes).cpu(), batch_first=True, enforce_sorted=False
        )
        _, state = encoder.rnn(packed)
        h_n = state[0] if encoder.cell == "lstm" else state
        final_forward = h_n[-encoder.num_directions]  # the top layer's forward direction
        directions = torch.randn(final_forward.shape, generator=generator)
        (gradient,) = torch.autograd.grad((final_forward * directions).sum(), embedded)
    squared = gradient.pow(2).sum(-1).view(batch, probes, time).mean(1)
    return squared.sqrt().detach()
