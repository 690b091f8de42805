"""The gate replay reproduces the fused modules and the cell equations, and the final memory splits exactly into per-step writes."""

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from sentikit.gates.replay import at_final_step, replay, retained_writes

MODULES = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
LENGTHS = torch.tensor([7, 3, 1, 5])  # a batch of different lengths, the longest first or not


def fused(rnn, x, lengths):
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    outputs, state = rnn(packed)
    outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=x.shape[1])
    return outputs, (state[0] if isinstance(rnn, nn.LSTM) else state), (state[1] if isinstance(rnn, nn.LSTM) else None)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_replay_reproduces_the_fused_outputs_and_final_states(cell, num_layers, bidirectional):
    torch.manual_seed(num_layers)
    rnn = MODULES[cell](8, 16, num_layers=num_layers, bidirectional=bidirectional, batch_first=True)
    x = torch.randn(4, 7, 8)
    outputs, h_n, c_n = fused(rnn, x, LENGTHS)
    traces = replay(rnn, x, LENGTHS)
    directions = 2 if bidirectional else 1
    assert len(traces) == num_layers
    torch.testing.assert_close(traces[-1].outputs, outputs, rtol=0, atol=1e-5)
    for layer, trace in enumerate(traces):
        final = h_n[layer * directions : (layer + 1) * directions]
        torch.testing.assert_close(at_final_step(trace.states["h"], LENGTHS), final, rtol=0, atol=1e-5)
        if cell == "lstm":
            final_c = c_n[layer * directions : (layer + 1) * directions]
            torch.testing.assert_close(at_final_step(trace.states["c"], LENGTHS), final_c, rtol=0, atol=1e-5)


@pytest.mark.parametrize("cell, gates", [("rnn", set()), ("lstm", {"i", "f", "g", "o", "c"}), ("gru", {"r", "z", "n"})])
def test_each_cell_records_its_own_gates_and_zero_at_padding(cell, gates):
    rnn = MODULES[cell](3, 5, bidirectional=True, batch_first=True)
    (trace,) = replay(rnn, torch.randn(4, 7, 3), LENGTHS)
    assert set(trace.states) == gates | {"h"}
    for value in trace.states.values():
        assert value.shape == (2, 4, 7, 5)
        assert (value[:, 1, 3:] == 0).all()  # review 1 has 3 tokens


