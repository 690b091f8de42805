"""The sentiment classifier: token ids -> embedding -> recurrent encoder -> dropout -> linear head.

A `LightningModule` whose constructor arguments are the `model:` section of a config. The vocabulary
size and class names come from the data module (the command line links them), and are saved in every
checkpoint with the rest of the hyper-parameters, so that a checkpoint alone rebuilds the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.utilities import rank_zero_info
from tokenizers import Tokenizer
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from sentikit.checkpoint import checkpoint_extras, read_checkpoint
from sentikit.data.tokenizer import PAD_ID, UNK_ID, tokenizer_from_string
from sentikit.nn.encoder import Cell, Pooling, RecurrentEncoder
from sentikit.errors import ConfigError
from sentikit.nn.optim import Schedule, adamw_with_schedule, check_optimizer_options


class SentimentClassifier(pl.LightningModule):
    """Classifies reviews with a recurrent encoder.

    Args:
        vocab_size: rows of the embedding table (set from the data module's tokenizer).
        label_names: the classes in id order (set from the data module).
        cell: `rnn`, `lstm` or `gru`.
        embedding_dim: size of the word vectors (learned from scratch).
        hidden_size: recurrent units per direction and layer.
        num_layers: stacked recurrent layers.
        bidirectional: read each review in both directions.
        dropout: dropout between recurrent layers and before the head.
        embedding_dropout: dropout on the word vectors.
        word_dropout: share of the words replaced by `[UNK]` during training, so that the model
            learns to judge a review around words it has never seen (validation text is full of them).
        pooling: `last` (the final state, which the gates issue explains exactly), `mean`, `max`, or
            `max_mean` (both side by side).
        learning_rate: peak AdamW learning rate.
        weight_decay: AdamW weight decay (biases excluded).
        warmup_fraction: share of all training steps spent warming the learning rate up from zero.
        schedule: learning-rate decay after warmup, down to zero at the last step.
        adversarial: adversarial training on the word vectors (the fast gradient method of Miyato et al.
            2017): each training batch is also classified with its word vectors pushed, review by review,
            in the direction that raises the loss fastest, by this share of their norm, and the two losses
            are added. It costs a second forward pass and two more backward passes; 0 turns it off.
    """

    def __init__(
        self,
        vocab_size: int,
        label_names: list[str],
        cell: Cell = "lstm",
        embedding_dim: int = 128,
        hidden_size: int = 256,
        num_layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.3,
        embedding_dropout: float = 0.2,
        word_dropout: float = 0.0,
        pooling: Pooling = "last",
        learning_rate: float = 2e-3,
        weight_decay: float = 0.01,
        warmup_fraction: float = 0.05,
        schedule: Schedule = "cosine",
        adversarial: float = 0.0,
    ) -> None:
        super().__init__()
        if vocab_size < 2:
            raise ConfigError(f"vocab_size must be at least 2, got {vocab_size}")
        if len(label_names) < 2:
            raise ConfigError(f"a classifier needs at least 2 classes, got {label_names}")
        if embedding_dim < 1:
            raise ConfigError(f"embedding_dim must be at least 1, got {embedding_dim}")
        if adversarial < 0:
            raise ConfigError(f"adversarial must be at least 0, got {adversarial}")
        check_optimizer_options(learning_rate, weight_decay, warmup_fraction)
        for name, value in (("dropout", dropout), ("word_dropout", word_dropout)):
            if not 0 <= value < 1:
                raise ConfigError(f"{name} must lie in [0, 1), got {value}")
        self.save_hyperparameters()
        self.label_names = list(label_names)
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=PAD_ID)
        self.encoder = RecurrentEncoder(
            embedding_dim,
            cell=cell,
            hidden_size=hidden_size,
            num_layers=num_layers,
            bidirectional=bidirectional,
            dropout=dropout,
            input_dropout=embedding_dropout,
            pooling=pooling,
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.encoder.output_size, len(label_names))
        num_classes = len(label_names)
        metrics = MetricCollection(
            {
                "acc": MulticlassAccuracy(num_classes, average="micro"),
                "f1": MulticlassF1Score(num_classes, average="macro"),
            }
        )
        self.val_metrics = metrics.clone(prefix="val_")
        self.test_metrics = metrics.clone(prefix="test_")
        self._train_loss_window: list[torch.Tensor] = []
        self._source_tally: torch.Tensor | None = None  # (right, seen) per data source, this epoch

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, token_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """`token_ids` (batch, time) right-padded with `PAD_ID`, `lengths` (batch,) -> logits (batch, classes)."""
        return self.classify(self.embedding(token_ids), lengths)

    def classify(self, embedded: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Word vectors `(batch, time, embedding_dim)` -> logits: everything after the embedding lookup."""
        if embedded.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            # `precision: bf16-mixed` on the CPU: oneDNN has no bf16 kernel for the fused recurrent
            # modules on packed sequences and fails deep inside; the recurrence runs in fp32 there.
            with torch.autocast("cpu", enabled=False):
                summary = self.encoder(embedded.float(), lengths)
        else:
            summary = self.encoder(embedded, lengths)  # (batch, directions * hidden)
        return self.head(self.dropout(summary))

    def drop_words(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Word dropout: replace a random `word_dropout` share of the real tokens by `[UNK]`."""
        if self.hparams.word_dropout == 0:
            return token_ids
        dropped = torch.rand(token_ids.shape, device=token_ids.device) < self.hparams.word_dropout
        return token_ids.masked_fill(dropped & (token_ids != PAD_ID), UNK_ID)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        embedded = self.embedding(self.drop_words(batch["token_ids"]))
        loss = F.cross_entropy(self.classify(embedded, batch["lengths"]), batch["labels"])
        self._log_train_loss(loss, batch_idx)  # the clean loss, comparable with `val_loss`
        if self.hparams.adversarial > 0:
            perturbed = embedded + self.adversarial_perturbation(embedded, loss)
            return loss + F.cross_entropy(self.classify(perturbed, batch["lengths"]), batch["labels"])
        return loss

    def adversarial_perturbation(self, embedded: torch.Tensor, loss: torch.Tensor) -> torch.Tensor:
        """The push `r` toward the worst nearby word vectors, to first order: along the loss's gradient with
        respect to `embedded`, with a norm of `adversarial` times the review's word vectors' norm.

        Scaling by the vectors' own norm, not a fixed size, keeps the model from escaping the perturbation
        by growing its embeddings (Miyato et al. normalise the embeddings for the same reason). Padding
        gets no push: its gradient is zero, since no state reads it. `r` is a constant to the optimiser."""
        (gradient,) = torch.autograd.grad(loss, embedded, retain_graph=True)
        size = self.hparams.adversarial * embedded.detach().flatten(1).norm(dim=1)  # (batch,)
        direction = gradient / gradient.flatten(1).norm(dim=1).clamp_min(1e-12)[:, None, None]
        return direction * size[:, None, None]

    def _log_train_loss(self, loss: torch.Tensor, batch_idx: int) -> None:
        """Logs `train_loss` as the mean over the batches since the last logging step, only on the steps
        where Lightning writes step logs (every `log_every_n_steps`).

        Each `self.log` call walks Lightning's result object, which on short steps is a visible share of
        the training time when done every batch. Loggers only write every
        `log_every_n_steps` anyway, and the window's mean is a steadier figure than one batch's loss.

        With gradient accumulation every batch of a group shares one `global_step`; only the group's last
        batch logs, since Lightning writes the value logged last and would otherwise see that batch alone."""
        if self._trainer is None:  # a training step called by hand, as Lightning's own `log` allows
            return
        window = self._train_loss_window
        window.append(loss.detach())
        trainer = self.trainer
        ends_group = (batch_idx + 1) % trainer.accumulate_grad_batches == 0 or batch_idx + 1 == trainer.num_training_batches
        every = trainer.log_every_n_steps
        if every and ends_group and ((trainer.global_step + 1) % every == 0 or trainer.should_stop):
            self.log("train_loss", torch.stack(window).mean(), prog_bar=True)
            window.clear()

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, self.val_metrics, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, self.test_metrics, "test")

    def _evaluate(self, batch: dict[str, torch.Tensor], metrics: MetricCollection, stage: str) -> None:
        logits = self(batch["token_ids"], batch["lengths"])
        loss = F.cross_entropy(logits, batch["labels"])
        metrics.update(logits, batch["labels"])
        self.log(f"{stage}_loss", loss, batch_size=len(logits), sync_dist=True)
        self.log_dict(metrics, prog_bar=True)
        if self._source_tally is not None and "sources" in batch:
            right = (logits.argmax(-1) == batch["labels"]).long()
            self._source_tally[0].index_add_(0, batch["sources"], right)
            self._source_tally[1].index_add_(0, batch["sources"], torch.ones_like(right))

    # --- accuracy per data source, when the data module serves several (`data.sources`) ------------

    def on_validation_epoch_start(self) -> None:
        self._start_source_tally()

    def on_test_epoch_start(self) -> None:
        self._start_source_tally()

    def on_validation_epoch_end(self) -> None:
        self._log_source_accuracy("val")

    def on_test_epoch_end(self) -> None:
        self._log_source_accuracy("test")

    def _source_names(self) -> list[str] | None:
        """The data module's source names (`SentimentDataModule.source_names`), if it has several.
        Read from the trainer rather than saved with the model: they describe the run, not the weights."""
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        return getattr(datamodule, "source_names", None)

    def _start_source_tally(self) -> None:
        names = self._source_names()
        self._source_tally = torch.zeros(2, len(names), dtype=torch.long, device=self.device) if names else None

    def _log_source_accuracy(self, stage: str) -> None:
        """Logs `<stage>_acc/<source>`: the tallies summed over DDP processes first, so that every process
        logs the same exact figure (each saw a disjoint share of the examples)."""
        if self._source_tally is None:
            return
        right, seen = self.trainer.strategy.reduce(self._source_tally, reduce_op="sum").tolist()
        for name, r, n in zip(self._source_names(), right, seen):
            if n:
                self.log(f"{stage}_acc/{name}", r / n)
        self._source_tally = None

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        probabilities = self(batch["token_ids"], batch["lengths"]).softmax(-1)
        return {"indices": batch["indices"], "probabilities": probabilities}

    def on_fit_start(self) -> None:
        rank_zero_info(f"{self.hparams.cell} classifier: {self.num_parameters:,} parameters")
        if self.logger is not None:
            self.logger.log_hyperparams({"num_parameters": self.num_parameters})

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        return adamw_with_schedule(self, hp.learning_rate, hp.weight_decay, hp.warmup_fraction, hp.schedule)


@dataclass
class LoadedClassifier:
    """A trained classifier with what it needs to read new text."""

    model: SentimentClassifier
    tokenizer: Tokenizer
    max_length: int


def load_classifier(path: str | Path) -> LoadedClassifier:
    """Rebuild a `SentimentClassifier` from a sentikit checkpoint alone (no pickle, no data, no config):
    its saved hyper-parameters, weights, tokenizer and maximum length. In eval mode, on the CPU."""
    return classifier_from_checkpoint(read_checkpoint(path), path)


def classifier_from_checkpoint(checkpoint: dict[str, Any], path: str | Path) -> LoadedClassifier:
    """`load_classifier` for a checkpoint already read from `path` (named in errors)."""
    extras = checkpoint_extras(checkpoint, path)
    hyper = checkpoint.get("hyper_parameters")
    if not isinstance(hyper, dict) or "vocab_size" not in hyper:
        raise ConfigError(f"{path} holds no sentikit model hyper-parameters")
    try:
        # LightningCLI adds `_instantiator` (and Lightning may add other private keys): not arguments.
        model = SentimentClassifier(**{k: v for k, v in hyper.items() if not k.startswith("_")})
        model.load_state_dict(checkpoint["state_dict"])
    except (TypeError, RuntimeError) as error:
        raise ConfigError(f"{path} does not hold a sentikit classifier this version can rebuild: {str(error).splitlines()[0]}") from None
    tokenizer = tokenizer_from_string(extras["tokenizer"], f"the tokenizer in {path}")
    return LoadedClassifier(model.eval(), tokenizer, int(extras.get("max_length") or 512))
