"""Replay a trained fused `nn.RNN` / `nn.LSTM` / `nn.GRU` step by step and record every gate.

Training and prediction run the fused modules, which are many times faster but expose nothing of
what happens inside a step. To explain a review, the same weights are replayed here with the
equations of `../shared/REFERENCE.md` (PyTorch's conventions), recording per layer, direction and step:

- LSTM: `i, f, g, o` (input, forget, candidate, output), the cell state `c` and the output `h`;
- GRU: `r, z, n` (reset, update, candidate) and `h`; `z` is PyTorch's update gate, the share of the
  OLD state kept (`h_t = (1 - z_t) * n_t + z_t * h_{t-1}`); many articles call `1 - z` the update gate;
- RNN: `h`.

The replay is batched: both directions of a layer run in one loop (stacked along a leading
dimension, the backward one on each review reversed within its own length), every step is a few
batched matrix products, and the only Python loop is over time. Nothing of the model is changed.

Because the final memory is a sum of one write per step (`c_T = sum_t u_t` for the LSTM,
`h_T = sum_t v_t` for the GRU), `final_state_split` cuts the final state, and with it the logits of a
linear head, exactly into per-step parts.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

# Gate names in the order PyTorch stacks their weight blocks.
GATES = {"rnn": (), "lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n")}


@dataclass
class LayerTrace:
    """One layer's recording. Every tensor is `(directions, batch, time, hidden)` in TEXT order (step
    `t` of the backward direction is the state after it read token `t`), zero at padded positions."""

    cell: str
    states: dict[str, torch.Tensor]  # "h" for all cells, "c" for the LSTM, and the cell's gates

    @property
    def outputs(self) -> torch.Tensor:
        """`(batch, time, directions * hidden)`: what `nn.LSTM` etc. return as their output sequence."""
        h = self.states["h"]
        return torch.cat(list(h), dim=-1)


def direction_weights(rnn: nn.RNNBase, layer: int) -> tuple[torch.Tensor, ...]:
    """`w_ih, w_hh, b_ih, b_hh` of one layer, stacked over directions: `(directions, blocks * hidden, ·)`."""
    suffixes = [f"_l{layer}"] + ([f"_l{layer}_reverse"] if rnn.bidirectional else [])
    weights = []
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        tensors = [getattr(rnn, name + suffix, None) for suffix in suffixes]
        if any(t is None for t in tensors):  # bias=False
            blocks = rnn.weight_hh_l0.shape[0]
            tensors = [torch.zeros(blocks, dtype=rnn.weight_hh_l0.dtype, device=rnn.weight_hh_l0.device)] * len(suffixes)
        weights.append(torch.stack([t.detach() for t in tensors]))
    return tuple(weights)


def cell_of(rnn: nn.RNNBase) -> str:
    if isinstance(rnn, nn.LSTM):
        return "lstm"
    if isinstance(rnn, nn.GRU):
        return "gru"
    if isinstance(rnn, nn.RNN) and rnn.nonlinearity == "tanh":
        return "rnn"
    raise TypeError(f"cannot replay {type(rnn).__name__} (mode {getattr(rnn, 'mode', '?')})")


def reversal_index(lengths: torch.Tensor, time: int) -> torch.Tensor:
    """`(batch, time)` positions that reverse each review within its length and leave padding in place.

    Applying it twice is the identity, so the same index takes a sequence into the backward
    direction's reading order and back."""
    steps = torch.arange(time, device=lengths.device)[None, :]
    lengths = lengths[:, None]
    return torch.where(steps < lengths, lengths - 1 - steps, steps)


def reading_order(x: torch.Tensor, lengths: torch.Tensor, directions: int) -> torch.Tensor:
    """`(batch, time, ·)` -> `(directions, batch, time, ·)`: as each direction reads it (backward: reversed)."""
    if directions == 1:
        return x[None]
    index = reversal_index(lengths, x.shape[1])[..., None].expand_as(x)
    return torch.stack([x, x.gather(1, index)])


