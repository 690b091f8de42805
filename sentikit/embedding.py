"""Token ids -> input vectors: one learned vector per word, plus, optionally, one per hashed word pair.

A word's vector says what the word means alone; a review's sentiment often sits in a pair ("not bad",
"waste of", "must see"), which a recurrent cell has to compose from two vectors of `embedding_dim`
numbers. Bag-of-words models on IMDB gain most of their accuracy from such pairs (NBSVM: 88.3% with
words, 91.2% with words and bigrams, Wang & Manning 2012). `bigram_buckets > 0` gives each pair of
neighbouring tokens a vector of its own, added to the second word's, as fastText does: the pair
`(a, b)` reads row `(a * 2654435761 + b) mod bigram_buckets` of a second table, so no pair vocabulary has
to be built or saved, and pairs that share a row (rare ones, mostly) share a vector. The first token
pairs with `[PAD]`, which stands for "start of the review". The pair table starts at zero, so a fresh
model reads exactly as the words alone would, and learns only the pairs' differences from their words.
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sentikit.errors import ConfigError
from sentikit.tokenizer import PAD_ID

# A large odd multiplier (Knuth's 2^32 / golden ratio) spreads pairs that share a first word over the
# table; ids below 2^31 keep the product inside int64.
PAIR_MULTIPLIER = 2654435761


class WordEmbedding(nn.Embedding):
    """`nn.Embedding` over the vocabulary (`PAD_ID` row zero), plus the hashed word-pair vectors when
    `bigram_buckets > 0`. Its own weight keeps `nn.Embedding`'s name (`embedding.weight` in a
    classifier's state), so checkpoints and bundles from before the pair table load unchanged.

    Args:
        vocab_size: rows of the word table.
        embedding_dim: size of each vector.
        bigram_buckets: rows of the pair table; 0 reads words alone.
    """

    def __init__(self, vocab_size: int, embedding_dim: int, bigram_buckets: int = 0) -> None:
        super().__init__(vocab_size, embedding_dim, padding_idx=PAD_ID)
        if bigram_buckets < 0:
            raise ConfigError(f"bigram_buckets must be at least 0 (0 turns word pairs off), got {bigram_buckets}")
        self.bigram_buckets = bigram_buckets
        self.pad_id: int = PAD_ID  # `padding_idx` is Optional to TorchScript
        # No table at all when off: the state has no key for it, as before pairs existed. TorchScript
        # compiles a `None` submodule's branch away (as torchvision's ResNet blocks do their `downsample`).
        self.bigrams = nn.Embedding(bigram_buckets, embedding_dim) if bigram_buckets else None
        if self.bigrams is not None:
            nn.init.zeros_(self.bigrams.weight)

    def forward(self, token_ids: Tensor) -> Tensor:
        """`token_ids` `(batch, time)` right-padded with `PAD_ID` -> vectors `(batch, time, embedding_dim)`;
        padding stays zero."""
        words = F.embedding(token_ids, self.weight, self.padding_idx)  # (batch, time, embedding_dim)
        if self.bigrams is None:
            return words
        pairs = self.bigrams(bigram_rows(token_ids, self.bigram_buckets))
        return words + pairs * (token_ids != self.pad_id).unsqueeze(-1)


def bigram_rows(token_ids: Tensor, buckets: int, pad_id: int = PAD_ID, multiplier: int = PAIR_MULTIPLIER) -> Tensor:
    """The pair table's row for each position `t`: the hash of `(token_{t-1}, token_t)`, with `[PAD]`
    before the first token. `(batch, time)`, like `token_ids`. (The constants are arguments because
    TorchScript reads no module globals.)"""
    previous = torch.cat([torch.full_like(token_ids[:, :1], pad_id), token_ids[:, :-1]], dim=1)
    return (previous * multiplier + token_ids) % buckets
