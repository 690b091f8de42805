"""What the demo page shows for a review, built from the shipped bundles without a server or a browser."""

import html
import re
import warnings
from pathlib import Path

import pytest

from sentikit.app.layout import DEFAULT_BUNDLES, EXAMPLES, build_parser
from sentikit.errors import ConfigError
from sentikit.app.page import (
    CLASS_COLOURS,
    MAX_UNREAD_CHARS,
    explain_one,
    explain_review,
    find_model,
    gates_html,
    highlight_html,
    load_models,
    model_view,
    signed_scores,
    survival_frame,
    survival_scores,
)

CEREAL = EXAMPLES[0]
SPAN = re.compile(r'<span class="sk-word" data-start="(\d+)" data-end="(\d+)" data-score="([^"]+)" title="[^"]*" style="background-color: rgba\(([\d, ]+), ([\d.]+)\)">(.*?)</span>')


@pytest.fixture(scope="module")
def models():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return load_models(DEFAULT_BUNDLES)


@pytest.fixture(scope="module")
def cereal(models):
    return explain_review(models, CEREAL)


def spans(markup: str) -> list[tuple[int, int, float, str, float, str]]:
    return [(int(a), int(b), float(score), colour, float(alpha), html.unescape(word)) for a, b, score, colour, alpha, word in SPAN.findall(markup)]


def test_the_shipped_models_are_served_rnn_lstm_gru_side_by_side(models):
    assert [m.cell for m in models] == ["rnn", "lstm", "gru"]
    assert [m.explainer.exact for m in models] == [False, True, True]
    assert all("% on validation.parquet" in m.title for m in models)


def test_the_cereal_review_is_positive_and_amazing_pushes_it_most_for_the_gated_cells(models, cereal):
    for model, report in zip(models, cereal):
        assert report["label"] == "positive", model.name
    for report in cereal[1:]:
        scores = signed_scores(report)
        words = [w["word"] for w in report["words"]]
        assert words[scores.index(max(scores))] == "amazing"


def test_every_highlighted_span_is_a_word_of_the_review_and_the_text_between_is_kept(cereal):
    for report in cereal:
        markup = highlight_html(report, "contribution")
        found = spans(markup)
        assert [(a, b, word) for a, b, _, _, _, word in found] == [(w["start"], w["end"], w["word"]) for w in report["words"]]
        assert all(CEREAL[a:b] == word for a, b, _, _, _, word in found)
        assert html.unescape(re.sub(r"<[^>]+>", "", markup)) == CEREAL


def test_a_word_is_green_when_it_pushed_towards_positive_red_towards_negative_and_darker_when_stronger(cereal):
    found = spans(highlight_html(cereal[1], "contribution"))
    for _, _, score, colour, alpha, _ in found:
        assert colour == (CLASS_COLOURS[1] if score >= 0 else CLASS_COLOURS[0])
    strongest = max(found, key=lambda span: abs(span[2]))
    assert strongest[4] == pytest.approx(1.0)
    ordered = sorted(found, key=lambda span: abs(span[2]))
    assert [span[4] for span in ordered] == sorted(span[4] for span in found)


def test_two_class_scores_are_the_push_towards_the_second_class_minus_the_first(cereal):
    report = cereal[2]
    assert signed_scores(report) == [w["contributions"][1] - w["contributions"][0] for w in report["words"]]


def test_retention_shows_the_gates_share_of_the_final_memory_and_the_rnn_its_memory_decay(models, cereal):
    rnn, lstm = cereal[0], cereal[1]
    shares, kind = survival_scores(lstm)
    assert kind == "retention" and shares == [w["retention"] for w in lstm["words"]]
    shares, kind = survival_scores(rnn)
    assert kind == "memory decay" and sum(shares) == pytest.approx(1.0)
    assert all(w["memory"] is not None for w in rnn["words"])
    assert "retention)" in highlight_html(lstm, "retention") and "memory decay)" in highlight_html(rnn, "retention")
    assert "memory decay" in model_view(models[0], rnn, "retention").summary


def test_the_plain_rnn_memory_of_early_words_fades(cereal):
    shares, _ = survival_scores(cereal[0])
    third = len(shares) // 3
    assert sum(shares[:third]) < sum(shares[-third:]) / 5


