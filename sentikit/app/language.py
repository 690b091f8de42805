"""Which language a review is written in, which language a bundle reads, and which models read a review.

The app serves English and Chinese bundles side by side and sends a review to the models of its
language. Three languages are told apart, by script alone (no model, no word list):

- a review is Chinese or Japanese when at least a quarter of its letters are CJK characters (Han or
  kana); so a Chinese review that names an `iPhone` stays Chinese, and an English review that mentions
  寿司 stays English. Among CJK reviews, one whose CJK characters are at least a tenth kana is Japanese
  (Japanese prose is mostly kana; a Chinese review may borrow a stray の); every other one is Chinese;
- everything else is "English": any review in Latin or other letters goes to the English models.

A bundle's language is its `meta.json` `language` when present, else read from its tokenizer's vocabulary:
a vocabulary of at least 10% CJK pieces reads Chinese, or Japanese when at least `JAPANESE_KANA_PIECES`
of them hold kana (a Japanese corpus uses nearly all the kana; the shipped Chinese vocabulary holds 4).
The shipped bundles carry no `language` key (their `meta.json` is hashed): their vocabulary says it.

There is no Japanese model (no labelled Japanese reviews ship with sentikit), so a Japanese review is read
by the Chinese models, which know the kanji (the kana are mostly unknown to them), and the page says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Sequence

from sentikit.data.tokenizer import is_cjk, is_han, is_kana
from sentikit.errors import ConfigError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

Language = Literal["en", "zh", "ja"]
LANGUAGES: tuple[Language, ...] = ("en", "zh", "ja")
LANGUAGE_NAMES = {"en": "English", "zh": "中文", "ja": "日本語"}  # each in its own script: the page's choices
# Why a review went to models of another language (`Route.note`): a key of `i18n.MESSAGES`.
Note = Literal["ja_read_by_zh", "no_model"]

CJK_SHARE = 0.25  # a review is CJK when at least this share of its letters are CJK characters
KANA_SHARE = 0.1  # ... and Japanese when at least this share of those are kana
VOCABULARY_CJK_SHARE = 0.1
JAPANESE_KANA_PIECES = 40


def review_language(text: str) -> Language:
    """The language of `text` by its characters (see the module docstring); "en" for a text without CJK."""
    han = kana = other = 0
    for character in text:
        if is_han(character):
            han += 1
        elif is_kana(character):
            kana += 1
        elif character.isalpha():
            other += 1
    cjk = han + kana
    if cjk == 0 or cjk < CJK_SHARE * (cjk + other):
        return "en"
    return "ja" if kana >= KANA_SHARE * cjk else "zh"


def vocabulary_language(tokenizer: "Tokenizer") -> Language:
    """The language a tokenizer was trained on, from the share of CJK pieces in its vocabulary."""
    pieces = [piece for piece in tokenizer.get_vocab() if not (piece.startswith("[") and piece.endswith("]"))]
    cjk = [piece for piece in pieces if is_cjk(piece)]
    if not cjk or len(cjk) < VOCABULARY_CJK_SHARE * len(pieces):
        return "en"
    kana = sum(any(is_kana(c) for c in piece) for piece in cjk)
    return "ja" if kana >= JAPANESE_KANA_PIECES else "zh"


def bundle_language(meta: dict, tokenizer: "Tokenizer", where: str = "the bundle") -> Language:
    """`meta["language"]` when the bundle says it, else `vocabulary_language(tokenizer)`."""
    if "language" not in meta:
        return vocabulary_language(tokenizer)
    language = meta["language"]
    if language not in LANGUAGES:
        raise ConfigError(f"{where}/meta.json names the language {language!r}; the app knows {list(LANGUAGES)}")
    return language


def page_language(accept_language: str | None) -> Language:
    """The language the page is shown in, from a request's `Accept-Language` header: its first language,
    as the browser's `navigator.language` that Gradio's own translations follow; Chinese and Japanese by
    their primary tag (`zh-CN`, `zh-TW`, `ja-JP`), English for anything else or nothing."""
    first = (accept_language or "").split(",")[0].split(";")[0].strip().lower()
    primary = first.split("-")[0]
    return primary if primary in ("zh", "ja") else "en"


@dataclass
class Route:
    """Which of the served models read a review: `models` are indices into the served list, in its order."""

    language: Language  # the review's (detected or chosen)
    models: list[int]
    note: Note | None = None  # why they are not models of `language`; None when they are


def route(languages: Sequence[Language], language: Language) -> Route:
    """The models (given by their languages, in the served order) that read a review in `language`: those of
    its language; for Japanese without a Japanese model, the Chinese ones; without any, all of them."""
    same = [index for index, own in enumerate(languages) if own == language]
    if same:
        return Route(language, same)
    chinese = [index for index, own in enumerate(languages) if own == "zh"]
    if language == "ja" and chinese:
        return Route(language, chinese, "ja_read_by_zh")
    return Route(language, list(range(len(languages))), "no_model")
