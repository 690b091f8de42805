"""What the demo page shows for a review, built from the shipped bundles without a server or a browser:
English reviews read by the SST-2 models, Chinese (and Japanese) ones by the Chinese models, the page's
words in English, Chinese or Japanese."""

import html
import re
import warnings
from pathlib import Path

import pytest

from tokenizers import Tokenizer, models as tokenizer_models

from sentikit.app.i18n import INTRO, MESSAGES, STATIC, gradio_translations, label_name, message
from sentikit.app.language import Route, bundle_language, is_han, is_kana, page_language, review_language, route, vocabulary_language
from sentikit.app.layout import DEFAULT_BUNDLES, EXAMPLES, SHIPPED_BUNDLES, ZH_EXAMPLES, build_parser
from sentikit.errors import ConfigError
from sentikit.app.page import (
    CLASS_COLOURS,
    MAX_PAGE_TOKENS,
    MAX_UNREAD_CHARS,
    DemoModel,
    explain_one,
    explain_review,
    find_model,
    gates_html,
    highlight_html,
    legend_html,
    load_models,
    model_view,
    route_review,
    signed_scores,
    survival_frame,
    survival_scores,
)

CEREAL = EXAMPLES[0]
ZH_CEREAL = ZH_EXAMPLES[0]
SPAN = re.compile(r'<span class="sk-word" data-start="(\d+)" data-end="(\d+)" data-score="([^"]+)" title="[^"]*" style="background-color: rgba\(([\d, ]+), ([\d.]+)\)">(.*?)</span>')


