"""Deletion AOPC and the faithfulness table: the definition on hand-built cases, then on tiny models."""

import json
import math

import pytest
import torch

from sentikit.errors import ConfigError
from sentikit.explain.explainer import Explainer
from sentikit.explain.faithfulness import (
    METHODS,
    Review,
    class_probabilities,
    contribution_scores,
    deletion_aopc,
    deletion_steps,
    deletion_variants,
    evaluate_faithfulness,
    gradient_x_input_scores,
    integrated_gradients_scores,
    occlusion_scores,
)
from sentikit.nn.classifier import SentimentClassifier
from sentikit.data.tokenizer import train_tokenizer

CORPUS = [
    "this cereal is amazing and i am definitely buying it again",
    "the box gave up all its crunch in milk , not worth it",
    "i expected to hate it , but the flavour won me over",
    "unbelievable how bland this was , a dull soggy mess",
]


SHORT_REVIEWS = ["amazing cereal", "bland , soggy mess", "not worth it", "won me over", "dull box", "definitely buying again"]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread, and far slower on a machine whose cores are all busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def explainer(cell="lstm", pooling="last", seed=0) -> Explainer:
    tokenizer = train_tokenizer([CORPUS], vocab_size=200, min_frequency=1)
    torch.manual_seed(seed)
    model = SentimentClassifier(tokenizer.get_vocab_size(), ["negative", "positive"], cell=cell, embedding_dim=8, hidden_size=6, pooling=pooling)
    return Explainer(model, tokenizer, max_length=64)


def bag_of_words(weights: dict[int, float]):
    """A toy classifier: p(positive) = sigmoid(sum of the weights of the tokens present)."""

    def predict(reviews):
        p = torch.tensor([torch.tensor(sum(weights[t] for t in r), dtype=torch.float64).sigmoid() for r in reviews])
        return torch.stack([1 - p, p], dim=1)

    return predict


@pytest.mark.parametrize(
    "words, steps", [(1, 1), (2, 1), (5, 1), (6, 2), (10, 2), (11, 3), (15, 3), (16, 4), (49, 10), (50, 10), (300, 10)]
)
def test_deletion_removes_a_fifth_of_the_words_rounded_up_at_least_one_at_most_ten(words, steps):
    assert deletion_steps(words) == steps


def test_deleting_a_word_removes_all_of_its_tokens():
    ids, token_word = [10, 11, 12, 13, 14], [0, 0, 1, 2, 2]  # words: (10 11) (12) (13 14)
    assert deletion_variants(ids, token_word, ranking=[2, 0, 1], steps=2) == [[10, 11, 12], [12]]


def test_aopc_is_the_mean_drop_of_the_predicted_probability_over_k_1_to_K():
    # ten one-token words; K = 2: the two best-scored words (3.0, then 2.0) go one after the other
    weights = {0: 3.0, 1: -1.0, 2: 0.5, 3: 2.0, 4: 0.0, 5: 0.0, 6: 0.0, 7: 0.0, 8: 0.0, 9: 0.0}
    ids = list(range(10))
    sigmoid = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    full = sigmoid(4.5)
    expected = ((full - sigmoid(1.5)) + (full - sigmoid(-0.5))) / 2
    scores = torch.tensor([weights[i] for i in ids])
    assert deletion_aopc(bag_of_words(weights), ids, ids, scores, target=1) == pytest.approx(expected, abs=1e-12)


def test_ranking_by_the_true_deletion_effect_beats_every_random_ordering():
    weights = {i: w for i, w in enumerate([1.5, -0.5, 2.5, 0.1, -2.0, 0.7, 3.0, 0.0, -0.3, 1.1, 0.4, -1.2])}
    ids = list(weights)
    predict = bag_of_words(weights)
    # p(positive) rises with the sum, so dropping the largest weights first is the steepest descent at every k
    best = deletion_aopc(predict, ids, ids, torch.tensor([weights[i] for i in ids]), target=1)
    generator = torch.Generator().manual_seed(0)
    for _ in range(50):
        shuffled = deletion_aopc(predict, ids, ids, torch.rand(len(ids), generator=generator), target=1)
        assert best >= shuffled - 1e-12
    assert best > 0


def test_a_review_left_with_no_token_reads_as_the_head_s_bias():
    model = explainer("gru").model
    [probabilities] = class_probabilities(model, [[]])
    torch.testing.assert_close(probabilities, model.head.bias.detach().softmax(-1))


def test_class_probabilities_of_a_padded_batch_are_those_of_each_review_alone():
    model = explainer("lstm").model
    reviews = [[5, 6, 7, 8], [9], [], [10, 11]]
    batched = class_probabilities(model, reviews)
    alone = torch.cat([class_probabilities(model, [r]) for r in reviews])
    torch.testing.assert_close(batched, alone, rtol=0, atol=1e-6)


def test_contribution_scores_are_the_explainer_s_word_pushes_towards_the_predicted_class():
    ex = explainer("gru")
    text = "i expected to hate it , but the flavour won me over"
    report = ex.explain(text, memory_probes=0)
    c = report["classes"].index(report["label"])
    expected = torch.tensor([w["contributions"][c] - w["contributions"][1 - c] for w in report["words"]])
    ids = ex.tokenizer.encode(text, add_special_tokens=False).ids
    review = Review(torch.tensor(ids), torch.arange(len(ids)), len(ids), c)  # word tokenizer: one token per word
    torch.testing.assert_close(contribution_scores(ex, [review])[0].double(), expected.double(), rtol=0, atol=1e-5)


