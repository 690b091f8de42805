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

Each model reads one language (`DemoModel.language`, from its bundle), and a review goes to the models of
its own (`route_review`; the rule is `app/language.py`'s). What the page writes around the scores is in
the page's language (`language` arguments, texts in `app/i18n.py`); the reports themselves stay as
`Explainer.explain` wrote them.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from sentikit.app.i18n import MESSAGES, label_name, message
from sentikit.app.language import Language, Route, bundle_language, review_language, route
from sentikit.bundle.bundle import Bundle
from sentikit.data.tokenizer import is_cjk
from sentikit.errors import ConfigError
from sentikit.explain.explainer import Explainer
from sentikit.explain.scores import word_pushes

Highlight = Literal["contribution", "retention"]
HIGHLIGHTS: tuple[Highlight, ...] = ("contribution", "retention")
# The memory-decay estimate is a backward pass with this many random projections; the RNN needs it (it is
# what its survival curve shows), the gated cells show retention, which the replay gives for free.
MEMORY_PROBES = 16
MAX_UNREAD_CHARS = 2_000  # the part of a truncated review shown (unhighlighted) after the last word read
# The most tokens of a review the page reads, whatever the bundle's own maximum (the English bundles read
# 2,048 for IMDB's whole reviews). The RNN is explained by occlusion, one forward pass per word, so its
# time and memory grow with the square of the length: at 2,048 tokens a few requests took the server past
# 20 GB. 256 tokens is a review of several paragraphs; the rest is shown greyed out.
MAX_PAGE_TOKENS = 256
CLASS_COLOURS = ("220, 38, 38", "22, 163, 74")  # red for the first class, green for the second (RGB)
GATE_COLOUR = "37, 99, 235"  # blue: a gate's value from 0 (white) to 1
RETENTION_COLOUR = "124, 58, 237"  # violet: unsigned
CELL_NAMES = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}


@dataclass
class DemoModel:
    """One served bundle: explained (TorchScript), or only predicted (`explainer` None: ONNX, torch.export)."""

    name: str  # the bundle's folder (or zip) name, e.g. `english-lstm`
    explainer: Explainer | None
    meta: dict[str, Any]
    bundle: Bundle | None = None  # the forward-only bundle that predicts when there is no explainer
    language: Language = "en"  # the language its tokenizer was trained on (`language.bundle_language`)

    @classmethod
    def from_bundle(cls, path: str | Path) -> "DemoModel":
        from sentikit.bundle.bundle import load_bundle

        path = Path(path)
        bundle = load_bundle(path)
        name = path.name.removesuffix(".zip")
        language = bundle_language(bundle.meta, bundle.tokenizer, str(path))
        if bundle.forward_only:
            return cls(name, None, bundle.meta, bundle, language)
        explainer = Explainer(bundle.model, bundle.tokenizer, min(bundle.max_length, MAX_PAGE_TOKENS))
        return cls(name, explainer, bundle.meta, language=language)

    @property
    def cell(self) -> str:
        return self.explainer.cell if self.explainer else self.meta["cell"]

    @property
    def classes(self) -> list[str]:
        return self.explainer.classes if self.explainer else self.bundle.label_names

    @property
    def title(self) -> str:
        """`LSTM · english-lstm · 85.8% on validation.parquet`: what the column heading says, in English."""
        return self.heading("en")

    def heading(self, language: Language = "en") -> str:
        """The column heading in `language`: cell, bundle name, and its validation accuracy where recorded."""
        cell = CELL_NAMES.get(self.cell, self.cell)
        validation = self.meta.get("validation") or {}
        if "accuracy" not in validation:
            return message("heading", language, cell=cell, name=self.name)
        accuracy = f"{100 * validation['accuracy']:.1f}"
        return message("heading_accuracy", language, cell=cell, name=self.name, accuracy=accuracy, file=validation.get("file", "validation"))


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


def route_review(models: list[DemoModel], text: str, language: Language | Literal["auto"] = "auto") -> Route:
    """Which served models read `text`: those of its language (`language.review_language` when `language` is
    "auto", else the one chosen); see `language.route` for a language no served model reads."""
    chosen = review_language(text) if language == "auto" else language
    return route([model.language for model in models], chosen)


def find_model(models: list[DemoModel], name: str | None, text: str | None = None) -> DemoModel:
    """The served model called `name`: a bundle name (`english-gru`) as named; a cell (`gru`) or nothing among
    the models that read `text` (`route_review`: the models of its language), the first of them that fits.

    So `lstm` is the English LSTM for an English review and the Chinese one for a Chinese review; without a
    `text`, or where no model of the review's language has that cell, it is the first served LSTM."""
    for model in models:
        if name and model.name == name:
            return model
    readers = [models[index] for index in route_review(models, text).models] if text is not None else models
    if not name:
        return readers[0]
    for candidates in (readers, models):
        by_cell = [m for m in candidates if m.cell == name.lower()]
        if by_cell:
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
    """The explanation of `text` by each of `models` (all of them: `route_review` says which), in their order."""
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


def highlight_html(report: dict[str, Any], highlight: Highlight = "contribution", language: Language = "en") -> str:
    """The review as typed, each word (in Chinese and Japanese, each character or piece) on a background
    whose colour and strength show its score; the text between words is kept as it was, everything
    escaped. A truncated review shows its unread rest greyed. `language` is the page's (the tooltips)."""
    text, words = report["text"], report["words"]
    if highlight == "contribution":
        scores = signed_scores(report)
        classes = report["classes"]
        towards = label_name(classes[1] if len(classes) == 2 else report["label"], language)
        describe = [message("towards", language, score=f"{s:+.3f}", label=towards) for s in scores]
    else:
        scores, kind = survival_scores(report)
        kind = message("kind_" + kind.replace(" ", "_"), language)
        describe = [message("share", language, share=f"{100 * s:.1f}", kind=kind) for s in scores]
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
    return f'<div class="sk-highlight" dir="auto"{_lang(text)}>{"".join(pieces)}</div>'


