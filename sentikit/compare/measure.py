"""What `sentikit compare` measures on a trained model: accuracy and F1 per split, accuracy by review
length, inference speed, and how the final state's memory of a word fades with its distance from the end.

Every figure comes from one plain evaluation pass per split (eval mode, no gradients, batches as the data
module serves them), so the accuracy and the speed are measured on the same work.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from torchmetrics.functional.classification import multiclass_accuracy, multiclass_f1_score

from sentikit.explain.explainer import memory_decay
from sentikit.nn.classifier import SentimentClassifier
from sentikit.data.tokenizer import right_pad


def evaluate_split(model: SentimentClassifier, loader: DataLoader, device: torch.device) -> dict[str, Any]:
    """Predictions over one split: accuracy and macro F1 (as in training), and inference tokens/s
    (real tokens over the time spent in the model's forward passes, data loading excluded)."""
    model.eval().to(device)
    predictions, labels, lengths, sources, seconds = [], [], [], [], 0.0
    with torch.inference_mode():
        for batch in loader:
            ids, batch_lengths = batch["token_ids"].to(device), batch["lengths"]
            started = time.perf_counter()
            logits = model(ids, batch_lengths.to(device))
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds += time.perf_counter() - started
            predictions.append(logits.argmax(-1).cpu())
            labels.append(batch["labels"])
            lengths.append(batch_lengths)
            if "sources" in batch:
                sources.append(batch["sources"])
    predicted, target, length = torch.cat(predictions), torch.cat(labels), torch.cat(lengths)
    classes = len(model.label_names)
    return {
        "examples": len(target),
        "acc": float(multiclass_accuracy(predicted, target, classes, average="micro")),
        "f1": float(multiclass_f1_score(predicted, target, classes, average="macro")),
        "tokens_per_sec": float(length.sum()) / max(seconds, 1e-9),
        "correct": (predicted == target).numpy(),
        "lengths": length.numpy(),
        "sources": torch.cat(sources).numpy() if sources else None,  # each example's data source, if several
    }


def accuracy_by_source(correct: np.ndarray, sources: np.ndarray, names: list[str]) -> dict[str, float]:
    """Accuracy over each data source's examples (`data.sources`), for the sources the split holds."""
    return {name: float(correct[sources == k].mean()) for k, name in enumerate(names) if (sources == k).any()}


def length_edges(lengths: np.ndarray, buckets: int = 4) -> list[int]:
    """Upper token counts of `buckets` length buckets holding about equal numbers of reviews (quantiles),
    the last one open-ended. Fixed once per comparison, so every model is scored on the same buckets."""
    quantiles = np.quantile(lengths, np.linspace(0, 1, buckets + 1)[1:-1], method="lower")
    return sorted({int(q) for q in quantiles})


def accuracy_by_length(correct: np.ndarray, lengths: np.ndarray, edges: list[int]) -> list[dict[str, Any]]:
    """Accuracy per length bucket: `1-edges[0]`, `edges[0]+1-edges[1]`, ..., `edges[-1]+1` and longer
    (in tokens after truncation)."""
    rows, low = [], 1
    for high in [*edges, None]:
        inside = (lengths >= low) & ((lengths <= high) if high is not None else True)
        label = f"{low}-{high}" if high is not None else f"{low}+"
        count = int(inside.sum())
        rows.append({"tokens": label, "examples": count, "acc": float(correct[inside].mean()) if count else None})
        low = (high or 0) + 1
    return rows


def memory_by_distance(
    model: SentimentClassifier, token_ids: list[list[int]], probes: int = 16, chunk: int = 8
) -> list[float | None]:
    """Mean `||d h_T / d x_t||` of the top layer's final forward state, by distance from the end
    (`T - 1 - t`: 0 is the last word), over the given reviews; entry d averages the reviews longer
    than d. How fast it falls is how fast the cell forgets: a plain RNN's gradients vanish."""
    model.eval().cpu()
    longest = max(len(ids) for ids in token_ids)
    total, count = np.zeros(longest), np.zeros(longest)
    for start in range(0, len(token_ids), chunk):
        ids, lengths = right_pad(token_ids[start : start + chunk])
        norms = memory_decay(model, ids, lengths, probes=probes, seed=start).numpy()
        for row, length in zip(norms, lengths.tolist()):
            total[:length] += row[:length][::-1]  # reversed: index = distance from the end
            count[:length] += 1
    return [float(t / c) if c else None for t, c in zip(total, count)]
