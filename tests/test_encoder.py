import pytest
import torch

from sentikit.nn.encoder import RecurrentEncoder
from sentikit.errors import ConfigError

CELLS = ["rnn", "lstm", "gru"]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("pooling", ["last", "mean", "max", "max_mean"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_padding_never_changes_a_review_s_encoding(cell, bidirectional, pooling, num_layers):
    torch.manual_seed(0)
    encoder = RecurrentEncoder(8, cell, hidden_size=6, num_layers=num_layers, bidirectional=bidirectional, pooling=pooling).eval()
    review = torch.randn(1, 5, 8)  # (batch, time, features)
    alone = encoder(review, torch.tensor([5]))
    batch = torch.randn(3, 9, 8)  # longer neighbours, and garbage in the padded positions
    batch[1, :5] = review[0]
    in_batch = encoder(batch, torch.tensor([9, 5, 7]))
    torch.testing.assert_close(in_batch[1:2], alone, rtol=0, atol=1e-6)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("pooling", ["last", "mean", "max", "max_mean"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_training_s_unpacked_route_computes_what_the_packed_module_does(cell, bidirectional, pooling, num_layers):
    # CPU training runs each direction alone on padded input (fast backward); it must be the same function,
    # with the same gradients, as the packed fused module that inference runs.
    torch.manual_seed(0)
    encoder = RecurrentEncoder(8, cell, hidden_size=6, num_layers=num_layers, bidirectional=bidirectional, pooling=pooling)
    x = torch.randn(3, 9, 8)
    lengths = torch.tensor([9, 5, 7])
    results = []
    for training in (True, False):  # no dropout is configured: both modes compute the same function
        encoder.train(training)
        inputs = x.clone().requires_grad_(True)
        summary = encoder(inputs, lengths)
        (summary * torch.linspace(-1, 1, summary.numel()).view_as(summary)).sum().backward()
        grads = [inputs.grad] + [p.grad.clone() for p in encoder.parameters()]
        encoder.zero_grad()
        results.append((summary.detach(), grads))
    (unpacked, unpacked_grads), (packed, packed_grads) = results
    torch.testing.assert_close(unpacked, packed, rtol=0, atol=1e-6)
    for a, b in zip(unpacked_grads, packed_grads):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    assert unpacked_grads[0][1, 5:].abs().max() == 0  # padding receives no gradient


@pytest.mark.parametrize("cell", CELLS)
def test_last_pooling_is_the_top_layer_final_state_of_both_directions(cell):
    torch.manual_seed(0)
    encoder = RecurrentEncoder(4, cell, hidden_size=3, num_layers=2, bidirectional=True).eval()
    x = torch.randn(2, 6, 4)
    summary = encoder(x, torch.tensor([6, 6]))
    outputs, _ = encoder.rnn(x)  # (batch, time, 2 * hidden): forward half, then backward half
    expected = torch.cat([outputs[:, -1, :3], outputs[:, 0, 3:]], dim=-1)
    torch.testing.assert_close(summary, expected)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_max_mean_pooling_puts_the_max_and_the_mean_over_each_review_side_by_side(bidirectional):
    torch.manual_seed(0)
    encoder = RecurrentEncoder(4, "gru", hidden_size=3, bidirectional=bidirectional, pooling="max_mean").eval()
    x = torch.randn(2, 6, 4)
    summary = encoder(x, torch.tensor([6, 4]))
    assert summary.shape == (2, encoder.output_size) and encoder.output_size == 2 * encoder.state_size
    for row, length in enumerate((6, 4)):
        outputs, _ = encoder.rnn(x[row : row + 1, :length])  # the review alone, no padding
        expected = torch.cat([outputs[0].amax(0), outputs[0].mean(0)])
        torch.testing.assert_close(summary[row], expected)


@pytest.mark.parametrize("cell, blocks", [("rnn", 1), ("lstm", 4), ("gru", 3)])
def test_parameter_count_follows_the_gate_blocks(cell, blocks):
    e, h = 10, 7
    encoder = RecurrentEncoder(e, cell, hidden_size=h, bidirectional=False)
    assert sum(p.numel() for p in encoder.parameters()) == blocks * (h * (e + h) + 2 * h)
    assert encoder.output_size == h
    assert RecurrentEncoder(e, cell, hidden_size=h, bidirectional=True).output_size == 2 * h


def test_lstm_forget_gates_start_open():
    encoder = RecurrentEncoder(4, "lstm", hidden_size=5, bidirectional=False)
    forget_bias = encoder.rnn.bias_ih_l0[5:10] + encoder.rnn.bias_hh_l0[5:10]
    assert torch.equal(forget_bias, torch.ones(5))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(hidden_size=0), "hidden_size must be at least 1, got 0"),
        (dict(num_layers=0), "num_layers"),
        (dict(dropout=1.0), "dropout"),
        (dict(cell="lstmm"), "unknown cell 'lstmm'; choose one of 'rnn', 'lstm', 'gru'"),
        (dict(pooling="sum"), "unknown pooling"),
    ],
)
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        RecurrentEncoder(4, **kwargs)
