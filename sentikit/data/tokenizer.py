"""Train, save and load the Hugging Face `tokenizers` tokenizer that turns reviews into token ids.

The tokenizer is trained on the training split only and travels with the model: it is written as
`tokenizer.json` beside the checkpoints and embedded in them, so validate/test/predict/explain never
re-train a different vocabulary. Character offsets are kept (the normalizers below preserve alignment),
which lets later stages map token scores back to the words the user typed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Literal

import torch
from tokenizers import Encoding, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from sentikit.atomic import write_text
from sentikit.errors import ConfigError

TokenizerKind = Literal["word", "wordpiece", "bpe"]

PAD_TOKEN, UNK_TOKEN = "[PAD]", "[UNK]"
PAD_ID, UNK_ID = 0, 1  # the trainers add the special tokens first, in this order

# Scripts written without spaces between words: CJK ideographs (with the iteration mark 々), hiragana,
# and katakana with its prolonged sound mark ー.
CJK_CHARACTER = r"[\p{Han}\p{Hiragana}\p{Katakana}々ー]"
CJK_RUN = CJK_CHARACTER + "+"


def is_kana(character: str) -> bool:
    """Hiragana, katakana (with the prolonged sound mark ー), their phonetic extensions, half-width katakana."""
    code = ord(character)
    return 0x3041 <= code <= 0x30FF or 0x31F0 <= code <= 0x31FF or 0xFF66 <= code <= 0xFF9F


def is_han(character: str) -> bool:
    """A CJK ideograph (the unified blocks and their extensions, compatibility ideographs) or 々."""
    code = ord(character)
    return (
        0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0xF900 <= code <= 0xFAFF
        or 0x20000 <= code <= 0x3134F or code == 0x3005
    )


def is_cjk(text: str) -> bool:
    """Whether `text` holds a Chinese or Japanese character (`CJK_CHARACTER` in Python)."""
    return any(is_han(c) or is_kana(c) for c in text)

# IMDB reviews carry raw HTML line breaks (`<br />`, `<br/>`, `<BR>`).
HTML_BREAK = Regex(r"(?i)<br\s*/?>")


def encode_texts(
    tokenizer: Tokenizer, texts: Sequence[str], max_length: int, offsets: bool = False
) -> tuple[list[list[int]], list[Encoding]]:
    """The token ids a model reads for `texts`, the same in training, bundles, explanations and predict-file:

    - at most the first `max_length` tokens of each text;
    - a text without any token (`""`, only spaces, only what the normalizer removes such as `<br />`)
      reads as one `[UNK]` (`UNK_ID`): a recurrent model needs at least one step, and an empty review
      then gets the same prediction wherever it is read.

    Returns the id lists and the encodings, untruncated (`len(encoding.ids)` counts the tokens before
    truncation); the encodings carry word ids and character offsets only with `offsets` (the fast path
    skips them), which `group_words` needs."""
    if max_length < 1:
        raise ConfigError(f"max_length must be at least 1, got {max_length}")
    encode = tokenizer.encode_batch if offsets else tokenizer.encode_batch_fast
    encodings = encode(list(texts), add_special_tokens=False)
    return [e.ids[:max_length] or [UNK_ID] for e in encodings], encodings


def group_words(encoding: Encoding, num_tokens: int) -> tuple[list[int], list[tuple[int, int]]]:
    """The words of the first `num_tokens` tokens of `encoding` (from `encode_texts(..., offsets=True)`):
    the word index of each token, and each word's character span `(start, end)` in the text.

    A word is what the pre-tokenizer cut (a run of letters, or of punctuation): the sub-word pieces of
    one word share it, and its span runs from its first piece's start to its last piece's end, so
    `text[start:end]` is the word as typed. Scores per token are summed per word with `token_word`. Only
    the encoding's own tokens have a word: the `[UNK]` that stands for a text without tokens has none.

    In Chinese and Japanese, where no space marks a word, each piece is a unit of its own (a character,
    or a piece that `bpe`/`wordpiece` learned), so a highlight can land on the characters that carry
    the sentiment rather than on a whole clause."""
    token_word: list[int] = []
    spans: list[tuple[int, int]] = []
    previous = None
    for position in range(min(num_tokens, len(encoding.ids))):
        word, (start, end) = encoding.word_ids[position], encoding.offsets[position]
        if word is None:
            raise ValueError("group_words needs word ids: encode with encode_texts(..., offsets=True)")
        if word != previous or is_cjk(encoding.tokens[position]):
            spans.append((start, end))
            previous = word
        else:  # another piece of the same word
            spans[-1] = (min(spans[-1][0], start), max(spans[-1][1], end))
        token_word.append(len(spans) - 1)
    return token_word, spans


def right_pad(sequences) -> tuple[torch.Tensor, torch.Tensor]:
    """`(batch, time)` token ids right-padded with `PAD_ID` to the longest of `sequences` (lists, arrays or
    tensors of ids), and their `(batch,)` lengths: the input every model of sentikit reads."""
    lengths = torch.tensor([len(s) for s in sequences])
    token_ids = torch.full((len(sequences), int(lengths.max())), PAD_ID, dtype=torch.long)
    for row, ids in enumerate(sequences):
        token_ids[row, : len(ids)] = torch.as_tensor(ids, dtype=torch.long)
    return token_ids, lengths


def build_tokenizer(kind: TokenizerKind = "word", lowercase: bool = True, strip_html: bool = True) -> Tokenizer:
    """An untrained tokenizer: normalizers -> pre-tokenizer -> `kind` model.

    `word` keeps whole words (one embedding per word, the classic RNN setup); `wordpiece` and `bpe`
    split rare words into sub-words so that no word is unknown.

    Chinese and Japanese are written without spaces, so a whitespace pre-tokenizer would read a whole
    clause as one "word", almost always unknown. Runs of CJK ideographs, hiragana and katakana are cut
    away from the rest of the text first: `word` and `wordpiece` read them one character at a time (as
    BERT's Chinese tokenizer does; WordPiece would turn a whole run into one `[UNK]` for a single
    unseen character), while `bpe` learns frequent multi-character pieces inside each run (`CJK_RUN`).
    Everything else, English mixed in included, is cut at spaces and punctuation, and full-width
    punctuation (`，`, `。`, `！`) is a token of its own. Every token keeps its
    character offsets into the original text (the normalizers keep the alignment).
    """
    steps = [normalizers.NFKC()]
    if strip_html:
        steps.append(normalizers.Replace(HTML_BREAK, " "))
    if lowercase:
        steps.append(normalizers.Lowercase())
    if kind == "word":
        tokenizer = Tokenizer(models.WordLevel(unk_token=UNK_TOKEN))
    elif kind == "wordpiece":
        tokenizer = Tokenizer(models.WordPiece(unk_token=UNK_TOKEN))
        tokenizer.decoder = decoders.WordPiece()
    elif kind == "bpe":
        tokenizer = Tokenizer(models.BPE(unk_token=UNK_TOKEN))
    else:
        raise ConfigError(f"unknown tokenizer kind {kind!r}; choose one of 'word', 'wordpiece', 'bpe'")
    tokenizer.normalizer = normalizers.Sequence(steps)
    cjk = CJK_RUN if kind == "bpe" else CJK_CHARACTER
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(cjk), behavior="isolated"),
            # Words and runs of punctuation ("!!!", ":)") become separate tokens.
            pre_tokenizers.Whitespace(),
        ]
    )
    return tokenizer


def train_tokenizer(
    texts: Iterable[list[str]],
    kind: TokenizerKind = "word",
    vocab_size: int = 20_000,
    min_frequency: int = 2,
    lowercase: bool = True,
    strip_html: bool = True,
    length: int | None = None,
) -> Tokenizer:
    """Train a tokenizer on batches of texts. `[PAD]` gets id 0 and `[UNK]` id 1."""
    if vocab_size < 3:
        raise ConfigError(f"vocab_size must be at least 3 (two special tokens and one word), got {vocab_size}")
    if min_frequency < 1:
        raise ConfigError(f"min_frequency must be at least 1, got {min_frequency}")
    tokenizer = build_tokenizer(kind, lowercase=lowercase, strip_html=strip_html)
    special = [PAD_TOKEN, UNK_TOKEN]
    common = dict(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=special, show_progress=False)
    if kind == "word":
        trainer = trainers.WordLevelTrainer(**common)
    elif kind == "wordpiece":
        trainer = trainers.WordPieceTrainer(**common)
    else:
        trainer = trainers.BpeTrainer(**common)
    tokenizer.train_from_iterator(_flatten(texts), trainer=trainer, length=length)
    if kind == "wordpiece":
        # The WordPiece trainer numbers its alphabet in hash-map order, which differs between
        # processes; DDP ranks must agree on every id, so renumber in a fixed order.
        vocab = tokenizer.get_vocab()
        ordered = special + sorted(token for token in vocab if token not in special)
        tokenizer.model = models.WordPiece({token: i for i, token in enumerate(ordered)}, unk_token=UNK_TOKEN)
    check_special_tokens(tokenizer, "the trained tokenizer")
    return tokenizer


def _flatten(batches: Iterable[list[str]]) -> Iterator[list[str]]:
    for batch in batches:
        yield [text for text in batch if text]


def check_special_tokens(tokenizer: Tokenizer, source: str) -> None:
    if tokenizer.token_to_id(PAD_TOKEN) != PAD_ID or tokenizer.token_to_id(UNK_TOKEN) != UNK_ID:
        raise ConfigError(
            f"{source} must map {PAD_TOKEN} to id {PAD_ID} and {UNK_TOKEN} to id {UNK_ID} "
            f"(got {tokenizer.token_to_id(PAD_TOKEN)} and {tokenizer.token_to_id(UNK_TOKEN)})"
        )


def tokenizer_from_string(content: str, source: str) -> Tokenizer:
    try:
        tokenizer = Tokenizer.from_str(content)
    except Exception as error:  # the Rust side raises a bare Exception for malformed JSON
        raise ConfigError(f"{source} is not a valid tokenizers JSON file: {error}") from None
    check_special_tokens(tokenizer, source)
    return tokenizer


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Load a `tokenizer.json` (a checkpoint's tokenizer comes from `sentikit.checkpoint.checkpoint_extras`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"tokenizer file not found: {path}")
    return tokenizer_from_string(path.read_text(encoding="utf-8"), str(path))


def save_tokenizer(tokenizer: Tokenizer, path: str | Path) -> Path:
    """Write `tokenizer.json` atomically (a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, tokenizer.to_str())
    return path


def vocabulary_fingerprint(tokenizer: Tokenizer) -> str:
    """A short hash of the vocabulary, to check that every DDP rank trained the same one."""

    vocab = json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False)
    return hashlib.sha256(vocab.encode()).hexdigest()[:16]
