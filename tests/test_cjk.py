"""Chinese and Japanese, written without spaces: the tokenizer cuts them into pieces that keep their
place in the text, and the words an explanation colours are those pieces."""

from __future__ import annotations

import pytest

from sentikit.data.tokenizer import encode_texts, group_words, load_tokenizer, save_tokenizer, train_tokenizer

CHINESE = ["这家店的水果很新鲜，下次还会再买", "质量很差，再也不买了！", "物流很快，包装也很好。", "非常失望，水果都坏了"]
JAPANESE = ["この映画は本当に素晴らしかった！", "サービスが悪くて、二度と行きません。", "とても美味しいラーメンでした"]
MIXED = ["买了iPhone 15，great！！", "这个app很好用, highly recommended", "ソニーのheadphonesは最高です"]
ALL = CHINESE + JAPANESE + MIXED


@pytest.fixture(scope="module", params=["word", "wordpiece", "bpe"])
def tokenizer(request):
    return train_tokenizer([ALL * 3], kind=request.param, vocab_size=500, min_frequency=1)


def pieces(tokenizer, text: str) -> list[str]:
    _, (encoding,) = encode_texts(tokenizer, [text], 512, offsets=True)
    return [text[start:end] for start, end in encoding.offsets]


@pytest.mark.parametrize("text", ALL)
def test_every_piece_is_an_exact_slice_of_the_text_and_together_they_cover_it(tokenizer, text):
    _, (encoding,) = encode_texts(tokenizer, [text], 512, offsets=True)
    starts = [start for start, _ in encoding.offsets]
    assert starts == sorted(starts)
    assert "".join(pieces(tokenizer, text)) == "".join(text.split())  # every character but the spaces, in order


def test_a_chinese_review_is_read_in_many_pieces_not_as_one_word(tokenizer):
    assert len(pieces(tokenizer, "这家酒店非常好，服务很周到")) > 4


@pytest.mark.parametrize("kind", ["word", "wordpiece"])
def test_word_and_wordpiece_read_chinese_and_japanese_one_character_at_a_time(kind):
    tokenizer = train_tokenizer([ALL], kind=kind, vocab_size=500, min_frequency=1)
    assert pieces(tokenizer, "很新鲜") == ["很", "新", "鲜"]
    assert pieces(tokenizer, "素晴らしい") == ["素", "晴", "ら", "し", "い"]


def test_an_unseen_character_is_one_unknown_piece_not_a_lost_clause(tokenizer):
    assert len(pieces(tokenizer, "这家酒店非常好，服务很周到")) >= 13


def test_bpe_learns_multi_character_pieces_inside_a_run():
    tokenizer = train_tokenizer([["很新鲜"] * 50 + CHINESE], kind="bpe", vocab_size=300, min_frequency=2)
    assert "很新鲜" in pieces(tokenizer, "水果很新鲜")


@pytest.mark.parametrize("mark", ["，", "。", "！", "、", "？"])
def test_full_width_punctuation_is_a_piece_of_its_own(tokenizer, mark):
    assert mark in pieces(tokenizer, f"很好{mark}很快")


def test_english_inside_chinese_is_still_cut_at_spaces_and_punctuation(tokenizer):
    got = pieces(tokenizer, "买了iPhone 15，great！！")
    assert "iPhone" in "".join(got) and "great" in "".join(got)
    assert not any("了i" in piece or "e1" in piece for piece in got)  # no piece crosses a script boundary or a space


def test_each_chinese_piece_is_its_own_word_and_an_english_word_stays_whole():
    tokenizer = train_tokenizer([ALL * 3], kind="wordpiece", vocab_size=120, min_frequency=1)
    text = "水果很新鲜 headphones"
    ids, (encoding,) = encode_texts(tokenizer, [text], 512, offsets=True)
    _, spans = group_words(encoding, len(ids[0]))
    words = [text[start:end] for start, end in spans]
    assert words[:5] == ["水", "果", "很", "新", "鲜"] and words[-1] == "headphones"


def test_a_saved_tokenizer_cuts_the_same_pieces(tokenizer, tmp_path):
    reloaded = load_tokenizer(save_tokenizer(tokenizer, tmp_path / "tokenizer.json"))
    for text in ALL:
        assert pieces(reloaded, text) == pieces(tokenizer, text)
        assert encode_texts(reloaded, [text], 512)[0] == encode_texts(tokenizer, [text], 512)[0]


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("text", [JAPANESE[0], CHINESE[0], MIXED[2]])
def test_an_explanation_of_japanese_or_chinese_colours_slices_of_the_text_and_splits_the_logits_exactly(cell, text):
    import torch

    from sentikit.explain.explainer import Explainer
    from sentikit.nn.classifier import SentimentClassifier

    tokenizer = train_tokenizer([ALL * 3], kind="word", vocab_size=500, min_frequency=1)
    torch.manual_seed(0)
    model = SentimentClassifier(tokenizer.get_vocab_size(), ["negative", "positive"], cell=cell, embedding_dim=8, hidden_size=6).eval()
    report = Explainer(model, tokenizer, max_length=64).explain(text)
    words = report["words"]
    assert len(words) > 5
    assert all(text[w["start"] : w["end"]] == w["word"] for w in words)
    cjk_words = [w["word"] for w in words if any("\u3040" <= ch <= "\u9fff" for ch in w["word"])]
    assert cjk_words and all(len(word) == 1 for word in cjk_words)  # one character each
    for k in range(2):
        total = sum(w["contributions"][k] for w in words) + report["bias"][k]
        assert total == pytest.approx(report["logits"][k], abs=1e-4)


def test_predict_file_reports_the_characters_the_chinese_gates_kept(tmp_path):
    import json

    from conftest import REPO
    from sentikit.cli import main

    reviews = ["这家店的水果很新鲜，下次还会再买", "质量太差了，再也不买了"]
    source = tmp_path / "reviews.csv"
    source.write_text("text\n" + "\n".join(reviews) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    main(["predict-file", "--bundle", str(REPO / "data" / "bundles" / "zh-shopping-gru"), "--input", str(source),
          "--text-column", "text", "--output", str(out), "--top-words", "3"])
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [row["label"] for row in rows] == ["positive", "negative"]
    for row, review in zip(rows, reviews):
        assert len(row["top_words"]) == 3 and all(len(word) == 1 and word in review for word in row["top_words"])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_shipped_chinese_bundle_explains_a_review_in_characters_whose_parts_add_up_to_the_logits(cell):
    from conftest import REPO
    from sentikit.explain.explainer import Explainer

    text = "这家店的水果很新鲜，下次还会再买"
    report = Explainer.from_bundle(REPO / "data" / "bundles" / f"zh-shopping-{cell}").explain(text)
    assert report["label"] == "positive" and len(report["words"]) > 2
    assert all(text[w["start"] : w["end"]] == w["word"] for w in report["words"])
    for k in range(2):
        assert sum(w["contributions"][k] for w in report["words"]) + report["bias"][k] == pytest.approx(report["logits"][k], abs=1e-4)