@pytest.fixture(scope="module")
def served():
    """Every shipped bundle there is, as `python app.py` serves them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return load_models(DEFAULT_BUNDLES)


@pytest.fixture(scope="module")
def models(served):
    """The English ones: the SST-2 RNN, LSTM and GRU."""
    return [m for m in served if m.language == "en"]


@pytest.fixture(scope="module")
def chinese(served):
    return [m for m in served if m.language == "zh"]


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
        ["RNN memory decay (english-rnn)", "LSTM retention (english-lstm)", "GRU retention (english-gru)"]
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


def test_the_page_reads_at_most_its_own_limit_of_a_bundle_that_reads_more(models):
    """The English bundles read 2,048 tokens; the page reads 256 of them. The RNN's occlusion costs the
    square of the length, and a few 2,048-token reviews once took the server past 20 GB."""
    assert all(m.meta["max_length"] == 2048 for m in models[:3])
    report = explain_one(models[0], "a fine and moving film . " * 200)  # 1,200 tokens
    assert (report["num_tokens"], report["max_length"], report["truncated"]) == (1200, MAX_PAGE_TOKENS, True)
    assert len(report["words"]) == MAX_PAGE_TOKENS


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
    assert find_model(models, "english-gru").cell == "gru"
    assert find_model(models, "LSTM").name == "english-lstm"
    assert find_model(models, "") is models[0]
    with pytest.raises(ConfigError, match=r"no served model is called 'bert'; choose one of \['english-rnn', 'english-lstm', 'english-gru'\]"):
        find_model(models, "bert")


def fake(name: str, cell: str, language: str) -> DemoModel:
    """A served model as `find_model` and `route_review` see it: a name, a cell, a language (no weights)."""
    return DemoModel(name, None, {"cell": cell}, language=language)


SIX = [fake(f"{data}-{cell}", cell, language) for data, language in (("en", "en"), ("zh", "zh")) for cell in ("rnn", "lstm", "gru")]


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("", "a warm , funny film", "en-rnn"),  # nothing named: the first model of the review's language
        ("", "这家店的水果很新鲜", "zh-rnn"),
        ("", "このシリアルはとても美味しい", "zh-rnn"),  # Japanese: read by the Chinese models
        ("lstm", "a warm , funny film", "en-lstm"),  # a cell: that cell among the review's language's models
        ("LSTM", "这家店的水果很新鲜", "zh-lstm"),
        ("lstm", None, "en-lstm"),  # no review: the first served LSTM
        ("en-gru", "这家店的水果很新鲜", "en-gru"),  # a bundle name: used as named, whatever the review
        ("zh-gru", "a warm , funny film", "zh-gru"),
    ],
)
def test_a_cell_or_no_name_picks_among_the_models_of_the_review_s_language_and_a_bundle_name_as_named(name, text, expected):
    assert find_model(SIX, name, text).name == expected


def test_a_cell_that_the_review_s_language_lacks_is_the_first_served_one_of_that_cell():
    served = [fake("en-lstm", "lstm", "en"), fake("en-gru", "gru", "en"), fake("zh-gru", "gru", "zh")]
    assert find_model(served, "lstm", "这家店的水果很新鲜").name == "en-lstm"
    assert find_model(served, "gru", "这家店的水果很新鲜").name == "zh-gru"
    with pytest.raises(ConfigError, match="no served model is called 'bert'"):
        find_model(served, "bert", "这家店的水果很新鲜")


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("This cereal is amazing.", "en"),
        ("Der Film war wunderbar, ein Meisterwerk", "en"),  # any other letters: the English models
        ("", "en"),
        ("😀🍿 !!! 123", "en"),
        ("这家店的水果很新鲜，下次还会再买", "zh"),
        ("iPhone 很好用，电池也耐用", "zh"),  # a Latin brand name in a Chinese review
        ("I love the 寿司 here, the fish is always fresh and the staff are kind", "en"),  # two ideographs in English
        ("我の天啊这个东西真的太好用了吧哈哈哈", "zh"),  # one stray kana among many ideographs
        ("このシリアルはとても美味しい。また買います。", "ja"),
        ("サクサクでおいしい", "ja"),
        ("最高！", "zh"),  # Japanese in kanji alone reads as Chinese (and goes to the same models)
    ],
)
def test_a_review_s_language_is_read_from_its_characters(text, language):
    assert review_language(text) == language


def tokenizer_of(pieces: list[str]) -> Tokenizer:
    vocabulary = {piece: index for index, piece in enumerate(["[PAD]", "[UNK]", *pieces])}
    return Tokenizer(tokenizer_models.WordLevel(vocabulary, unk_token="[UNK]"))


HIRAGANA = [chr(code) for code in range(0x3042, 0x3094)]  # 82 kana


def test_a_bundle_s_language_comes_from_its_vocabulary_or_its_meta_json():
    english = tokenizer_of("the a film is good bad not but and very dull warm funny plot cast , . ! ?".split() + ["寿"])  # 5% CJK
    chinese = tokenizer_of(list("的不了是一好很有买我这还") + ["the", ",", "の"])
    japanese = tokenizer_of(list("美味買") + HIRAGANA[:40] + ["the"])
    assert [vocabulary_language(t) for t in (english, chinese, japanese)] == ["en", "zh", "ja"]
    assert bundle_language({}, chinese) == "zh" and bundle_language({"language": "ja"}, chinese) == "ja"
    with pytest.raises(ConfigError, match=r"my-bundle/meta.json names the language 'klingon'; the app knows \['en', 'zh', 'ja'\]"):
        bundle_language({"language": "klingon"}, chinese, "my-bundle")


def test_the_shipped_bundles_read_english_or_chinese_by_their_vocabulary(served):
    assert {m.name: m.language for m in served} == {m.name: "en" if m.name.startswith("english-") else "zh" for m in served}
    assert all("language" not in m.meta for m in served)  # their meta.json says nothing: the vocabulary does


@pytest.mark.parametrize(
    ("languages", "language", "expected"),
    [
        (["en", "en", "zh"], "zh", Route("zh", [2])),
        (["en", "en", "zh"], "en", Route("en", [0, 1])),
        (["en", "zh", "zh"], "ja", Route("ja", [1, 2], "ja_read_by_zh")),
        (["en", "zh", "ja"], "ja", Route("ja", [2])),
        (["en", "en"], "zh", Route("zh", [0, 1], "no_model")),
        (["zh"], "en", Route("en", [0], "no_model")),
    ],
)
def test_a_review_goes_to_the_models_of_its_language_japanese_to_the_chinese_ones(languages, language, expected):
    assert route(languages, language) == expected


def test_the_page_routes_a_review_by_its_characters_unless_the_language_is_chosen():
    assert route_review(SIX, "a warm , funny film").models == [0, 1, 2]
    assert route_review(SIX, "这家店的水果很新鲜").models == [3, 4, 5]
    assert route_review(SIX, "a warm , funny film", "zh") == Route("zh", [3, 4, 5])
    assert route_review(SIX, "このシリアルはとても美味しい") == Route("ja", [3, 4, 5], "ja_read_by_zh")


@pytest.mark.parametrize(
    ("header", "language"),
    [
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh"),
        ("zh-TW", "zh"),
        ("ja-JP,ja;q=0.9", "ja"),
        ("ja", "ja"),
        ("en-GB,en;q=0.9", "en"),
        ("fr-FR,zh;q=0.5", "en"),  # the first language only, as the browser's navigator.language
        ("", "en"),
        (None, "en"),
    ],
)
def test_the_page_s_language_is_the_browser_s_first_language(header, language):
    assert page_language(header) == language


def test_every_translation_has_the_english_keys_and_fields():
    fields = re.compile(r"\{(\w+)\}")
    for language in ("zh", "ja"):
        assert STATIC[language].keys() == STATIC["en"].keys()
        assert MESSAGES[language].keys() == MESSAGES["en"].keys()
        for key, text in MESSAGES["en"].items():
            assert sorted(fields.findall(MESSAGES[language][key])) == sorted(fields.findall(text)), (language, key)
        for key, text in STATIC["en"].items():
            assert sorted(fields.findall(STATIC[language][key])) == sorted(fields.findall(text)), (language, key)


def test_gradio_gets_the_static_texts_under_prefixed_keys_with_their_fields_filled():
    tables = gradio_translations({"zh": {"model_0": "### GRU · zh-shopping-gru"}}, limit="20,000")
    assert sorted(tables) == ["en", "ja", "zh"]
    assert tables["zh"]["sk_placeholder"] == "输入或粘贴一条评论（最多 20,000 个字符）"
    assert tables["zh"]["sk_model_0"] == "### GRU · zh-shopping-gru" and tables["zh"]["sk_intro"] == INTRO["zh"]
    for table in tables.values():
        assert all(key.startswith("sk_") and "{" not in text and "}" not in text for key, text in table.items())


def test_the_page_writes_its_words_in_the_browser_s_language(models, cereal):
    lstm = cereal[1]
    assert "推向<b>正面</b>" in legend_html(models, "contribution", "zh")
    assert "<b>ポジティブ</b>へ押した" in legend_html(models, "contribution", "ja")
    assert "pushed towards <b>positive</b>" in legend_html(models, "contribution")
    view = model_view(models[1], lstm, "retention", "zh")
    assert view.summary.startswith("**正面** (") and "门的精确分解" in view.summary and view.summary.endswith("保留")
    assert view.probabilities == {"负面": lstm["probabilities"][0], "正面": lstm["probabilities"][1]}
    assert "遗忘门 f" in view.gates and "（保留）" in view.highlight
    assert "忘却 f" in gates_html(lstm, "ja") and "素の RNN" in gates_html(cereal[0], "ja")
    assert set(survival_frame(models, cereal, "ja")["model"]) == {"RNN 記憶の減衰 (english-rnn)", "LSTM 保持 (english-lstm)", "GRU 保持 (english-gru)"}
    assert models[1].heading("zh").endswith(f"在 validation.parquet 上 {100 * models[1].meta['validation']['accuracy']:.1f}%")
    assert label_name("positive", "ja") == "ポジティブ" and label_name("neutral", "zh") == "neutral"
    assert message("note_no_model", "zh", read_as="中文") == "没有读中文的模型：所有模型都来读这条评论。"


def test_the_examples_are_english_then_chinese_with_one_japanese():
    assert {review_language(text) for text in EXAMPLES} == {"en"}
    assert [review_language(text) for text in ZH_EXAMPLES] == ["zh"] * (len(ZH_EXAMPLES) - 1) + ["ja"]


def test_the_chinese_cereal_review_is_positive_its_key_characters_push_it_and_the_gates_keep_zai_mai(chinese):
    gated = [m for m in chinese if m.explainer.exact]
    assert gated, "no gated Chinese model is served"
    for model in gated:
        report = explain_one(model, ZH_CEREAL)
        assert report["label"] == "positive", model.name
        words = [w["word"] for w in report["words"]]
        pushes = signed_scores(report)
        strongest = [words[i] for i in sorted(range(len(words)), key=lambda i: -pushes[i])[:3]]
        assert set(strongest) <= set("好吃脆香甜再买"), (model.name, strongest)  # tasty, crunchy, fragrant, sweet, buy again
        retention = [w["retention"] for w in report["words"]]
        kept = [words[i] for i in sorted(range(len(words)), key=lambda i: -retention[i])[:4]]
        assert {"再", "买"} <= set(kept), (model.name, kept)


@pytest.mark.parametrize("text", ["这家店的水果很新鲜，下次还会再买", ZH_CEREAL, ZH_EXAMPLES[-1]], ids=["fruit", "cereal", "japanese"])
def test_a_chinese_or_japanese_review_gives_one_highlighted_span_per_character(chinese, text):
    for model in chinese:
        report = explain_one(model, text)
        for highlight in ("contribution", "retention"):
            markup = highlight_html(report, highlight)
            found = spans(markup)
            assert [word for *_, word in found] == [c for c in text if not c.isspace()]
            assert all(text[a:b] == word and b == a + 1 for a, b, _, _, _, word in found)
            assert html.unescape(re.sub(r"<[^>]+>", "", markup)) == text
            assert f'lang="{review_language(text)}"' in markup
        if model.cell == "rnn":
            continue  # no gates, no heatmap
        characters = sum(is_han(c) or is_kana(c) for c in text)  # upright in the heatmap's header; punctuation turned as Latin
        assert gates_html(report).count(f'<th dir="auto" lang="{review_language(text)}">') == characters


def test_the_app_serves_the_six_shipped_bundles_english_first(served):
    assert [(m.name, m.cell, m.language) for m in served] == [
        (f"{data}-{cell}", cell, language) for data, language in (("english", "en"), ("zh-shopping", "zh")) for cell in ("rnn", "lstm", "gru")
    ]


def test_bundles_must_exist_and_have_different_names(tmp_path):
    with pytest.raises(FileNotFoundError, match="bundle not found"):
        load_models([tmp_path / "missing"])
    with pytest.raises(ConfigError, match="no bundle to serve"):
        load_models([])
    with pytest.raises(ConfigError, match="share the name 'english-gru'"):
        load_models([DEFAULT_BUNDLES[2], DEFAULT_BUNDLES[2]])


def test_the_app_binds_to_this_machine_only_unless_asked():
    args = build_parser().parse_args([])
    assert (args.host, args.port, args.share) == ("127.0.0.1", 7860, False)
    assert [Path(p).name for p in SHIPPED_BUNDLES] == [f"{data}-{cell}" for data in ("english", "zh-shopping") for cell in ("rnn", "lstm", "gru")]
    assert DEFAULT_BUNDLES == [p for p in SHIPPED_BUNDLES if p.exists()] and DEFAULT_BUNDLES[:3] == SHIPPED_BUNDLES[:3]
