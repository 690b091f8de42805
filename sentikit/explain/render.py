"""An explanation (the dict of `Explainer.explain`) as coloured terminal text, for `sentikit explain`.

Each word of the review is coloured by its push towards the predicted class (`scores.push`: its
contribution to that class minus the mean of its contributions to the others; for two classes, its part
of the log-odds). Green words push towards the prediction, red ones away from it; the
stronger the push relative to the review's strongest word, the stronger the colour. Text between the
words (spaces, anything the tokenizer dropped) is printed as it was.
"""

from __future__ import annotations

from typing import Any

from rich.color import Color
from rich.console import Group
from rich.style import Style
from rich.text import Text

from sentikit.explain.scores import word_pushes

NEUTRAL = (150, 150, 150)  # a word with no push, in a grey readable on dark and light terminals
TOWARDS = (20, 190, 60)  # green: pushes towards the predicted class
AWAY = (220, 40, 40)  # red: pushes away from it


def word_style(push: float, strongest: float) -> Style:
    """Colour blended from grey towards green (push > 0) or red (push < 0) by `|push| / strongest`."""
    strength = min(1.0, abs(push) / strongest) if strongest > 0 else 0.0
    target = TOWARDS if push > 0 else AWAY
    rgb = [round(n + (t - n) * strength) for n, t in zip(NEUTRAL, target)]
    return Style(color=Color.from_rgb(*rgb), bold=strength >= 0.5)


def render(report: dict[str, Any]) -> Group:
    """The label and probabilities, the review with coloured words, the method, and a truncation note."""
    label = report["label"]
    probabilities = "  ".join(f"{name} {p:.3f}" for name, p in zip(report["classes"], report["probabilities"]))
    header = Text.assemble((label, Style(bold=True)), f"   ({probabilities})")

    text, pushes = report["text"], word_pushes(report)
    strongest = max((abs(p) for p in pushes), default=0.0)
    body, position = Text(), 0
    for word, push in zip(report["words"], pushes):
        body.append(text[position : word["start"]])
        body.append(text[word["start"] : word["end"]], word_style(push, strongest))
        position = word["end"]
    body.append(text[position:], Style(dim=True) if report["truncated"] else None)

    legend = Text.assemble(
        ("green", Style(color=Color.from_rgb(*TOWARDS))), f": pushes towards '{label}'   ",
        ("red", Style(color=Color.from_rgb(*AWAY))), f": pushes away from it",
    )
    if report["method"] == "gates":
        method = "method: gates (exact: the word contributions plus the head's bias are the logits)"
    else:
        method = "method: occlusion (each word's contribution is the logit drop when it is left out)"
    lines = [header, body, legend, Text(method, style="dim"), Text(report["convention"], style="dim")]
    if report["truncated"]:
        lines.append(
            Text(
                f"note: the review was truncated to {report['max_length']} of its {report['num_tokens']} tokens; "
                "the words after that (dimmed) were not read",
                style="yellow",
            )
        )
    return Group(*lines)
