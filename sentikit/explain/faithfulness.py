"""Are the word scores faithful to the model? Deletion AOPC and cost per review, method against method.

A word score is faithful when the words it ranks first are the ones the prediction rests on. Deletion
tests that directly: remove the top-ranked words and watch the predicted class's probability fall.
For a review of `n` words (the grouping of `explain.encode_text`: the tokens of one word are scored
together and removed together) with predicted class `c`:

    K       = max(1, min(10, ceil(0.2 n)))
    AOPC    = 1/K * sum_{k=1..K} ( p_c(review) - p_c(review without its top-k words) )

and a method's AOPC is the mean over reviews (the area over the perturbation curve of Samek et al.
2017, averaged over k = 1..K rather than k = 0..K). A review left with no token reads as the head's
bias (an all-zero summary, the recurrent state before any input), as in `explain.occlusion`. Higher is
more faithful; a random ordering is the floor.

The methods, each ranking words by its score for `c`:

- `contributions`: the exact gates split of the logits (`Explainer.token_contributions`), only for an
  LSTM or GRU read through its final state (skipped otherwise);
- `occlusion`: the logit drop when a token is left out (`explain.occlusion`);
- `gradient_x_input`: `d logit_c / d e_t . e_t` for each token's embedding `e_t`;
- `integrated_gradients`: Captum's `IntegratedGradients` on the embeddings from an all-zero baseline
  (the `[PAD]` embedding is zero), `n_steps=50`, attributions summed over the embedding dimensions;
- `random`: a seeded random ordering of the words.

`contributions` and `occlusion` give one number per class; they rank by the push towards `c`
(`scores.push`: `s_c - mean_{j != c} s_j`, for two classes the word's part of the log-odds of `c`), the
score the explanations colour words by. The gradient methods attribute the predicted class's logit
directly.

Cost is the mean wall-clock time (`time.perf_counter`) per review to compute a method's word scores
from the review's token ids and predicted class: the tokenization and the forward pass that finds the
predicted class are shared by every method and not counted, nor is the AOPC evaluation. Methods take
turns batch by batch, so a machine that slows down mid-run slows all of them alike, and each runs
once untimed on the first batch first (lazy initialisation is not a per-review cost).

Reviews are scored `batch_size` at a time, the same batches for every method: 1 measures what it
costs to explain one review on its own, where the fixed cost of each small operation dominates a
short review; a larger batch measures the cost per review of scoring a dataset, where the arithmetic
does. Contributions and gradient x input take a whole batch in one padded pass; occlusion and
Integrated Gradients, which already batch the variants of one review (its leave-one-out copies, its 50
scaled copies), take its reviews one by one.
"""

from __future__ import annotations

import functools
import math
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch

from sentikit.errors import ConfigError
from sentikit.explain.explainer import Explainer, encode_text, occlusion
from sentikit.explain.scores import push
from sentikit.nn.classifier import SentimentClassifier
from sentikit.data.tokenizer import right_pad

Method = Literal["contributions", "occlusion", "gradient_x_input", "integrated_gradients", "random"]
METHODS: tuple[Method, ...] = ("contributions", "occlusion", "gradient_x_input", "integrated_gradients", "random")
IG_STEPS = 50
MAX_DELETIONS = 10  # K is at most this many words ...
DELETION_SHARE = 5  # ... and at least one in this many words of the review (20%), rounded up

# The project's target for `contributions` (docs/explanations.md): AOPC >= 90% of IG's and >= 3x random's, >= 20x cheaper than IG.
TARGET = {"aopc_vs_ig": 0.9, "aopc_vs_random": 3.0, "speedup_vs_ig": 20.0}