def step_by_step(cell, rnn, x, length, reverse=False):
    """The gates of a one-layer module's forward (or reverse) direction for one review, written out from
    the equations one step at a time: an oracle that shares no code with `replay`."""
    suffix = "_l0_reverse" if reverse else "_l0"
    w_ih, w_hh = getattr(rnn, "weight_ih" + suffix), getattr(rnn, "weight_hh" + suffix)
    b_ih, b_hh = getattr(rnn, "bias_ih" + suffix), getattr(rnn, "bias_hh" + suffix)
    hidden = rnn.hidden_size
    h, c, record = torch.zeros(hidden), torch.zeros(hidden), []
    steps = range(length - 1, -1, -1) if reverse else range(length)
    for t in steps:
        a, b = w_ih @ x[t] + b_ih, w_hh @ h + b_hh
        if cell == "lstm":
            i, f, g, o = torch.sigmoid(a[:hidden] + b[:hidden]), torch.sigmoid(a[hidden : 2 * hidden] + b[hidden : 2 * hidden]), \
                torch.tanh(a[2 * hidden : 3 * hidden] + b[2 * hidden : 3 * hidden]), torch.sigmoid(a[3 * hidden :] + b[3 * hidden :])
            c = f * c + i * g
            h = o * torch.tanh(c)
            record.append({"i": i, "f": f, "g": g, "o": o, "c": c, "h": h})
        elif cell == "gru":
            r, z = torch.sigmoid(a[:hidden] + b[:hidden]), torch.sigmoid(a[hidden : 2 * hidden] + b[hidden : 2 * hidden])
            n = torch.tanh(a[2 * hidden :] + r * b[2 * hidden :])
            h = (1 - z) * n + z * h
            record.append({"r": r, "z": z, "n": n, "h": h})
        else:
            h = torch.tanh(a + b)
            record.append({"h": h})
    if reverse:
        record.reverse()  # text order
    return {name: torch.stack([step[name] for step in record]) for name in record[0]}


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_every_recorded_gate_follows_the_cell_equations_step_by_step(cell):
    torch.manual_seed(1)
    rnn = MODULES[cell](3, 5, bidirectional=True, batch_first=True)
    x = torch.randn(4, 7, 3)
    (trace,) = replay(rnn, x, LENGTHS)
    with torch.no_grad():
        for review, length in enumerate(LENGTHS.tolist()):
            for direction in (0, 1):
                expected = step_by_step(cell, rnn, x[review], length, reverse=direction == 1)
                for name, value in expected.items():
                    torch.testing.assert_close(trace.states[name][direction, review, :length], value, rtol=0, atol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_the_retained_writes_sum_to_the_final_memory(cell, num_layers, bidirectional):
    torch.manual_seed(0)
    rnn = MODULES[cell](8, 16, num_layers=num_layers, bidirectional=bidirectional, batch_first=True)
    x = torch.randn(4, 7, 8)
    _, h_n, c_n = fused(rnn, x, LENGTHS)
    trace = replay(rnn, x, LENGTHS)[-1]
    writes = retained_writes(cell, trace.states, LENGTHS)
    directions = 2 if bidirectional else 1
    memory = c_n[-directions:] if cell == "lstm" else h_n[-directions:]  # the writes sum to c_T (LSTM) or h_T (GRU)
    torch.testing.assert_close(writes.sum(2), memory, rtol=0, atol=1e-5)
    assert (writes[:, 1, 3:] == 0).all()


def test_a_plain_rnn_has_no_retained_writes():
    (trace,) = replay(nn.RNN(3, 4, batch_first=True), torch.randn(1, 5, 3), torch.tensor([5]))
    with pytest.raises(ValueError, match="no gates"):
        retained_writes("rnn", trace.states, torch.tensor([5]))


# Hand-built cells: the inputs carry [is the first word, 1]; recurrent weights are zero, so every gate is
# set by the input alone. A pre-activation of +-50 saturates a sigmoid to 1 or 0 in float32.
FIRST_WORD = torch.tensor([[[1.0, 1.0]] + [[0.0, 1.0]] * 5])  # (batch 1, time 6, features 2)
SIX = torch.tensor([6])


def hand_built(module, blocks: dict[str, tuple[float, float]]):
    """A one-unit cell whose pre-activation for gate `name` is `a * is_first + b`."""
    rnn = module(2, 1, batch_first=True)
    names = {nn.LSTM: "ifgo", nn.GRU: "rzn"}[module]
    with torch.no_grad():
        for parameter in rnn.parameters():
            parameter.zero_()
        for k, name in enumerate(names):
            a, b = blocks.get(name, (0.0, 1.0))
            rnn.weight_ih_l0[k] = torch.tensor([a, b])
    return rnn


def retention(rnn) -> torch.Tensor:
    (trace,) = replay(rnn, FIRST_WORD, SIX)
    scores = retained_writes(trace.cell, trace.states, SIX).abs().sum(-1)[0, 0]
    return scores / scores.sum()


def test_lstm_that_stops_writing_and_never_forgets_retains_only_the_first_word():
    # input gate open at the first word only; forget gate wide open everywhere
    rnn = hand_built(nn.LSTM, {"i": (100.0, -50.0), "f": (0.0, 50.0), "g": (0.0, 1.0)})
    torch.testing.assert_close(retention(rnn), torch.tensor([1.0, 0, 0, 0, 0, 0]), rtol=0, atol=1e-6)


def test_lstm_that_always_forgets_retains_only_the_last_word():
    rnn = hand_built(nn.LSTM, {"i": (0.0, 50.0), "f": (0.0, -50.0), "g": (0.0, 1.0)})
    torch.testing.assert_close(retention(rnn), torch.tensor([0, 0, 0, 0, 0, 1.0]), rtol=0, atol=1e-6)


def test_gru_whose_update_gate_keeps_the_old_state_after_the_first_word_keeps_only_that_write():
    # PyTorch's z is the share of the OLD state kept: z = 0 at the first word (write), z = 1 afterwards (keep)
    rnn = hand_built(nn.GRU, {"z": (-100.0, 50.0), "n": (0.0, 1.0)})
    torch.testing.assert_close(retention(rnn), torch.tensor([1.0, 0, 0, 0, 0, 0]), rtol=0, atol=1e-6)
