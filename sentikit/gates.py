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
from torch import Tensor, nn


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


def layer_weights(flat_weights: list[Tensor], layer: int, num_layers: int, directions: int) -> list[Tensor]:
    """`w_ih, w_hh, b_ih, b_hh` of one layer, stacked over directions: `(directions, blocks * hidden, ·)`.

    `flat_weights` is a fused module's `_flat_weights`: per layer and direction, `w_ih, w_hh` and, with
    biases, `b_ih, b_hh`. Reading that list (not the named parameters) keeps this TorchScript-compatible,
    so a scripted bundle replays its own weights without a copy of them."""
    per = len(flat_weights) // (num_layers * directions)
    stacked: list[Tensor] = []
    for k in range(4):
        tensors: list[Tensor] = []
        for direction in range(directions):
            index = (layer * directions + direction) * per + k
            if k < per:
                tensors.append(flat_weights[index].detach())
            else:  # bias=False: a zero bias of the recurrent weights' height
                w_hh = flat_weights[(layer * directions + direction) * per + 1]
                tensors.append(torch.zeros(w_hh.shape[0], dtype=w_hh.dtype, device=w_hh.device))
        stacked.append(torch.stack(tensors))
    return stacked


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
    """`(directions, batch, time, features)` in reading order -> the same in text order (undo the reversal)."""
    if x.shape[0] == 1:
        return x
    index = reversal_index(lengths, x.shape[2])[:, :, None].expand_as(x[1])
    return torch.stack([x[0], x[1].gather(1, index)])


def replay_layer(cell: str, inputs: Tensor, lengths: Tensor, weights: list[Tensor]) -> dict[str, Tensor]:
    """Run one (possibly bidirectional) layer step by step.

    Args:
        cell: `rnn`, `lstm` or `gru`.
        inputs: `(directions, batch, time, input)` in each direction's reading order, right-padded.
        lengths: `(batch,)` true lengths.
        weights: `layer_weights` of the layer.

    Returns the recorded states `(directions, batch, time, hidden)` in READING order, zero at padding.
    """
    w_ih, w_hh, b_ih, b_hh = weights[0], weights[1], weights[2], weights[3]
    directions, batch, time = inputs.shape[0], inputs.shape[1], inputs.shape[2]
    hidden = w_hh.shape[-1]
    inputs = inputs.detach()
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
    hs: list[Tensor] = []
    gate_record: list[Tensor] = []
    extra: list[Tensor] = []
    cs: list[Tensor] = []
    for t in range(time):
        if cell == "lstm":
            gates = torch.baddbmm(projected[:, :, t], h, w_hh_t)
            sigmoids = gates.sigmoid()  # i, f, o (and a wasted g block: cheaper than three calls)
            g = gates[..., 2 * hidden : 3 * hidden].tanh()
            c = torch.addcmul(sigmoids[..., hidden : 2 * hidden] * c, sigmoids[..., :hidden], g)
            h = sigmoids[..., 3 * hidden :] * c.tanh()
            gate_record.append(sigmoids)
            extra.append(g)
            cs.append(c)
        elif cell == "gru":
            x = projected[:, :, t]
            recurrent = torch.baddbmm(b_hh, h, w_hh_t)
            rz = (x[..., : 2 * hidden] + recurrent[..., : 2 * hidden]).sigmoid()
            n = torch.addcmul(x[..., 2 * hidden :], rz[..., :hidden], recurrent[..., 2 * hidden :]).tanh()
            h = torch.lerp(n, h, rz[..., hidden:])  # (1 - z) * n + z * h
            gate_record.append(rz)
            extra.append(n)
        else:
            h = torch.baddbmm(projected[:, :, t], h, w_hh_t).tanh()
        hs.append(h)
    valid = torch.arange(time, device=lengths.device)[None, :] < lengths[:, None]
    mask = valid[None, :, :, None].to(inputs.dtype)  # (1, batch, time, 1)
    states = {"h": torch.stack(hs, dim=2) * mask}
    if cell == "lstm":
        i, f, _, o = (torch.stack(gate_record, dim=2) * mask).chunk(4, dim=-1)
        states["c"] = torch.stack(cs, dim=2) * mask
        states["i"], states["f"], states["o"] = i, f, o
        states["g"] = torch.stack(extra, dim=2) * mask
    elif cell == "gru":
        r, z = (torch.stack(gate_record, dim=2) * mask).chunk(2, dim=-1)
        states["r"], states["z"] = r, z
        states["n"] = torch.stack(extra, dim=2) * mask
    return states


