"""Explain one prediction word by word: what the gates retained and how much each word pushed each class.

`Explainer(model, tokenizer, max_length).explain(text)` returns a plain, JSON-serialisable dict:

- `label`, `probabilities`, `logits`, and `bias` (the head's bias: per-word contributions plus the bias
  give the logits exactly when `method` is `"gates"`);
- `method`: `"gates"` for an LSTM or GRU read through its final state (the default pooling), where each
  word's input is carried through the gates, held at their values, to the logits, which split exactly
  over the words (`gates/contributions.py`); `"occlusion"`
  otherwise (the plain RNN, mean/max pooling): each word's contribution is the drop in the logits when it
  is left out, all variants run in one batch;
- `words`: one entry per word of the input (`word`, `start`, `end` as character offsets into `text`),
  with `contributions` (one number per class), `retention` (the share of the final memory that the word's
  write still holds; `None` under occlusion), `memory` (`||d h_T / d x_t||`: how strongly the final forward
  state still depends on the word; small for early words of a plain RNN, the vanishing gradient) and
  `gates` (the gate means over units, over the word's tokens and both directions of the top layer).

Scores are computed per token and summed into the word that the tokenizer's pre-tokenizer cut
(sub-word pieces of one word get one score: `data.tokenizer.group_words`). The text is read as every
stage reads it (`data.tokenizer.encode_texts`); a text without any word is refused, as there is nothing
to explain. `docs/explanations.md` has the equations.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from tokenizers import Tokenizer

from sentikit.data.tokenizer import encode_texts, group_words
from sentikit.training.denormals import flush_denormals
from sentikit.errors import ConfigError
from sentikit.nn.classifier import SentimentClassifier
from sentikit.gates.portable import GATE_NAMES, PortableClassifier

Method = Literal["auto", "gates", "occlusion"]
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
    """A text as the model reads it, with each token tied to a word of the original text. A text without
    any token reads as one `[UNK]` that belongs to no word: `ids` is `[UNK_ID]`, `words` is empty."""

    ids: list[int]
    token_word: list[int]  # index into `words` for every token of the text
    words: list[tuple[int, int]]  # character spans into the text
    num_tokens: int  # before truncation

    @property
    def truncated(self) -> bool:
        return self.num_tokens > len(self.ids)


def encode_text(tokenizer: Tokenizer, text: str, max_length: int) -> EncodedText:
    """`text` read as every stage reads it (`encode_texts`), its tokens grouped into words (`group_words`)."""
    if not isinstance(text, str):
        raise ConfigError(f"the text to explain must be a string, got {type(text).__name__}")
    [ids], [encoding] = encode_texts(tokenizer, [text], max_length, offsets=True)
    token_word, words = group_words(encoding, len(ids))
    return EncodedText(ids=ids, token_word=token_word, words=words, num_tokens=len(encoding.ids))


class Explainer:
    """Explains the predictions of a trained classifier.

    Args:
        model: a `SentimentClassifier` (from a checkpoint), its `PortableClassifier`, or a bundle's scripted
            one (`torch.jit.load`): all three explain through the same `PortableClassifier` code. Its weights
            are not changed.
        tokenizer: the tokenizer it was trained with.
        max_length: longest input in tokens, as in training; longer texts are truncated and say so.
    """

    def __init__(self, model: SentimentClassifier | PortableClassifier | torch.jit.ScriptModule, tokenizer: Tokenizer, max_length: int) -> None:
        if isinstance(model, SentimentClassifier):
            model = PortableClassifier.from_classifier(model)
        self.model = model.eval()
        self.tokenizer, self.max_length = tokenizer, max_length
        self.classes = list(model.label_names)
        self.cell: str = model.cell

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> "Explainer":
        from sentikit.nn.classifier import load_classifier

        loaded = load_classifier(path)
        return cls(loaded.model, loaded.tokenizer, loaded.max_length)

    @classmethod
    def from_bundle(cls, path: str | Path) -> "Explainer":
        from sentikit.bundle.bundle import load_bundle

        bundle = load_bundle(path)
        if bundle.forward_only:
            raise ConfigError(
                f"{path} is {bundle.forward_only}; explanations need a TorchScript bundle "
                f"(sentikit export without --format {bundle.model_format})"
            )
        return cls(bundle.model, bundle.tokenizer, bundle.max_length)

    @property
    def exact(self) -> bool:
        """Whether the logits split exactly over the words (gated cell read through its final state)."""
        return bool(self.model.exact)

    @flush_denormals()  # a GRU's long reviews explain faster (`sentikit.training.denormals`)
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
                f"{self.cell} with {self.model.pooling} pooling: use method='occlusion'"
            )
        encoded = encode_text(self.tokenizer, text, self.max_length)
        if not encoded.words:
            raise ConfigError(f"the text to explain is empty: it holds no word the tokenizer reads ({text[:80]!r})")
        ids = torch.tensor([encoded.ids])
        lengths = torch.tensor([len(encoded.ids)])
        readings = self.model.explain(ids, lengths)
        logits = readings["logits"][0]
        if method == "gates":
            contributions, retention = readings["contributions"][0], readings["retention"][0]
        else:
            contributions, retention = occlusion(self.model, ids[0]), None
        memory = memory_decay(self.model, ids, lengths, memory_probes)[0] if memory_probes else None
        gates = {name: readings["gate_" + name][0] for name in GATE_NAMES[self.cell]}
        return self._report(text, encoded, logits, contributions, retention, memory, gates, method)

    @flush_denormals()
    def token_contributions(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """`(batch, time, classes)`: each token's exact part of the logits (the gates split, bias excluded,
        zero at padding) for right-padded `ids` `(batch, time)`: the numbers `explain` reports before they
        are summed into words, for callers that only need the scores (the faithfulness evaluation)."""
        if not self.exact:
            raise ConfigError(
                f"the gates split needs an LSTM or GRU read through its final state; this model is a "
                f"{self.cell} with {self.model.pooling} pooling"
            )
        return self.model.contributions(ids, lengths)

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
            "bidirectional": self.model.directions == 2,
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
def occlusion(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
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


def memory_decay(model: torch.nn.Module, ids: torch.Tensor, lengths: torch.Tensor, probes: int = 32, seed: int = 0) -> torch.Tensor:
    """`(batch, time)`: `PortableClassifier.memory`, `||d h_T / d x_t||` of the top layer's final forward
    state, estimated with `probes` seeded random projections per review (same seed, same estimate)."""
    if isinstance(model, SentimentClassifier):
        model = PortableClassifier.from_classifier(model)
    generator = torch.Generator().manual_seed(seed)
    vectors = torch.randn(len(ids) * probes, int(model.hidden_size), generator=generator)
    with torch.enable_grad():
        return model.memory(ids, lengths, vectors)
