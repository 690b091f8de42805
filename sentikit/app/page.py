"""What the demo page shows for one review, built from the bundles' explanations (no Gradio here).

The app (`app/layout.py`) is a layout around these functions: it sends the text to `explain_review`,
which runs every served bundle's `Explainer.explain`, and draws what `model_view` and `survival_frame`
make of the reports. Keeping the page's content here makes it testable without a browser or a server.

What each view means:

- highlights: each word's push (`explain.scores.push`: its contribution to a class minus the mean of its
  contributions to the others). For two classes, the push towards the second class (`positive` for
  SST-2; its part of the log-odds of that class), so one colour means one class whatever the
  prediction; for more classes, the push towards the predicted class.
  Strength is relative to the review's strongest word. LSTM and GRU use the exact gates split, the RNN
  leave-one-out occlusion (it has no gates to split through), and the page says which;
- retention (the toggle): the share of the final memory that each word's write still holds (LSTM and
  GRU). The RNN has no such split; it shows its memory decay instead, `||d h_T / d x_t||` as a share of
  the review's total, the vanishing gradient the articles describe;
- gates: each word's gate values averaged over units and both directions, in PyTorch's conventions
  (the GRU's `z` keeps the OLD state);
- survival: the retention (or memory decay) curves of all models over the word positions, one plot.

A forward-only bundle (ONNX, `torch.export`) is served for its prediction alone: its column shows the
label and probabilities, and says that explanations need a TorchScript bundle (`prediction_report`).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from sentikit.bundle.bundle import Bundle
from sentikit.errors import ConfigError
from sentikit.explain.explainer import Explainer
from sentikit.explain.scores import word_pushes

Highlight = Literal["contribution", "retention"]
HIGHLIGHTS: tuple[Highlight, ...] = ("contribution", "retention")
# The memory-decay estimate is a backward pass with this many random projections; the RNN needs it (it is
# what its survival curve shows), the gated cells show retention, which the replay gives for free.
MEMORY_PROBES = 16
MAX_UNREAD_CHARS = 2_000  # the part of a truncated review shown (unhighlighted) after the last word read
CLASS_COLOURS = ("220, 38, 38", "22, 163, 74")  # red for the first class, green for the second (RGB)
GATE_COLOUR = "37, 99, 235"  # blue: a gate's value from 0 (white) to 1
RETENTION_COLOUR = "124, 58, 237"  # violet: unsigned
GATES = {  # row label, and what a value near 1 means
    "input": ("input i", "i: how much of the new candidate is written"),
    "forget": ("forget f", "f near 1 keeps the old memory"),
    "output": ("output o", "o: how much of the memory is shown"),
    "reset": ("reset r", "r: how much of the old state shapes the candidate"),
    "update": ("update z", "z near 1 keeps the OLD state (PyTorch's convention)"),
}
CELL_NAMES = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}


@dataclass
class DemoModel:
    """One served bundle: explained (TorchScript), or only predicted (`explainer` None: ONNX, torch.export)."""

    name: str  # the bundle's folder (or zip) name, e.g. `sst2-lstm`
    explainer: Explainer | None
    meta: dict[str, Any]
    bundle: Bundle | None = None  # the forward-only bundle that predicts when there is no explainer

    @classmethod
    def from_bundle(cls, path: str | Path) -> "DemoModel":
        from sentikit.bundle.bundle import load_bundle

        path = Path(path)
        bundle = load_bundle(path)
        name = path.name.removesuffix(".zip")
        if bundle.forward_only:
            return cls(name, None, bundle.meta, bundle)
        return cls(name, Explainer(bundle.model, bundle.tokenizer, bundle.max_length), bundle.meta)

    @property
    def cell(self) -> str:
        return self.explainer.cell if self.explainer else self.meta["cell"]

    @property
    def classes(self) -> list[str]:
        return self.explainer.classes if self.explainer else self.bundle.label_names

    @property
    def title(self) -> str:
        """`LSTM · sst2-lstm · 85.8% on validation.parquet`: what the column heading says."""
        parts = [CELL_NAMES.get(self.cell, self.cell), self.name]
        validation = self.meta.get("validation") or {}
        if "accuracy" in validation:
            parts.append(f"{100 * validation['accuracy']:.1f}% on {validation.get('file', 'validation')}")
        return " · ".join(parts)


def load_models(paths: list[str | Path]) -> list[DemoModel]:
    """The bundles to serve, in the order given; their names must differ (the API picks a model by name)."""
    if not paths:
        raise ConfigError("no bundle to serve: pass --bundle DIR (a folder or .zip written by `sentikit export`)")
    models = [DemoModel.from_bundle(path) for path in paths]
    names = [m.name for m in models]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"two bundles share the name {repeated[0]!r}: rename one folder so that the API can tell them apart")
    return models


def find_model(models: list[DemoModel], name: str | None) -> DemoModel:
    """The served model called `name` (a bundle name like `sst2-gru`, or a cell like `gru` when only one
    model has it); the first one when `name` is empty."""
    if not name:
        return models[0]
    for model in models:
        if model.name == name:
            return model
    by_cell = [m for m in models if m.cell == name.lower()]
    if len(by_cell) == 1:
        return by_cell[0]
    raise ConfigError(f"no served model is called {name!r}; choose one of {[m.name for m in models]}")


def explain_one(model: DemoModel, text: str) -> dict[str, Any]:
    """The explanation of `text` by one model (`Explainer.explain`'s JSON structure). The memory-decay
    estimate is only computed where the page needs it: for models without an exact gates split."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError("the review is empty: type or paste a review first")
    if model.explainer is None:
        return prediction_report(model.bundle, text)
    return model.explainer.explain(text, memory_probes=0 if model.explainer.exact else MEMORY_PROBES)


def prediction_report(bundle: Bundle, text: str) -> dict[str, Any]:
    """A forward-only bundle's reading of `text` in `Explainer.explain`'s structure: the label, probabilities
    and logits, `method` `"none"` and no words, with `explanation` saying why."""
    token_ids, lengths, encodings = bundle.encode([text])
    with torch.no_grad():
        logits = bundle.model(token_ids, lengths)[0]
    probabilities = logits.softmax(-1)
    num_tokens = len(encodings[0].ids)
    return {
        "text": text,
        "label": bundle.label_names[int(probabilities.argmax())],
        "classes": bundle.label_names,
        "probabilities": probabilities.tolist(),
        "logits": logits.tolist(),
        "method": "none",
        "explanation": f"{bundle.forward_only} predicts only: explanations need a TorchScript bundle",
        "cell": bundle.meta["cell"],
        "num_tokens": num_tokens,
        "max_length": bundle.max_length,
        "truncated": num_tokens > bundle.max_length,
        "words": [],
    }


def explain_review(models: list[DemoModel], text: str) -> list[dict[str, Any]]:
    """Every served model's explanation of `text`, in the models' order."""
    return [explain_one(model, text) for model in models]


def signed_scores(report: dict[str, Any]) -> list[float]:
    """Per word: the push towards the second class (two classes) or the predicted class (more classes).
    See the module docstring."""
    return word_pushes(report, towards=1 if len(report["classes"]) == 2 else None)


def survival_scores(report: dict[str, Any]) -> tuple[list[float], str]:
    """Per word, the share of it that survives to the end, and what that share is: retention (LSTM, GRU)
    or, without it, the memory decay as a share of the review's total."""
    words = report["words"]
    if words and words[0]["retention"] is not None:
        return [w["retention"] for w in words], "retention"
    memory = [w["memory"] or 0.0 for w in words]
    total = sum(memory) or 1.0
    return [m / total for m in memory], "memory decay"


def _strength(values: list[float]) -> list[float]:
    """`values` scaled into [-1, 1] by the largest magnitude (all zero stays zero)."""
    largest = max((abs(v) for v in values), default=0.0)
    return [v / largest if largest > 0 else 0.0 for v in values]


def highlight_html(report: dict[str, Any], highlight: Highlight = "contribution") -> str:
    """The review as typed, each word on a background whose colour and strength show its score; the text
    between words is kept as it was, everything escaped. A truncated review shows its unread rest greyed."""
    text, words = report["text"], report["words"]
    if highlight == "contribution":
        scores = signed_scores(report)
        classes = report["classes"]
        towards = classes[1] if len(classes) == 2 else report["label"]
        describe = [f"{s:+.3f} towards {towards}" for s in scores]
    else:
        scores, kind = survival_scores(report)
        describe = [f"{100 * s:.1f}% ({kind})" for s in scores]
    strengths = _strength(scores)
    pieces, position = [], 0
    for word, score, strength, title in zip(words, scores, strengths, describe):
        pieces.append(html.escape(text[position : word["start"]]))
        if highlight == "contribution":
            colour = CLASS_COLOURS[1] if strength >= 0 else CLASS_COLOURS[0]
        else:
            colour = RETENTION_COLOUR
        pieces.append(
            f'<span class="sk-word" data-start="{word["start"]}" data-end="{word["end"]}" data-score="{score:.6g}" '
            f'title="{html.escape(title)}" style="background-color: rgba({colour}, {abs(strength):.3f})">'
            f"{html.escape(text[word['start']:word['end']])}</span>"
        )
        position = word["end"]
    rest = text[position:]
    if report["truncated"] and rest.strip():
        shown = rest[:MAX_UNREAD_CHARS] + ("…" if len(rest) > MAX_UNREAD_CHARS else "")
        pieces.append(f'<span class="sk-unread">{html.escape(shown)}</span>')
    else:
        pieces.append(html.escape(rest))
    return f'<div class="sk-highlight" dir="auto">{"".join(pieces)}</div>'


def legend_html(models: list[DemoModel], highlight: Highlight) -> str:
    """One line that says what the colours mean."""
    if highlight == "retention":
        return (
            f'<span class="sk-swatch" style="background-color: rgba({RETENTION_COLOUR}, 0.8)"></span> share of the final '
            "memory the word's write still holds (LSTM, GRU); for the RNN, its memory decay (gradient) share. "
            "Darker: more of it survives."
        )
    classes = models[0].classes if models else ["class 0", "class 1"]
    if len(classes) == 2:
        return (
            f'<span class="sk-swatch" style="background-color: rgba({CLASS_COLOURS[1]}, 0.8)"></span> pushed towards '
            f'<b>{html.escape(classes[1])}</b> &nbsp; <span class="sk-swatch" style="background-color: rgba({CLASS_COLOURS[0]}, 0.8)">'
            f"</span> pushed towards <b>{html.escape(classes[0])}</b>. Darker: a bigger push, relative to the review's strongest word."
        )
    return (
        f'<span class="sk-swatch" style="background-color: rgba({CLASS_COLOURS[1]}, 0.8)"></span> pushed towards the predicted '
        f'class &nbsp; <span class="sk-swatch" style="background-color: rgba({CLASS_COLOURS[0]}, 0.8)"></span> against it.'
    )


def gates_html(report: dict[str, Any]) -> str:
    """A heatmap table: one row per gate, one column per word, the gate's mean value as blue strength."""
    words = report["words"]
    names = list(words[0]["gates"]) if words else []
    if not names:
        return '<p class="sk-note">A plain RNN has no gates: its state is rewritten at every word.</p>'
    header = "".join(f'<th dir="auto">{html.escape(w["word"])}</th>' for w in words)
    rows = []
    for name in names:
        cells = "".join(
            f'<td title="{html.escape(w["word"])}: {name} {w["gates"][name]:.2f}" '
            f'style="background-color: rgba({GATE_COLOUR}, {w["gates"][name]:.3f})"></td>'
            for w in words
        )
        rows.append(f'<tr><th class="sk-gate">{GATES.get(name, (name, ""))[0]}</th>{cells}</tr>')
    meaning = "; ".join(GATES[name][1] for name in names if name in GATES)
    return (
        f'<div class="sk-gates"><table><tr><th></th>{header}</tr>{"".join(rows)}</table>'
        f'<p class="sk-note">Gate means over units and directions, white 0 to blue 1. {html.escape(meaning)}.</p></div>'
    )


@dataclass
class ModelView:
    """What one model's column shows."""

    title: str
    probabilities: dict[str, float]
    highlight: str  # HTML
    gates: str  # HTML
    summary: str  # Markdown


def model_view(model: DemoModel, report: dict[str, Any], highlight: Highlight = "contribution") -> ModelView:
    probability = max(report["probabilities"])
    if report["method"] == "none":
        return ModelView(
            title=model.title,
            probabilities=dict(zip(report["classes"], report["probabilities"])),
            highlight=f'<div class="sk-highlight" dir="auto">{html.escape(report["text"])}</div>',
            gates=f'<p class="sk-note">{html.escape(report["explanation"])}.</p>',
            summary=f"**{report['label']}** ({100 * probability:.1f}%) · {report['explanation']}",
        )
    if report["method"] == "gates":
        method = "words scored by the exact gates split"
    else:
        method = "words scored by occlusion (leave one out): no gates to split through"
    summary = f"**{report['label']}** ({100 * probability:.1f}%) · {method}"
    if highlight == "retention":
        summary += " · " + ("retention" if survival_scores(report)[1] == "retention" else "memory decay (gradient), no retention without gates")
    if report["truncated"]:
        summary += (
            f"\n\n*Only the first {report['max_length']} of {report['num_tokens']} tokens were read "
            "(the model's maximum length); the rest is greyed out.*"
        )
    return ModelView(
        title=model.title,
        probabilities=dict(zip(report["classes"], report["probabilities"])),
        highlight=highlight_html(report, highlight),
        gates=gates_html(report),
        summary=summary,
    )


def survival_frame(models: list[DemoModel], reports: list[dict[str, Any]]):
    """A `pandas.DataFrame` for the survival line plot: `position` (word index), `word`, `share` and
    `model` (e.g. `LSTM retention`, `RNN memory decay`), one row per word and model."""
    import pandas as pd

    rows = []
    for model, report in zip(models, reports):
        shares, kind = survival_scores(report)
        series = f"{CELL_NAMES.get(model.cell, model.cell)} {kind} ({model.name})"
        rows += [
            {"position": index, "word": word["word"], "share": share, "model": series}
            for index, (word, share) in enumerate(zip(report["words"], shares))
        ]
    return pd.DataFrame(rows, columns=["position", "word", "share", "model"])
