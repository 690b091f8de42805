import pytest

from sentikit.errors import ConfigError
from sentikit.data.tokenizer import PAD_ID, UNK_ID, load_tokenizer, save_tokenizer, train_tokenizer

CORPUS = [
    "An amazing cereal , definitely buying again !",
    "This gave me nothing at all .",
    "Amazing crunch and amazing taste .<br /><br />Definitely recommended .",
    "Nothing special , but the crunch is amazing .",
] * 5


@pytest.mark.parametrize("kind", ["word", "wordpiece", "bpe"])
def test_special_tokens_take_the_first_ids(kind):
    tokenizer = train_tokenizer([CORPUS], kind=kind, vocab_size=200, min_frequency=1)
    assert tokenizer.token_to_id("[PAD]") == PAD_ID
    assert tokenizer.token_to_id("[UNK]") == UNK_ID


@pytest.mark.parametrize("kind", ["word", "wordpiece", "bpe"])
def test_save_and_load_round_trip_keeps_ids_and_offsets(kind, tmp_path):
    tokenizer = train_tokenizer([CORPUS], kind=kind, vocab_size=200, min_frequency=1)
    path = save_tokenizer(tokenizer, tmp_path / "tokenizer.json")
    reloaded = load_tokenizer(path)
    text = "AMAZING cereal,<br />definitely again"
    before, after = tokenizer.encode(text), reloaded.encode(text)
    assert after.ids == before.ids
    assert after.offsets == before.offsets


def test_offsets_point_into_the_original_text_through_lowercasing_and_html_breaks():
    tokenizer = train_tokenizer([CORPUS], kind="word", vocab_size=200, min_frequency=1)
    text = "Amazing!<br />Definitely"
    encoding = tokenizer.encode(text)
    words = [text[start:end] for start, end in encoding.offsets]
    assert words == ["Amazing", "!", "Definitely"]
    assert encoding.tokens == ["amazing", "!", "definitely"]


def test_unknown_words_map_to_unk_in_a_word_vocabulary():
    tokenizer = train_tokenizer([CORPUS], kind="word", vocab_size=200, min_frequency=1)
    assert tokenizer.encode("amazing zyzzyva").ids[1] == UNK_ID


def test_min_frequency_and_vocab_size_bound_the_vocabulary():
    tokenizer = train_tokenizer([CORPUS], kind="word", vocab_size=8, min_frequency=1)
    assert tokenizer.get_vocab_size() == 8
    rare = train_tokenizer([CORPUS], kind="word", vocab_size=1000, min_frequency=10)
    assert "amazing" in rare.get_vocab() and "cereal" not in rare.get_vocab()


def test_sub_word_tokenizers_split_unseen_words_into_known_pieces():
    tokenizer = train_tokenizer([CORPUS], kind="wordpiece", vocab_size=120, min_frequency=1)
    encoding = tokenizer.encode("amazingly")
    assert len(encoding.ids) > 1 and UNK_ID not in encoding.ids
    assert all(start >= 0 and end <= len("amazingly") for start, end in encoding.offsets)


def test_training_twice_gives_the_same_vocabulary():
    # DDP ranks each train their own tokenizer; it must come out identical.
    first = train_tokenizer([CORPUS], kind="word", vocab_size=200, min_frequency=1)
    second = train_tokenizer([list(CORPUS)], kind="word", vocab_size=200, min_frequency=1)
    assert first.get_vocab() == second.get_vocab()


def test_missing_or_malformed_tokenizer_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.json"):
        load_tokenizer(tmp_path / "nowhere.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="bad.json is not a valid tokenizers JSON"):
        load_tokenizer(bad)


def test_vocab_size_too_small_is_refused():
    with pytest.raises(ConfigError, match="vocab_size"):
        train_tokenizer([CORPUS], vocab_size=2)


@pytest.mark.parametrize("kind", ["word", pytest.param("wordpiece", marks=pytest.mark.slow), pytest.param("bpe", marks=pytest.mark.slow)])
def test_separate_processes_train_identical_tokenizers(kind):
    # Each DDP rank is its own process and trains its own tokenizer: ids must agree exactly.
    import subprocess
    import sys

    script = (
        "import hashlib, pyarrow.parquet as pq\n"
        "from sentikit.data.tokenizer import train_tokenizer\n"
        "texts = pq.read_table('data/sst2/train.parquet').column('text').to_pylist()[:20000]\n"
        f"tok = train_tokenizer([texts], kind='{kind}', vocab_size=3000, min_frequency=2)\n"
        "print(hashlib.sha256(tok.to_str().encode()).hexdigest())\n"
    )
    from conftest import REPO

    digests = {
        subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True).stdout
        for _ in range(3)
    }
    assert len(digests) == 1
