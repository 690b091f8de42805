"""The input vectors: words alone by default, plus hashed word-pair vectors with `bigram_buckets`."""

import pytest
import torch
from torch import nn

from sentikit.embedding import WordEmbedding, bigram_rows
from sentikit.errors import ConfigError
from sentikit.model import SentimentClassifier
from sentikit.tokenizer import PAD_ID


def with_random_pairs(vocab_size: int = 40, dim: int = 6, buckets: int = 97) -> WordEmbedding:
    embedding = WordEmbedding(vocab_size, dim, buckets)
    nn.init.normal_(embedding.bigrams.weight)
    return embedding


def test_without_pairs_it_is_a_plain_embedding_whose_state_old_checkpoints_load():
    old = nn.Embedding(40, 6, padding_idx=PAD_ID)
    embedding = WordEmbedding(40, 6)
    embedding.load_state_dict(old.state_dict())  # strict: the same single key
    ids = torch.tensor([[3, 9, 4], [5, 0, 0]])
    torch.testing.assert_close(embedding(ids), old(ids), rtol=0, atol=0)


def test_a_fresh_pair_table_reads_as_the_words_alone():
    with_pairs, words = WordEmbedding(40, 6, bigram_buckets=97), WordEmbedding(40, 6)
    words.load_state_dict(with_pairs.state_dict(), strict=False)
    ids = torch.tensor([[3, 9, 4, 7], [5, 2, 0, 0]])
    torch.testing.assert_close(with_pairs(ids), words(ids), rtol=0, atol=0)


def test_a_word_reads_differently_after_different_words_and_the_same_after_the_same():
    embedding = with_random_pairs()
    ids = torch.tensor([[3, 9, 4, 9], [5, 9, 3, 9]])
    vectors = embedding(ids)
    assert not torch.allclose(vectors[0, 1], vectors[1, 1])  # (3, 9) against (5, 9)
    torch.testing.assert_close(vectors[0, 1], vectors[1, 3])  # (3, 9) in another review and place


def test_the_first_word_pairs_with_the_start_and_padding_stays_zero():
    embedding = with_random_pairs()
    ids = torch.tensor([[7, 8, 0, 0]])
    rows = bigram_rows(ids, 97)
    assert rows[0, 0] == bigram_rows(torch.tensor([[PAD_ID, 7]]), 97)[0, 1]
    assert torch.all(embedding(ids)[0, 2:] == 0)


def test_pair_rows_are_spread_over_the_table():
    ids = torch.arange(2, 402).reshape(1, -1)  # 400 distinct pairs
    assert len(bigram_rows(ids, 1000).unique()) > 300


def test_training_moves_only_the_pairs_the_batch_holds():
    torch.manual_seed(0)
    model = SentimentClassifier(40, ["negative", "positive"], embedding_dim=6, hidden_size=5, bigram_buckets=97)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.01)
    ids, lengths = torch.tensor([[3, 9, 4, 7], [5, 2, 0, 0]]), torch.tensor([4, 2])
    for _ in range(3):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(ids, lengths), torch.tensor([1, 0])).backward()
        optimizer.step()
    moved = set(model.embedding.bigrams.weight.abs().sum(1).nonzero().flatten().tolist())
    assert moved == set(bigram_rows(ids, 97)[ids != PAD_ID].tolist())


def test_a_negative_table_size_is_refused():
    with pytest.raises(ConfigError, match="bigram_buckets must be at least 0"):
        SentimentClassifier(40, ["negative", "positive"], bigram_buckets=-1)
