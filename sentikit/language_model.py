"""Language-model pretraining: teach the encoder to read reviews before it learns to judge them.

A randomly initialised recurrent classifier learns its word vectors and its recurrence from the labels
alone, one bit per review. Predicting each next word gives a training signal at every word of the
same reviews, no labels needed, and a recurrence that has learned to carry what a sentence is about
is a better start for the classifier (Dai & Le 2015: on IMDB, an LSTM initialised from a language
model trained on the same reviews gained several points over a random start).

`LanguageModel` holds an `embedding` and an `encoder` named and shaped as `SentimentClassifier`'s, so
that `SentimentClassifier(init_from=...)` copies them across. Each direction of the encoder is trained
as its own language model, as in ELMo (Peters et al. 2018): the forward stack's state at word t
predicts word t + 1, the backward stack's (reading right to left) predicts word t - 1. The layers above
the first read only their own direction's outputs (`RecurrentEncoder.one_way_outputs`), or the forward
stack could see the word it predicts through the backward one. The classifier then starts from the two
stacks side by side: the input columns through which one direction would read the other start at zero
(`load_pretrained`) and are learned from the labels.

The next-word distribution over a vocabulary of 30,000 would cost a product of 30,000 x hidden per word,
several times the recurrence itself; an adaptive softmax (Grave et al. 2017), which scores the few
thousand frequent words in full and the rare ones through a narrow projection by frequency band, costs a
fraction of it. The tokenizer numbers words by frequency, as it needs.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_info
from torch import nn

from sentikit.encoder import Cell, RecurrentEncoder
from sentikit.errors import ConfigError
from sentikit.gates import reversal_index
from sentikit.optim import Schedule, adamw_with_schedule, check_optimizer_options
from sentikit.tokenizer import PAD_ID

# The encoder's shape: what a classifier must share with the language model to take its weights.
ARCHITECTURE = ("vocab_size", "cell", "embedding_dim", "hidden_size", "num_layers", "bidirectional")


class LanguageModel(pl.LightningModule):
    """Predicts each word of a review from the words before it (and, backward, from those after it).

    Trained with `sentikit pretrain`, which takes the same `data:` section as `sentikit fit` (labels are
    read but not used). The architecture options must match the classifier's that will start from it.

    Args:
        vocab_size: rows of the embedding table (set from the data module's tokenizer).
        cell: `rnn`, `lstm` or `gru`.
        embedding_dim: size of the word vectors.
        hidden_size: recurrent units per direction and layer.
        num_layers: stacked recurrent layers.
        bidirectional: train a backward language model beside the forward one, for a bidirectional classifier.
        dropout: dropout between recurrent layers and on the states that predict the next word.
        embedding_dropout: dropout on the word vectors.
        cutoffs: the adaptive softmax's frequency bands: words ranked below the first cutoff are scored
            in full, each later band through a projection 4 times narrower than the one before. Bands
            at or past the vocabulary size are dropped.
        learning_rate: peak AdamW learning rate.
        weight_decay: AdamW weight decay (biases excluded).
        warmup_fraction: share of all training steps spent warming the learning rate up from zero.
        schedule: learning-rate decay after warmup, down to zero at the last step.
    """

    def __init__(
        self,
        vocab_size: int,
        cell: Cell = "lstm",
        embedding_dim: int = 128,
        hidden_size: int = 256,
        num_layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.2,
        embedding_dropout: float = 0.1,
        cutoffs: list[int] = [2000, 10000],  # noqa: B006 (jsonargparse reads the default; never mutated)
        learning_rate: float = 2e-3,
        weight_decay: float = 0.01,
        warmup_fraction: float = 0.05,
        schedule: Schedule = "cosine",
    ) -> None:
        super().__init__()
        if vocab_size < 3:
            raise ConfigError(f"vocab_size must be at least 3, got {vocab_size}")
        if embedding_dim < 1:
            raise ConfigError(f"embedding_dim must be at least 1, got {embedding_dim}")
        if not 0 <= dropout < 1:
            raise ConfigError(f"dropout must lie in [0, 1), got {dropout}")
        check_optimizer_options(learning_rate, weight_decay, warmup_fraction)
        if list(cutoffs) != sorted(set(cutoffs)) or any(c < 1 for c in cutoffs):
            raise ConfigError(f"cutoffs must be positive and increasing, got {cutoffs}")
        self.save_hyperparameters()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=PAD_ID)
        self.encoder = RecurrentEncoder(
            embedding_dim,
            cell=cell,
            hidden_size=hidden_size,
            num_layers=num_layers,
            bidirectional=bidirectional,
            dropout=dropout,
            input_dropout=embedding_dropout,
        )
        self.dropout = nn.Dropout(dropout)
        bands = [c for c in cutoffs if c < vocab_size - 1] or [max(1, vocab_size // 4)]
        # One softmax for both directions: a word is the same word whichever side it is predicted from.
        self.softmax = nn.AdaptiveLogSoftmaxWithLoss(hidden_size, vocab_size, bands, div_value=4.0)

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, token_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood (nats) of each next word, over both directions' predictions
        (0 for a batch of one-word reviews, which predict nothing)."""
        embedded = self.embedding(token_ids)
        if embedded.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            embedded = embedded.float()  # as the classifier: no bf16 kernel for the CPU's fused recurrence
        lengths = lengths.to(token_ids.device)
        # The state after word t predicts word t + 1, for every t before a review's last word.
        predicts = torch.arange(token_ids.shape[1] - 1, device=token_ids.device)[None, :] < (lengths - 1)[:, None]
        log_likelihood = []
        for direction in range(self.encoder.num_directions):
            states = self.encoder.one_way_outputs(embedded, lengths, direction)  # (batch, time, hidden)
            words = token_ids if direction == 0 else _reverse(token_ids, lengths)
            rows = self.dropout(states[:, :-1][predicts])
            log_likelihood.append(self.softmax(rows, words[:, 1:][predicts]).output.sum())
        return -torch.stack(log_likelihood).sum() / (predicts.sum() * self.encoder.num_directions).clamp_min(1)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self(batch["token_ids"], batch["lengths"])
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def _evaluate(self, batch: dict[str, torch.Tensor], stage: str) -> None:
        loss = self(batch["token_ids"], batch["lengths"])
        words = int((batch["lengths"] - 1).clamp_min(0).sum())
        self.log(f"{stage}_loss", loss, batch_size=words, sync_dist=True, prog_bar=True)
        self.log(f"{stage}_perplexity", loss.exp(), batch_size=words, sync_dist=True)

    def on_fit_start(self) -> None:
        rank_zero_info(f"{self.hparams.cell} language model: {self.num_parameters:,} parameters")

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        return adamw_with_schedule(self, hp.learning_rate, hp.weight_decay, hp.warmup_fraction, hp.schedule)


def _reverse(token_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Each review's tokens right to left within its length, padding left in place."""
    return token_ids.gather(1, reversal_index(lengths, token_ids.shape[1]))


def load_pretrained(model: nn.Module, checkpoint: dict[str, Any], path: str) -> None:
    """Copy a language model's word vectors and encoder (a checkpoint of `LanguageModel` read from
    `path`) into `model`, a `SentimentClassifier` of the same architecture, in place.

    The columns through which a layer above the first reads the other direction's outputs were never
    trained (the language model leaves them out); they start at zero, so that the classifier starts
    from exactly the two stacks the language model trained, and learns from the labels how much to mix."""
    hyper = checkpoint.get("hyper_parameters") or {}
    if "cutoffs" not in hyper:
        raise ConfigError(f"{path} is not a sentikit language model checkpoint (made by `sentikit pretrain`)")
    mismatched = [f"{name} {hyper.get(name)!r} there, {model.hparams[name]!r} here" for name in ARCHITECTURE if hyper.get(name) != model.hparams[name]]
    if mismatched:
        raise ConfigError(f"the model differs from the language model in {path}: {'; '.join(mismatched)}")
    state = checkpoint["state_dict"]
    own = {k: v for k, v in state.items() if k.startswith(("embedding.", "encoder."))}
    model.load_state_dict(own, strict=False)
    rnn = model.encoder.rnn
    if rnn.bidirectional:
        hidden = rnn.hidden_size
        with torch.no_grad():
            for layer in range(1, rnn.num_layers):
                getattr(rnn, f"weight_ih_l{layer}")[:, hidden:] = 0.0  # forward reading backward
                getattr(rnn, f"weight_ih_l{layer}_reverse")[:, :hidden] = 0.0  # backward reading forward
    rank_zero_info(f"started from the language model in {path}: word vectors and {rnn.num_layers}-layer encoder")