def test_integrated_gradients_add_up_to_the_logit_change_from_the_all_zero_baseline():
    ex = explainer("lstm")
    ids = torch.tensor(ex.tokenizer.encode("the flavour won me over", add_special_tokens=False).ids)
    review = Review(ids, torch.arange(len(ids)), len(ids), target=1)
    with torch.no_grad():
        embedded = ex.model.embedding(ids[None])
        logit = ex.model.head(ex.model.encoder(embedded, torch.tensor([len(ids)])))[0, 1]
        baseline = ex.model.head(ex.model.encoder(torch.zeros_like(embedded), torch.tensor([len(ids)])))[0, 1]
    assert float(integrated_gradients_scores(ex, [review])[0].sum()) == pytest.approx(float(logit - baseline), abs=1e-3)


@pytest.mark.parametrize("scorer", [contribution_scores, occlusion_scores, gradient_x_input_scores, integrated_gradients_scores])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_method_scores_a_padded_batch_of_reviews_as_it_scores_each_alone(scorer, cell):
    ex = explainer(cell)
    reviews = []
    for target, text in enumerate(CORPUS[:2] + SHORT_REVIEWS[:2]):  # 12, 12, 2 and 4 tokens
        ids = torch.tensor(ex.tokenizer.encode(text, add_special_tokens=False).ids)
        reviews.append(Review(ids, torch.arange(len(ids)), len(ids), target % 2))
    batched = scorer(ex, reviews)
    for review, scores in zip(reviews, batched):
        torch.testing.assert_close(scores, scorer(ex, [review])[0], rtol=0, atol=1e-5)


def test_the_batch_size_changes_the_cost_not_the_scores():
    one = evaluate_faithfulness(explainer("lstm"), CORPUS + SHORT_REVIEWS, methods=["contributions", "gradient_x_input"])
    three = evaluate_faithfulness(explainer("lstm"), CORPUS + SHORT_REVIEWS, methods=["contributions", "gradient_x_input"], batch_size=3)
    assert (one.batch_size, three.batch_size) == (1, 3) and "batches of 3" in three.markdown()
    for a, b in zip(one.rows, three.rows):
        assert a.aopc == pytest.approx(b.aopc, abs=1e-6)


def test_occlusion_is_the_best_first_deletion_on_reviews_of_at_most_five_words():
    # K = 1 there, and for two classes occlusion's score is the drop in the log-odds of the predicted
    # class: the word it ranks first is, by definition, the one whose removal lowers p_c most.
    for seed in range(3):
        report = evaluate_faithfulness(explainer("lstm", seed=seed), SHORT_REVIEWS)
        occlusion = report.row("occlusion").aopc
        assert all(occlusion >= row.aopc - 1e-7 for row in report.rows)


def test_the_report_has_every_method_with_its_cost_and_ratios_to_ig_and_random():
    report = evaluate_faithfulness(explainer("lstm"), CORPUS + SHORT_REVIEWS, max_reviews=8)
    assert report.reviews == 8 and [r.method for r in report.rows] == list(METHODS)
    ig, random = report.row("integrated_gradients"), report.row("random")
    assert ig.aopc_vs_ig == pytest.approx(1.0) and ig.speedup_vs_ig == pytest.approx(1.0)
    for row in report.rows:
        assert row.ms_per_review > 0
        assert row.aopc_vs_ig == pytest.approx(row.aopc / ig.aopc)
        assert row.speedup_vs_ig == pytest.approx(ig.ms_per_review / row.ms_per_review)
        if random.aopc > 0:
            assert row.aopc_vs_random == pytest.approx(row.aopc / random.aopc)
    assert json.loads(json.dumps(report.to_dict()))["methods"][0]["method"] == "contributions"
    assert "| contributions |" in report.markdown() and "| integrated_gradients |" in report.markdown()


@pytest.mark.parametrize("cell, pooling", [("rnn", "last"), ("lstm", "mean")])
def test_contributions_are_skipped_and_say_why_without_an_exact_split(cell, pooling):
    report = evaluate_faithfulness(explainer(cell, pooling), SHORT_REVIEWS, methods=["contributions", "occlusion", "random"])
    assert [r.method for r in report.rows] == ["occlusion", "random"]
    assert "no exact gates split" in report.skipped["contributions"]
    assert "contributions: skipped" in report.markdown()


def test_texts_without_tokens_are_counted_and_left_out():
    report = evaluate_faithfulness(explainer("gru"), ["", "amazing cereal", "   "], methods=["random"])
    assert (report.reviews, report.unreadable) == (1, 2)
    with pytest.raises(ConfigError, match="no review to evaluate"):
        evaluate_faithfulness(explainer("gru"), [""], methods=["random"])


def test_an_unknown_method_is_named():
    with pytest.raises(ConfigError, match="unknown faithfulness methods \\['lime'\\]"):
        evaluate_faithfulness(explainer("gru"), SHORT_REVIEWS, methods=["lime"])