def test_the_gate_heatmap_names_each_cell_s_gates_in_pytorch_s_convention(cereal):
    rnn, lstm, gru = (gates_html(r) for r in cereal)
    assert "no gates" in rnn
    assert all(name in lstm for name in ("input i", "forget f", "output o"))
    assert "reset r" in gru and "update z" in gru and "OLD state" in gru
    assert lstm.count("<td ") == 3 * len(cereal[1]["words"])


def test_the_summary_names_the_method_and_the_rnn_is_labelled_as_occlusion(models, cereal):
    rnn, lstm = model_view(models[0], cereal[0]), model_view(models[1], cereal[1])
    assert "occlusion" in rnn.summary and "gates split" in lstm.summary
    assert lstm.probabilities == dict(zip(cereal[1]["classes"], cereal[1]["probabilities"]))


def test_the_survival_plot_has_one_point_per_word_and_model(models, cereal):
    frame = survival_frame(models, cereal)
    assert list(frame.columns) == ["position", "word", "share", "model"]
    assert len(frame) == sum(len(r["words"]) for r in cereal)
    assert sorted(frame["model"].unique()) == sorted(
        ["RNN memory decay (sst2-rnn)", "LSTM retention (sst2-lstm)", "GRU retention (sst2-gru)"]
    )


@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_an_empty_review_gets_a_clear_message(models, text):
    with pytest.raises(ConfigError, match="the review is empty"):
        explain_one(models[1], text)


def test_a_long_review_is_truncated_with_a_visible_note_and_its_unread_rest_greyed(models):
    text = "a fine and moving film . " * 20_000  # 500,000 characters
    report = explain_one(models[1], text)
    assert report["truncated"] and len(report["words"]) <= report["max_length"]
    view = model_view(models[1], report)
    assert f"Only the first {report['max_length']} of {report['num_tokens']} tokens were read" in view.summary
    unread = re.search(r'<span class="sk-unread">(.*?)</span>', view.highlight, re.S).group(1)
    assert len(html.unescape(unread)) == MAX_UNREAD_CHARS + 1 and unread.endswith("…")


@pytest.mark.parametrize(
    "text",
    [
        "<script>alert('x')</script> <b>great</b> film &amp; more",
        "I loved it 😍🍿 best popcorn movie 🎬",
        "הסרט היה נהדר",  # Hebrew, right to left
        "这部电影非常好看",  # Chinese
        "Der Film war wunderbar, ein Meisterwerk",
    ],
)
def test_html_emoji_and_other_scripts_give_an_escaped_result_that_reads_as_typed(models, text):
    for model in models:
        report = explain_one(model, text)
        assert report["label"] in report["classes"]
        markup = model_view(model, report).highlight
        assert "<script>" not in markup and "<b>" not in markup
        assert 'dir="auto"' in markup
        assert html.unescape(re.sub(r"<[^>]+>", "", markup)) == text


def test_a_model_is_found_by_bundle_name_or_cell_and_the_first_is_the_default(models):
    assert find_model(models, "sst2-gru").cell == "gru"
    assert find_model(models, "LSTM").name == "sst2-lstm"
    assert find_model(models, "") is models[0]
    with pytest.raises(ConfigError, match=r"no served model is called 'bert'; choose one of \['sst2-rnn', 'sst2-lstm', 'sst2-gru'\]"):
        find_model(models, "bert")


def test_bundles_must_exist_and_have_different_names(tmp_path):
    with pytest.raises(FileNotFoundError, match="bundle not found"):
        load_models([tmp_path / "missing"])
    with pytest.raises(ConfigError, match="no bundle to serve"):
        load_models([])
    with pytest.raises(ConfigError, match="share the name 'sst2-gru'"):
        load_models([DEFAULT_BUNDLES[2], DEFAULT_BUNDLES[2]])


def test_the_app_binds_to_this_machine_only_unless_asked():
    args = build_parser().parse_args([])
    assert (args.host, args.port, args.share) == ("127.0.0.1", 7860, False)
    assert [Path(p).name for p in DEFAULT_BUNDLES] == ["sst2-rnn", "sst2-lstm", "sst2-gru"]
