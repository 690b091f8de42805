"""`Explainer.explain`: exact per-word contributions, words of the original text, clear errors."""

import json

import pytest
import torch

from sentikit.errors import ConfigError
from sentikit.explain.explainer import Explainer, encode_text, memory_decay
from sentikit.nn.classifier import SentimentClassifier
from sentikit.data.tokenizer import train_tokenizer

CORPUS = [
    "this cereal is amazing and i am definitely buying it again",
    "the box gave up all its crunch in milk , not worth it",
    "i expected to hate it , but the flavour won me over",
    "unbelievable how bland this was",
]
REVIEW = "I expected to hate this cereal, but it is AMAZING: definitely buying again!"


def explainer(cell="lstm", kind="word", max_length=64, **model_args) -> Explainer:
    tokenizer = train_tokenizer([CORPUS], kind=kind, vocab_size=60 if kind != "word" else 200, min_frequency=1)
    torch.manual_seed(0)
    defaults = dict(embedding_dim=8, hidden_size=6, bidirectional=True)
    model = SentimentClassifier(tokenizer.get_vocab_size(), ["negative", "positive"], cell=cell, **{**defaults, **model_args})
    return Explainer(model, tokenizer, max_length)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_gate_contributions_plus_bias_are_the_logits(cell, num_layers, bidirectional):
    report = explainer(cell, num_layers=num_layers, bidirectional=bidirectional).explain(REVIEW)
    assert report["method"] == "gates"
    total = torch.tensor([w["contributions"] for w in report["words"]]).sum(0) + torch.tensor(report["bias"])
    torch.testing.assert_close(total, torch.tensor(report["logits"]), rtol=0, atol=1e-4)


def test_the_logits_are_the_model_s_own():
    ex = explainer("gru")
    report = ex.explain(REVIEW)
    encoded = encode_text(ex.tokenizer, REVIEW, 64)
    with torch.no_grad():
        logits = ex.model(torch.tensor([encoded.ids]), torch.tensor([len(encoded.ids)]))[0]
    torch.testing.assert_close(torch.tensor(report["logits"]), logits, rtol=0, atol=1e-6)
    assert report["label"] == ["negative", "positive"][int(logits.argmax())]
    assert sum(report["probabilities"]) == pytest.approx(1.0)


def test_retention_is_a_share_of_the_final_memory_over_the_review():
    report = explainer("lstm").explain(REVIEW)
    retention = [w["retention"] for w in report["words"]]
    assert all(r >= 0 for r in retention) and sum(retention) == pytest.approx(1.0)


@pytest.mark.parametrize("cell, pooling", [("rnn", "last"), ("lstm", "mean"), ("gru", "max"), ("gru", "max_mean")])
def test_without_an_exact_split_occlusion_is_used_and_says_so(cell, pooling):
    ex = explainer(cell, pooling=pooling)
    report = ex.explain(REVIEW)
    assert report["method"] == "occlusion"
    assert all(w["retention"] is None for w in report["words"])
    # each word's contribution is the logit drop when it is left out (here every word is one token)
    encoded = encode_text(ex.tokenizer, REVIEW, 64)
    ids = encoded.ids[:2] + encoded.ids[3:]
    with torch.no_grad():
        without_third = ex.model(torch.tensor([ids]), torch.tensor([len(ids)]))[0]
    expected = torch.tensor(report["logits"]) - without_third
    torch.testing.assert_close(torch.tensor(report["words"][2]["contributions"]), expected, rtol=0, atol=1e-5)
    with pytest.raises(ConfigError, match="use method='occlusion'"):
        ex.explain(REVIEW, method="gates")


def test_words_are_spans_of_the_original_text_and_sub_word_pieces_share_one_score():
    ex = explainer("gru", kind="wordpiece")
    text = "Unbelievable <br />crunch, DEFINITELY buying"
    encoded = encode_text(ex.tokenizer, text, 64)
    assert len(encoded.ids) > len(encoded.words)  # some words were cut into pieces
    report = ex.explain(text)
    assert [w["word"] for w in report["words"]] == ["Unbelievable", "crunch", ",", "DEFINITELY", "buying"]
    for w in report["words"]:
        assert text[w["start"] : w["end"]] == w["word"]
    json.dumps(report)  # plain data only


def test_gate_means_are_named_in_pytorch_s_convention():
    lstm, gru = explainer("lstm").explain(REVIEW), explainer("gru").explain(REVIEW)
    assert set(lstm["words"][0]["gates"]) == {"input", "forget", "output"}
    assert set(gru["words"][0]["gates"]) == {"reset", "update"}
    assert "share of the OLD state kept" in gru["convention"]
    assert all(0 <= v <= 1 for w in gru["words"] for v in w["gates"].values())


def test_long_reviews_are_truncated_to_max_length_and_say_so():
    report = explainer("gru", max_length=5).explain(REVIEW)
    assert report["truncated"] and report["num_tokens"] > 5
    assert len(report["words"]) == 5


@pytest.mark.parametrize("text", ["", "   \n\t ", "<br />"])
def test_a_text_without_words_is_refused_with_one_clear_message(text):
    with pytest.raises(ConfigError, match="^the text to explain is empty: it holds no word the tokenizer reads"):
        explainer("gru").explain(text)


def test_a_single_word_review_is_explained():
    report = explainer("lstm").explain("amazing")
    (word,) = report["words"]
    torch.testing.assert_close(torch.tensor(word["contributions"]) + torch.tensor(report["bias"]), torch.tensor(report["logits"]), rtol=0, atol=1e-5)


def test_memory_decay_estimate_matches_the_exact_jacobian_norm():
    ex = explainer("gru", bidirectional=False)
    ids = torch.tensor([encode_text(ex.tokenizer, REVIEW, 64).ids])
    lengths = torch.tensor([ids.shape[1]])
    estimate = memory_decay(ex.model, ids, lengths, probes=4000)[0]

    def final_state(embedded):
        _, h = ex.model.encoder.rnn(embedded[None])
        return h[-1, 0]

    jacobian = torch.autograd.functional.jacobian(final_state, ex.model.embedding(ids)[0].detach())  # (hidden, time, emb)
    exact = jacobian.pow(2).sum((0, 2)).sqrt()
    torch.testing.assert_close(estimate, exact, rtol=0.1, atol=1e-6)


def test_a_plain_rnn_s_memory_of_early_words_fades():
    ex = explainer("rnn", bidirectional=False, hidden_size=16)
    memory = [w["memory"] for w in ex.explain(" ".join(CORPUS[:2]))["words"]]
    assert memory[0] < 0.01 * memory[-1]
