"""Per-token contributions: an exact split of the logits, crediting each write to the tokens it came from."""

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from sentikit.gates.contributions import token_contributions
from sentikit.gates.replay import replay_reading

MODULES = {"lstm": nn.LSTM, "gru": nn.GRU}
LENGTHS = torch.tensor([7, 3, 1, 5])


def split(rnn, head, x, lengths):
    directions = 2 if rnn.bidirectional else 1
    with torch.no_grad():
        weights, candidates, states = replay_reading(rnn.mode.lower(), rnn._flat_weights, rnn.num_layers, directions, x, lengths)
        return token_contributions(rnn.mode.lower(), lengths, weights, candidates, states, head.weight)


def logits(rnn, head, x, lengths):
    directions = 2 if rnn.bidirectional else 1
    with torch.no_grad():
        _, state = rnn(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
        h_n = state[0] if isinstance(state, tuple) else state
        return head(torch.cat(list(h_n[-directions:]), dim=-1))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_contributions_plus_bias_are_the_logits_for_every_review_of_a_padded_batch(cell, num_layers, bidirectional):
    torch.manual_seed(num_layers)
    rnn = MODULES[cell](8, 16, num_layers=num_layers, bidirectional=bidirectional, batch_first=True)
    head = nn.Linear(16 * (2 if bidirectional else 1), 3)
    x = torch.randn(4, 7, 8)
    parts = split(rnn, head, x, LENGTHS)
    assert parts.shape == (4, 7, 3)
    torch.testing.assert_close(parts.sum(1) + head.bias.detach(), logits(rnn, head, x, LENGTHS), rtol=0, atol=1e-5)
    assert (parts[1, 3:] == 0).all()  # review 1 has 3 tokens: nothing at its padding


def test_a_review_split_alone_or_in_a_batch_gets_the_same_parts():
    torch.manual_seed(0)
    rnn, head = nn.GRU(8, 16, num_layers=2, bidirectional=True, batch_first=True), nn.Linear(32, 2)
    x = torch.randn(4, 7, 8)
    batched = split(rnn, head, x, LENGTHS)
    alone = split(rnn, head, x[1:2, :3], LENGTHS[1:2])
    torch.testing.assert_close(batched[1, :3], alone[0], rtol=0, atol=1e-6)


# Hand-built one-unit cells reading [is the first word, is the second word, 1]. The second word adds nothing
# of its own: its write is computed from the state the first word left, so all the credit is the first word's,
# although the first word's own write does not survive (it is forgotten, or overwritten, at the second).
WORDS = torch.tensor([[[1.0, 0.0, 1.0], [0.0, 1.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]])  # (batch 1, time 4, 3)
FOUR = torch.tensor([4])


def hand_built(module, rows: dict[str, list[float]], recurrent: dict[str, float]):
    rnn = module(3, 1, batch_first=True)
    names = {nn.LSTM: "ifgo", nn.GRU: "rzn"}[module]
    with torch.no_grad():
        for parameter in rnn.parameters():
            parameter.zero_()
        for k, name in enumerate(names):
            rnn.weight_ih_l0[k] = torch.tensor(rows[name])
            rnn.weight_hh_l0[k] = recurrent.get(name, 0.0)
    return rnn


def head():
    linear = nn.Linear(1, 1)
    with torch.no_grad():
        linear.weight.fill_(2.0), linear.bias.fill_(0.5)
    return linear


def test_gru_credits_a_write_computed_from_the_state_to_the_word_that_left_the_state():
    rnn = hand_built(
        nn.GRU,
        rows={"r": [0, 0, 50], "z": [-100, -100, 50], "n": [1, 0, 0]},  # write at words 1 and 2, keep afterwards
        recurrent={"n": 2.0},  # the second word's candidate is tanh(2 h_1)
    )
    parts = split(rnn, head(), WORDS, FOUR)[0, :, 0]
    total = float(logits(rnn, head(), WORDS, FOUR)[0, 0]) - 0.5
    assert abs(total) > 0.5
    torch.testing.assert_close(parts, torch.tensor([total, 0.0, 0.0, 0.0]), rtol=0, atol=1e-5)


def test_lstm_credits_a_write_computed_from_the_state_to_the_word_that_left_the_state():
    rnn = hand_built(
        nn.LSTM,
        rows={"i": [50, 50, -50], "f": [0, -100, 50], "g": [1, 0, 0], "o": [0, 0, 50]},  # the second word forgets c_1
        recurrent={"g": 2.0},  # and writes tanh(2 h_1)
    )
    parts = split(rnn, head(), WORDS, FOUR)[0, :, 0]
    total = float(logits(rnn, head(), WORDS, FOUR)[0, 0]) - 0.5
    assert abs(total) > 0.5
    torch.testing.assert_close(parts, torch.tensor([total, 0.0, 0.0, 0.0]), rtol=0, atol=1e-5)


def test_a_plain_rnn_has_no_gates_to_carry_writes_through():
    rnn, linear = nn.RNN(3, 4, batch_first=True), nn.Linear(4, 2)
    weights, candidates, states = replay_reading("rnn", rnn._flat_weights, 1, 1, WORDS, FOUR)
    with pytest.raises(ValueError, match="no gates"):
        token_contributions("rnn", FOUR, weights, candidates, states, linear.weight)