def replay_stack(cell: str, flat_weights: list[Tensor], num_layers: int, directions: int, inputs: Tensor, lengths: Tensor) -> list[dict[str, Tensor]]:
    """Replay every layer of a fused module given by its `_flat_weights` on `inputs` `(batch, time,
    input_size)` (right-padded, batch first) with `lengths` `(batch,)`, from a zero initial state.

    One dict of states per layer, bottom first, each `(directions, batch, time, hidden)` in TEXT order
    (step `t` of the backward direction is the state after it read token `t`), zero at padding.
    TorchScript-compatible: bundles script it into their `explain` method."""
    lengths = lengths.to(inputs.device)
    traces: list[dict[str, Tensor]] = []
    layer_input = inputs
    for layer in range(num_layers):
        weights = layer_weights(flat_weights, layer, num_layers, directions)
        states = replay_layer(cell, reading_order(layer_input, lengths, directions), lengths, weights)
        in_text_order: dict[str, Tensor] = {}
        for name, value in states.items():
            in_text_order[name] = text_order(value, lengths)
        traces.append(in_text_order)
        layer_input = torch.cat(in_text_order["h"].unbind(0), dim=-1)
    return traces


def replay(rnn: nn.RNNBase, inputs: Tensor, lengths: Tensor) -> list[LayerTrace]:
    """Replay a fused module on `inputs` `(batch, time, input_size)` (right-padded, `batch_first`) with
    `lengths` `(batch,)`, from a zero initial state (as sentikit's encoder runs it). One `LayerTrace` per
    layer, bottom first; the top layer's `outputs` equal the fused module's padded outputs."""
    cell = cell_of(rnn)
    if not rnn.batch_first:
        raise ValueError("replay expects a batch_first module, as sentikit's encoder builds")
    directions = 2 if rnn.bidirectional else 1
    with torch.no_grad():
        traces = replay_stack(cell, rnn._flat_weights, rnn.num_layers, directions, inputs, lengths)
    return [LayerTrace(cell, states) for states in traces]


def final_index(lengths: Tensor, directions: int) -> Tensor:
    """`(directions, batch)`: the text position of each direction's last step (the end, or the start)."""
    last = lengths - 1
    return torch.stack([last, torch.zeros_like(last)])[:directions]


def at_final_step(x: Tensor, lengths: Tensor) -> Tensor:
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

    writes: Tensor
    parts: Tensor


def split_final_state(cell: str, states: dict[str, Tensor], lengths: Tensor) -> tuple[Tensor, Tensor]:
    """`(writes, parts)` of `FinalStateSplit` for one layer's `states` (text order), TorchScript-compatible.
    A plain RNN has no such split and raises `ValueError`."""
    if cell != "lstm" and cell != "gru":
        raise ValueError("a " + cell + " layer has no gates whose writes add up to its final state")
    # Work in reading order, where "later" is "further along the time axis" for both directions (the
    # reversal within each length is its own inverse, so `text_order` also takes text to reading order).
    directions, time = states["h"].shape[0], states["h"].shape[2]
    valid = (torch.arange(time, device=lengths.device)[None, :] < lengths[:, None])[None, :, :, None]
    if cell == "lstm":
        keep = text_order(states["f"], lengths)
        write = text_order(states["i"] * states["g"], lengths)
    else:
        z = text_order(states["z"], lengths)
        keep, write = z, (1 - z) * text_order(states["n"], lengths)
    keep = torch.where(valid, keep, torch.ones_like(keep))
    # prod_{k > t} keep_k: an inclusive product from the end, shifted by one step.
    inclusive = keep.flip(2).cumprod(2).flip(2)
    after = torch.cat([inclusive[:, :, 1:], torch.ones_like(inclusive[:, :, :1])], dim=2)
    writes = after * write * valid
    if cell == "lstm":
        memory = writes.cumsum(2).tanh()
        steps = memory - torch.cat([torch.zeros_like(memory[:, :, :1]), memory[:, :, :-1]], dim=2)
        o = text_order(states["o"], lengths)
        last = (lengths - 1)[None, :, None, None].expand(directions, -1, 1, o.shape[-1])
        o_final = o.gather(2, last)  # in reading order every direction ends at length - 1
        parts = o_final * steps * valid
    else:
        parts = writes
    return text_order(writes, lengths), text_order(parts, lengths)


def final_state_split(trace: LayerTrace, lengths: Tensor) -> FinalStateSplit:
    """Split a gated layer's final state exactly into per-step parts (LSTM and GRU; a plain RNN has no
    such split and raises `ValueError`)."""
    writes, parts = split_final_state(trace.cell, trace.states, lengths)
    return FinalStateSplit(writes, parts)
