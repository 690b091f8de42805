"""Run by test_ddp.py as its own program: 2 CPU processes (gloo) train for two epochs and each rank
writes which examples it saw, per epoch and stage, and its final weights' sums to OUT/rank{N}.json.

Lightning's DDP launcher starts rank 1 by running this same command again, so it must be a script.
"""

import json
import sys
from collections import defaultdict

import pytorch_lightning as pl

from sentikit.data.datamodule import SentimentDataModule
from sentikit.nn.classifier import SentimentClassifier


class RecordingClassifier(SentimentClassifier):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen = defaultdict(list)

    def training_step(self, batch, batch_idx):
        self.seen[f"train/{self.current_epoch}"].append(batch["indices"].tolist())
        return super().training_step(batch, batch_idx)

    def validation_step(self, batch, batch_idx):
        if not self.trainer.sanity_checking:
            self.seen[f"validation/{self.current_epoch}"].append(batch["indices"].tolist())
        return super().validation_step(batch, batch_idx)


def main(out: str, train: str, validation: str) -> None:
    pl.seed_everything(0)
    data = SentimentDataModule(data_files={"train": train, "validation": validation}, batch_size=32, max_length=32)
    # Adversarial training takes a gradient inside the training step: DDP must still sync one backward.
    model = RecordingClassifier(data.vocabulary_size, data.classes, cell="gru", embedding_dim=8, hidden_size=8, adversarial=0.05)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        use_distributed_sampler=False,
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=data)
    with open(f"{out}/rank{trainer.global_rank}.json", "w") as file:
        weights = [p.detach().double().sum().item() for p in model.parameters()]
        json.dump({"world_size": trainer.world_size, "seen": model.seen, "vocab": data.vocabulary_size, "weights": weights}, file)


if __name__ == "__main__":
    main(*sys.argv[1:])
