"""How strongly a word pushes towards a class: the one signed score that colours words in the terminal
(`render`) and on the demo page (`app.page`) and ranks them for the faithfulness table (`faithfulness`).

A word's contributions `s_1 .. s_K` (one per class: the gates split of the logits, or the logit drop
under occlusion) say how much it raised each logit. Its push towards class `c` is

    push_c = s_c - 1/(K-1) * sum_{j != c} s_j

its contribution to `c` minus the mean of its contributions to the other classes. Why this one:

- it is the word's part of the margin `z_c - mean_{j != c} z_j`; the words' pushes plus the bias's add
  up to that margin exactly under the gates split. For two classes the margin is the log-odds
  `log(p_c / p_other)`, so a push of +1 is a word's share of +1 in the log-odds, a factor e on the
  odds of `c`: a number a reader can check against the probabilities, where the mean over all K
  classes would halve it;
- adding the same amount to every class's contribution (which changes no probability) leaves it alone;
- for two classes it is antisymmetric, `push_1 = -push_0`, so a page can colour every word by its push
  towards one fixed class and each colour means one class whatever the prediction.

The mean over all K classes, `s_c - mean_j s_j`, is this score times `(K-1)/K`: it ranks words and
scales colours the same, so the choice changes the printed numbers only.
"""

from __future__ import annotations

from typing import Any

import torch


def push(contributions: torch.Tensor, towards: int) -> torch.Tensor:
    """`(..., classes)` contributions -> `(...)` pushes towards class `towards` (module docstring)."""
    others = torch.cat([contributions[..., :towards], contributions[..., towards + 1 :]], dim=-1)
    return contributions[..., towards] - others.mean(-1)


def word_pushes(report: dict[str, Any], towards: int | None = None) -> list[float]:
    """Each word's push in an `Explainer.explain` report, towards class `towards` (an index into
    `report["classes"]`; by default the predicted class)."""
    if towards is None:
        towards = report["classes"].index(report["label"])
    contributions = torch.tensor([w["contributions"] for w in report["words"]], dtype=torch.float64)
    if not len(contributions):
        return []
    return push(contributions, towards).tolist()
