"""Run by test_ddp_sources.py as its own program: 2 CPU processes (gloo) train for two epochs on two
sources with weights, and each rank writes to OUT/rank{N}.json which examples (index and source) it saw
per epoch and stage, whether it predicted each validation example right, and the `val_*` metrics it
logged at the end of each validation.

The sources, in DATA/ (written by the test): `shop.csv` (columns review/stars holding good/bad, no
validation split: one is carved out of its train) with weight 1, and `films-train.parquet` plus
`films-validation.parquet` (columns text/label holding 0/1) with weight 1.5.

Lightning's DDP launcher starts rank 1 by running this same command again, so it must be a script.
"""

import json
import sys
from collections import defaultdict

import pytorch_lightning as pl

from sentikit.data.datamodule import SentimentDataModule
from sentikit.nn.classifier import SentimentClassifier

WEIGHTS = {"shop": 1.0, "films": 1.5}


class RecordingClassifier(SentimentClassifier):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen = defaultdict(list)  # "stage/epoch" -> [[index, source, (right)], ...] per batch

    def training_step(self, batch, batch_idx):
        self.seen[f"train/{self.current_epoch}"].append(list(zip(batch["indices"].tolist(), batch["sources"].tolist())))
        return super().training_step(batch, batch_idx)

    def validation_step(self, batch, batch_idx):
        if not self.trainer.sanity_checking:
            right = (self(batch["token_ids"], batch["lengths"]).argmax(-1) == batch["labels"]).tolist()
            self.seen[f"validation/{self.current_epoch}"].append(list(zip(batch["indices"].tolist(), batch["sources"].tolist(), right)))
        return super().validation_step(batch, batch_idx)


class RecordMetrics(pl.Callback):
    """The `val_*` metrics as this rank holds them after each validation (what checkpoints monitor)."""

    def __init__(self):
        self.logged = {}

    def on_validation_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self.logged[str(trainer.current_epoch)] = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val_")}


def main(out: str, folder: str) -> None:
    pl.seed_everything(0)
    sources = [
        {"name": "shop", "data_files": {"train": f"{folder}/shop.csv"}, "text_column": "review", "label_column": "stars",
         "labels": {"good": "positive", "bad": "negative"}, "weight": WEIGHTS["shop"]},
        {"name": "films", "data_files": {"train": f"{folder}/films-train.parquet", "validation": f"{folder}/films-validation.parquet"},
         "weight": WEIGHTS["films"]},
    ]  # fmt: skip
    data = SentimentDataModule(
        sources=sources, label_names=["negative", "positive"], validation_fraction=0.25, min_frequency=1, batch_size=8, eval_batch_size=6
    )
    model = RecordingClassifier(data.vocabulary_size, data.classes, cell="gru", embedding_dim=8, hidden_size=8)
    metrics = RecordMetrics()
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        use_distributed_sampler=False,
        max_epochs=2,
        callbacks=[metrics],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=data)
    train, validation = data.splits["train"], data.splits["validation"]
    with open(f"{out}/rank{trainer.global_rank}.json", "w") as file:
        json.dump(
            {
                "world_size": trainer.world_size,
                "source_names": data.source_names,
                "weights": [WEIGHTS[name] for name in data.source_names],
                "train_sources": train.sources.tolist(),
                "validation_sources": validation.sources.tolist(),
                "seen": model.seen,
                "logged": metrics.logged,
            },
            file,
        )


if __name__ == "__main__":
    main(*sys.argv[1:])