def _lang(text: str) -> str:
    """A `lang` attribute for HTML that shows `text`, where it is Chinese or Japanese: the browser then picks
    the glyphs of that language (the same ideograph is drawn differently in Chinese and Japanese fonts)."""
    language = review_language(text)
    return f' lang="{language}"' if language != "en" else ""


def _swatch(colour: str) -> str:
    return f'<span class="sk-swatch" style="background-color: rgba({colour}, 0.8)"></span>'


def legend_html(models: list[DemoModel], highlight: Highlight, language: Language = "en") -> str:
    """One line that says what the colours mean, in the page's `language`."""
    if highlight == "retention":
        return message("legend_retention", language, swatch=_swatch(RETENTION_COLOUR))
    classes = models[0].classes if models else ["class 0", "class 1"]
    swatches = {"first_swatch": _swatch(CLASS_COLOURS[0]), "second_swatch": _swatch(CLASS_COLOURS[1])}
    if len(classes) == 2:
        first, second = (html.escape(label_name(name, language)) for name in classes)
        return message("legend_two", language, first=first, second=second, **swatches)
    return message("legend_many", language, **swatches)


def gates_html(report: dict[str, Any], language: Language = "en") -> str:
    """A heatmap table: one row per gate, one column per word, the gate's mean value as blue strength."""
    words = report["words"]
    names = list(words[0]["gates"]) if words else []
    if not names:
        return f'<p class="sk-note">{html.escape(message("no_gates", language))}</p>'
    # A CJK word's heading takes its review's language (its glyphs, and upright in the layout's CSS); a CJK
    # word in an English review, Chinese.
    cjk = _lang(report["text"]) or ' lang="zh"'
    header = "".join(
        f'<th dir="auto"{cjk if is_cjk(w["word"]) else ""}>{html.escape(w["word"])}</th>' for w in words
    )
    rows = []
    for name in names:
        cells = "".join(
            f'<td title="{html.escape(w["word"])}: {name} {w["gates"][name]:.2f}" '
            f'style="background-color: rgba({GATE_COLOUR}, {w["gates"][name]:.3f})"></td>'
            for w in words
        )
        label = message(f"gate_{name}", language) if f"gate_{name}" in MESSAGES["en"] else name
        rows.append(f'<tr><th class="sk-gate">{html.escape(label)}</th>{cells}</tr>')
    meaning = message("separator", language).join(
        message(f"meaning_{name}", language) for name in names if f"meaning_{name}" in MESSAGES["en"]
    )
    note = message("gates_note", language, meaning=meaning)
    return f'<div class="sk-gates"><table><tr><th></th>{header}</tr>{"".join(rows)}</table><p class="sk-note">{html.escape(note)}</p></div>'


@dataclass
class ModelView:
    """What one model's column shows."""

    title: str
    probabilities: dict[str, float]
    highlight: str  # HTML
    gates: str  # HTML
    summary: str  # Markdown


def model_view(model: DemoModel, report: dict[str, Any], highlight: Highlight = "contribution", language: Language = "en") -> ModelView:
    """What `model`'s column shows for `report`, its words in the page's `language`."""
    probability = max(report["probabilities"])
    probabilities = {label_name(name, language): p for name, p in zip(report["classes"], report["probabilities"])}
    label = f"**{label_name(report['label'], language)}** ({100 * probability:.1f}%)"
    if report["method"] == "none":
        explanation = message("forward_only", language, what=model.bundle.forward_only) if model.bundle else report["explanation"]
        return ModelView(
            title=model.heading(language),
            probabilities=probabilities,
            highlight=f'<div class="sk-highlight" dir="auto"{_lang(report["text"])}>{html.escape(report["text"])}</div>',
            gates=f'<p class="sk-note">{html.escape(explanation)}.</p>',
            summary=f"{label} · {explanation}",
        )
    method = message("method_gates" if report["method"] == "gates" else "method_occlusion", language)
    summary = f"{label} · {method}"
    if highlight == "retention":
        kind = "summary_retention" if survival_scores(report)[1] == "retention" else "summary_memory_decay"
        summary += " · " + message(kind, language)
    if report["truncated"]:
        summary += "\n\n" + message("truncated", language, max_length=report["max_length"], num_tokens=report["num_tokens"])
    return ModelView(
        title=model.heading(language),
        probabilities=probabilities,
        highlight=highlight_html(report, highlight, language),
        gates=gates_html(report, language),
        summary=summary,
    )


def survival_frame(models: list[DemoModel], reports: list[dict[str, Any]], language: Language = "en"):
    """A `pandas.DataFrame` for the survival line plot: `position` (word index), `word`, `share` and
    `model` (e.g. `LSTM retention (english-lstm)`, `RNN memory decay (english-rnn)`, in the page's `language`),
    one row per word and model."""
    import pandas as pd

    rows = []
    for model, report in zip(models, reports):
        shares, kind = survival_scores(report)
        kind = message("kind_" + kind.replace(" ", "_"), language)
        series = message("series", language, cell=CELL_NAMES.get(model.cell, model.cell), kind=kind, name=model.name)
        rows += [
            {"position": index, "word": word["word"], "share": share, "model": series}
            for index, (word, share) in enumerate(zip(report["words"], shares))
        ]
    return pd.DataFrame(rows, columns=["position", "word", "share", "model"])