def deletion_steps(num_words: int) -> int:
    """K, the number of deletion steps for a review of `num_words` words: `max(1, min(10, ceil(0.2 n)))`
    (integer arithmetic: `0.2 * 15` is 3.0000000000000004 in floating point)."""
    return max(1, min(MAX_DELETIONS, -(-num_words // DELETION_SHARE)))


def deletion_variants(ids: Sequence[int], token_word: Sequence[int], ranking: Sequence[int], steps: int) -> list[list[int]]:
    """The review `ids` without its top-1, top-2, ..., top-`steps` words of `ranking` (word indices, best
    first); every token of a removed word goes (`token_word[t]` is token `t`'s word)."""
    variants, removed = [], set()
    for word in ranking[:steps]:
        removed.add(int(word))
        variants.append([int(token) for token, w in zip(ids, token_word) if w not in removed])
    return variants


@torch.no_grad()
def class_probabilities(model: SentimentClassifier, reviews: Sequence[Sequence[int]]) -> torch.Tensor:
    """`(len(reviews), classes)`: the model's probabilities for token-id lists, in one padded batch. An
    empty list reads as the head's bias (the summary of a review with no input is all zeros)."""
    model.eval()
    lengths = torch.tensor([len(r) for r in reviews])
    logits = model.head.bias.detach().expand(len(reviews), -1).clone()  # (batch, classes)
    nonempty = (lengths > 0).nonzero().flatten()
    if len(nonempty):
        ids, nonempty_lengths = right_pad([reviews[index] for index in nonempty.tolist()])
        logits[nonempty] = model(ids, nonempty_lengths)
    return logits.softmax(-1)


Predict = Callable[[Sequence[Sequence[int]]], torch.Tensor]


def deletion_aopc(predict: Predict, ids: Sequence[int], token_word: Sequence[int], scores: torch.Tensor, target: int) -> float:
    """One review's AOPC (module docstring) for word `scores` `(words,)`, where `predict` maps token-id
    lists to probabilities `(batch, classes)` and `target` is the class predicted for the whole review.
    Ties keep the text order."""
    ranking = torch.argsort(scores, descending=True, stable=True).tolist()
    variants = deletion_variants(ids, token_word, ranking, deletion_steps(len(scores)))
    p = predict([list(ids), *variants])[:, target]
    return float((p[0] - p[1:]).mean())


@dataclass
class Review:
    """A review as every method receives it: token ids, the word of each token, the predicted class."""

    ids: torch.Tensor  # (time,)
    token_word: torch.Tensor  # (time,)
    num_words: int
    target: int

    def per_word(self, token_scores: torch.Tensor) -> torch.Tensor:
        """`(time,)` token scores -> `(words,)`: the tokens of a word add up."""
        return torch.zeros(self.num_words, dtype=token_scores.dtype).index_add_(0, self.token_word, token_scores)


def padded(reviews: Sequence[Review]) -> tuple[torch.Tensor, torch.Tensor]:
    """`(batch, time)` right-padded token ids and `(batch,)` lengths of `reviews`."""
    return right_pad([r.ids for r in reviews])


# A scorer maps a batch of reviews to one `(words,)` score per review. Contributions and gradient x
# input take the whole batch in one padded pass; occlusion and Integrated Gradients already batch the
# variants of one review, and go review by review.
Scorer = Callable[[Explainer, Sequence[Review]], list[torch.Tensor]]


def contribution_scores(explainer: Explainer, reviews: Sequence[Review]) -> list[torch.Tensor]:
    ids, lengths = padded(reviews)
    parts = explainer.token_contributions(ids, lengths)  # (batch, time, classes)
    return [r.per_word(push(parts[row, : len(r.ids)], r.target)) for row, r in enumerate(reviews)]


def occlusion_scores(explainer: Explainer, reviews: Sequence[Review]) -> list[torch.Tensor]:
    return [r.per_word(push(occlusion(explainer.model, r.ids), r.target)) for r in reviews]


def target_logits(model: torch.nn.Module, embedded: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """`(batch,)`: each review's logit for its own target class, from its embeddings."""
    return model.head(model.encoder(embedded, lengths)).gather(1, targets[:, None])[:, 0]


def gradient_x_input_scores(explainer: Explainer, reviews: Sequence[Review]) -> list[torch.Tensor]:
    model = explainer.model
    ids, lengths = padded(reviews)
    targets = torch.tensor([r.target for r in reviews])
    with torch.enable_grad():
        embedded = model.embedding(ids).detach().requires_grad_(True)  # (batch, time, embedding)
        (gradient,) = torch.autograd.grad(target_logits(model, embedded, lengths, targets).sum(), embedded)
    products = (gradient * embedded.detach()).sum(-1)
    return [r.per_word(products[row, : len(r.ids)]) for row, r in enumerate(reviews)]


def integrated_gradients_scores(explainer: Explainer, reviews: Sequence[Review]) -> list[torch.Tensor]:
    """Review by review: IG's own batch is the 50 scaled copies of one review. Stacking the copies of
    many reviews into one pass was slower per review (padding to the longest review, and a far larger
    backward pass), so a batch gains nothing here."""
    from captum.attr import IntegratedGradients  # imported on use: it takes a while and only this needs it

    model = explainer.model
    scores = []
    for review in reviews:
        length = len(review.ids)

        def logits(embedded: torch.Tensor) -> torch.Tensor:  # Captum scales the input into a batch of n_steps
            return model.head(model.encoder(embedded, torch.full((len(embedded),), length)))

        embedded = model.embedding(review.ids[None]).detach()  # (1, time, embedding)
        with torch.enable_grad():
            attributions = IntegratedGradients(logits).attribute(
                embedded, baselines=torch.zeros_like(embedded), target=review.target, n_steps=IG_STEPS
            )
        scores.append(review.per_word(attributions.sum(-1)[0].detach()))
    return scores


def random_scores(generator: torch.Generator) -> Scorer:
    def scores(explainer: Explainer, reviews: Sequence[Review]) -> list[torch.Tensor]:
        return [torch.rand(r.num_words, generator=generator, dtype=torch.float64) for r in reviews]

    return scores


@dataclass
class MethodResult:
    """One row of the table. The ratios are `None` when IG or random was not evaluated."""

    method: str
    aopc: float
    aopc_se: float  # standard error of the mean over reviews
    ms_per_review: float
    aopc_vs_ig: float | None = None
    aopc_vs_random: float | None = None  # None also when random's AOPC is not positive
    speedup_vs_ig: float | None = None  # IG's cost / this method's cost


@dataclass
class FaithfulnessReport:
    reviews: int
    rows: list[MethodResult]
    skipped: dict[str, str] = field(default_factory=dict)  # method -> why it was not evaluated
    unreadable: int = 0  # texts left out because they hold no token the tokenizer reads
    threads: int = 1  # torch's intra-op threads while timing: costs depend on it
    batch_size: int = 1  # reviews each method scored at a time

    def row(self, method: str) -> MethodResult | None:
        return next((r for r in self.rows if r.method == method), None)

    def target_met(self) -> bool | None:
        """Whether `contributions` meets `TARGET`; `None` when it, IG or random was not evaluated."""
        row = self.row("contributions")
        if row is None or None in (row.aopc_vs_ig, row.aopc_vs_random, row.speedup_vs_ig):
            return None
        return all(getattr(row, name) >= bound for name, bound in TARGET.items())

    def to_dict(self) -> dict[str, Any]:
        return {
            "reviews": self.reviews,
            "unreadable": self.unreadable,
            "threads": self.threads,
            "batch_size": self.batch_size,
            "methods": [asdict(r) for r in self.rows],
            "skipped": self.skipped,
            "target": TARGET,
            "target_met": self.target_met(),
        }

    def markdown(self) -> str:
        """The table, as Markdown."""

        def number(value: float | None, digits: int = 2, suffix: str = "") -> str:
            return "n/a" if value is None else f"{value:.{digits}f}{suffix}"

        lines = [
            "| method | AOPC | ± s.e. | × IG | × random | ms / review | IG cost / this |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in self.rows:
            lines.append(
                f"| {r.method} | {r.aopc:.4f} | {r.aopc_se:.4f} | {number(r.aopc_vs_ig)} | {number(r.aopc_vs_random)} "
                f"| {r.ms_per_review:.2f} | {number(r.speedup_vs_ig, 1, '×')} |"
            )
        notes = [
            f"{self.reviews} reviews; deletion AOPC with K = max(1, min(10, ceil(0.2 n))) words removed; "
            f"costs on {self.threads} torch thread{'s' if self.threads > 1 else ''}, "
            + ("one review at a time." if self.batch_size == 1 else f"reviews scored in batches of {self.batch_size}.")
        ]
        notes += [f"{method}: skipped ({why})." for method, why in self.skipped.items()]
        if self.unreadable:
            notes.append(f"{self.unreadable} texts left out: no token the tokenizer reads.")
        met = self.target_met()
        if met is not None:
            notes.append(
                f"target (contributions AOPC >= {TARGET['aopc_vs_ig']:.0%} of IG's and >= {TARGET['aopc_vs_random']:g}x random's, "
                f">= {TARGET['speedup_vs_ig']:g}x cheaper than IG): {'met' if met else 'MISSED'}."
            )
        return "\n".join(lines) + "\n\n" + "\n".join(notes)


def evaluate_faithfulness(
    explainer: Explainer,
    texts: Iterable[str],
    methods: Sequence[Method] = METHODS,
    max_reviews: int | None = None,
    seed: int = 0,
    batch_size: int = 1,
) -> FaithfulnessReport:
    """Compare word-scoring methods on `texts` (the first `max_reviews` of them) by deletion AOPC and by
    cost per review; see the module docstring for both definitions. Each method scores `batch_size`
    reviews at a time (1: the cost of explaining one review on its own; more: the cost per review of
    scoring a dataset). `contributions` is skipped (and says why in `skipped`) for a model without an
    exact gates split."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ConfigError(f"unknown faithfulness methods {unknown}; choose from {list(METHODS)}")
    model = explainer.model.eval()
    scorers: dict[str, Scorer] = {
        "contributions": contribution_scores,
        "occlusion": occlusion_scores,
        "gradient_x_input": gradient_x_input_scores,
        "integrated_gradients": integrated_gradients_scores,
        "random": random_scores(torch.Generator().manual_seed(seed)),
    }
    skipped = {}
    if "contributions" in methods and not explainer.exact:
        skipped["contributions"] = (
            f"no exact gates split for a {explainer.cell} with {model.encoder.pooling} pooling"
        )
    active = [m for m in methods if m not in skipped]

    reviews, unreadable = [], 0
    for text in texts:
        if max_reviews is not None and len(reviews) >= max_reviews:
            break
        encoded = encode_text(explainer.tokenizer, text, explainer.max_length) if isinstance(text, str) else None
        if encoded is None or not encoded.words:  # a null, or a text without words: nothing to rank
            unreadable += 1
            continue
        ids = torch.tensor(encoded.ids)
        target = int(class_probabilities(model, [encoded.ids])[0].argmax())
        reviews.append(Review(ids, torch.tensor(encoded.token_word), len(encoded.words), target))
    if not reviews:
        raise ConfigError("no review to evaluate: every text was empty or held no token the tokenizer reads")

    for method in active:  # warm-up, untimed (not random's: its draws would depend on the batch size)
        if method != "random":
            scorers[method](explainer, reviews[:batch_size])
    predict = functools.partial(class_probabilities, model)
    aopc: dict[str, list[float]] = {m: [] for m in active}
    seconds: dict[str, float] = {m: 0.0 for m in active}
    for first in range(0, len(reviews), batch_size):
        batch = reviews[first : first + batch_size]
        for method in active:
            start = time.perf_counter()
            scores = scorers[method](explainer, batch)
            seconds[method] += time.perf_counter() - start
            for review, review_scores in zip(batch, scores):
                aopc[method].append(deletion_aopc(predict, review.ids.tolist(), review.token_word.tolist(), review_scores, review.target))

    rows = []
    for method in active:
        values = aopc[method]
        spread = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
        rows.append(MethodResult(method, statistics.fmean(values), spread, 1000 * seconds[method] / len(reviews)))
    by_name = {r.method: r for r in rows}
    for r in rows:
        if (ig := by_name.get("integrated_gradients")) is not None:
            r.aopc_vs_ig = r.aopc / ig.aopc if ig.aopc > 0 else None
            r.speedup_vs_ig = ig.ms_per_review / r.ms_per_review if r.ms_per_review else None
        if (rnd := by_name.get("random")) is not None:
            r.aopc_vs_random = r.aopc / rnd.aopc if rnd.aopc > 0 else None  # a ratio to a floor at or below 0 means nothing
    return FaithfulnessReport(len(reviews), rows, skipped, unreadable, torch.get_num_threads(), batch_size)