def text_order(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """`(directions, batch, time, ·)` in reading order -> the same in text order (undo the reversal)."""
    if x.shape[0] == 1:
        return x
    index = reversal_index(lengths, x.shape[2])
    index = index.view(*index.shape, *([1] * (x.dim() - 3))).expand_as(x[1])
    return torch.stack([x[0], x[1].gather(1, index)])


@torch.no_grad()
def replay_layer(cell: str, inputs: torch.Tensor, lengths: torch.Tensor, weights: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
    """Run one (possibly bidirectional) layer step by step.

    Args:
        cell: `rnn`, `lstm` or `gru`.
        inputs: `(directions, batch, time, input)` in each direction's reading order, right-padded.
        lengths: `(batch,)` true lengths.
        weights: `direction_weights` of the layer.

    Returns the recorded states `(directions, batch, time, hidden)` in READING order, zero at padding.
    """
    w_ih, w_hh, b_ih, b_hh = weights
    directions, batch, time, _ = inputs.shape
    hidden = w_hh.shape[-1]
    # Input projections of every step at once; only the recurrent product stays in the loop. The loop
    # keeps as few tensor operations per step as it can: at one review, their overhead is the cost.
    projected = torch.matmul(inputs, w_ih.transpose(1, 2)[:, None]) + b_ih[:, None, None, :]
    if cell != "gru":  # the GRU needs b_hn inside the reset product, so it keeps b_hh apart
        projected = projected + b_hh[:, None, None, :]
    w_hh_t = w_hh.transpose(1, 2)  # (directions, hidden, blocks * hidden)
    b_hh = b_hh[:, None, :]
    h = inputs.new_zeros(directions, batch, hidden)
    c = torch.zeros_like(h)
    # Past a review's end the state runs on over padding; nothing reads it: records there are zeroed
    # below and final states are read at each review's last step, so no per-step masking is needed.
    record: dict[str, list[torch.Tensor]] = {"h": [], "gates": [], "extra": [], "c": []}
    for t in range(time):
        if cell == "lstm":
            gates = torch.baddbmm(projected[:, :, t], h, w_hh_t)
            sigmoids = gates.sigmoid()  # i, f, o (and a wasted g block: cheaper than three calls)
            g = gates[..., 2 * hidden : 3 * hidden].tanh()
            c = torch.addcmul(sigmoids[..., hidden : 2 * hidden] * c, sigmoids[..., :hidden], g)
            h = sigmoids[..., 3 * hidden :] * c.tanh()
            record["gates"].append(sigmoids)
            record["extra"].append(g)
            record["c"].append(c)
        elif cell == "gru":
            x = projected[:, :, t]
            recurrent = torch.baddbmm(b_hh, h, w_hh_t)
            rz = (x[..., : 2 * hidden] + recurrent[..., : 2 * hidden]).sigmoid()
            n = torch.addcmul(x[..., 2 * hidden :], rz[..., :hidden], recurrent[..., 2 * hidden :]).tanh()
            h = torch.lerp(n, h, rz[..., hidden:])  # (1 - z) * n + z * h
            record["gates"].append(rz)
            record["extra"].append(n)
        else:
            h = torch.baddbmm(projected[:, :, t], h, w_hh_t).tanh()
        record["h"].append(h)
    valid = torch.arange(time, device=lengths.device)[None, :] < lengths[:, None]
    mask = valid[None, :, :, None].to(inputs.dtype)  # (1, batch, time, 1)
    stacked = {name: torch.stack(values, dim=2) * mask for name, values in record.items() if values}
    states = {"h": stacked["h"]}
    if cell == "lstm":
        i, f, _, o = stacked["gates"].chunk(4, dim=-1)
        states.update(c=stacked["c"], i=i, f=f, g=stacked["extra"], o=o)
    elif cell == "gru":
        r, z = stacked["gates"].chunk(2, dim=-1)
        states.update(r=r, z=z, n=stacked["extra"])
    return states


def replay(rnn: nn.RNNBase, inputs: torch.Tensor, lengths: torch.Tensor) -> list[LayerTrace]:
    """Replay a fused module on `inputs` `(batch, time, input_size)` (right-padded, `batch_first`) with
    `lengths` `(batch,)`, from a zero initial state (as sentikit's encoder runs it). One `LayerTrace` per
    layer, bottom first; the top layer's `outputs` equal the fused module's padded outputs."""
    cell = cell_of(rnn)
    if not rnn.batch_first:
        raise ValueError("replay expects a batch_first module, as sentikit's encoder builds")
    directions = 2 if rnn.bidirectional else 1
    lengths = lengths.to(inputs.device)
    traces, layer_input = [], inputs
    for layer in range(rnn.num_layers):
        states = replay_layer(cell, reading_order(layer_input, lengths, directions), lengths, direction_weights(rnn, layer))
        trace = LayerTrace(cell, {name: text_order(value, lengths) for name, value in states.items()})
        traces.append(trace)
        layer_input = trace.outputs
    return traces


def final_index(lengths: torch.Tensor, directions: int) -> torch.Tensor:
    """`(directions, batch)`: the text position of each direction's last step (the end, or the start)."""
    last = lengths - 1
    return torch.stack([last, torch.zeros_like(last)])[:directions]


def at_final_step(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """`(directions, batch, time, hidden)` in text order -> `(directions, batch, hidden)` at each direction's final step."""
    index = final_index(lengths, x.shape[0])[:, :, None, None].expand(-1, -1, 1, x.shape[-1])
    return x.gather(2, index).squeeze(2)


@dataclass
class FinalStateSplit:
    """The top layer's final state cut into one additive part per step, in text order.

    `writes` `(directions, batch, time, hidden)`: what step `t` wrote that is still in the final memory
    (LSTM: `u_t = prod_{k after t} f_k * i_t * g_t`, summing to the final cell state `c_T`; GRU:
    `v_t = prod_{k after t} z_k * (1 - z_t) * n_t`, summing to `h_T`). "After" follows each direction's
    reading order. `parts` `(directions, batch, time, hidden)` sum to the final hidden state `h_T`
    exactly: for the GRU they are the writes; for the LSTM they telescope through the output
    non-linearity, `o_T * (tanh(S_t) - tanh(S_{t-1}))` with `S_t` the sum of the writes up to `t`
    (Murdoch & Szlam 2017)."""

    writes: torch.Tensor
    parts: torch.Tensor


def final_state_split(trace: LayerTrace, lengths: torch.Tensor) -> FinalStateSplit:
    """Split a gated layer's final state exactly into per-step parts (LSTM and GRU; a plain RNN has no
    such split and raises `ValueError`)."""
    if trace.cell not in ("lstm", "gru"):
        raise ValueError(f"a {trace.cell} layer has no gates whose writes add up to its final state")
    s = trace.states
    directions = s["h"].shape[0]
    # Work in reading order, where "later" is "further along the time axis" for both directions.
    read = {name: reading_order_stacked(value, lengths) for name, value in s.items()}
    time = read["h"].shape[2]
    valid = (torch.arange(time, device=lengths.device)[None, :] < lengths[:, None])[None, :, :, None]
    if trace.cell == "lstm":
        keep, write = read["f"], read["i"] * read["g"]
    else:
        keep, write = read["z"], (1 - read["z"]) * read["n"]
    keep = torch.where(valid, keep, torch.ones_like(keep))
    # prod_{k > t} keep_k: an inclusive product from the end, shifted by one step.
    inclusive = keep.flip(2).cumprod(2).flip(2)
    after = torch.cat([inclusive[:, :, 1:], torch.ones_like(inclusive[:, :, :1])], dim=2)
    writes = after * write * valid
    if trace.cell == "lstm":
        memory = writes.cumsum(2).tanh()
        steps = memory - torch.cat([torch.zeros_like(memory[:, :, :1]), memory[:, :, :-1]], dim=2)
        last = (lengths - 1)[None, :, None, None].expand(directions, -1, 1, read["o"].shape[-1])
        o_final = read["o"].gather(2, last)  # in reading order every direction ends at length - 1
        parts = o_final * steps * valid
    else:
        parts = writes
    return FinalStateSplit(text_order(writes, lengths), text_order(parts, lengths))


def reading_order_stacked(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """`(directions, batch, time, ·)` in text order -> reading order (the reversal is its own inverse)."""
    return text_order(x, lengths)
