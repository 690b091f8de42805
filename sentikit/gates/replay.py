"""Read every gate of a trained fused `nn.RNN` / `nn.LSTM` / `nn.GRU` at every step of a review.

Training and prediction run the fused modules, which are many times faster but expose nothing of
what happens inside a step. To explain a review, the same weights are replayed here with the
equations of `docs/explanations.md` (PyTorch's conventions), recording per layer, direction and step:

- LSTM: `i, f, g, o` (input, forget, candidate, output), the cell state `c` and the output `h`;
- GRU: `r, z, n` (reset, update, candidate) and `h`; `z` is PyTorch's update gate, the share of the
  OLD state kept (`h_t = (1 - z_t) * n_t + z_t * h_{t-1}`); many articles call `1 - z` the update gate;
- RNN: `h`.

The replay is cheap: the fused kernel still runs the recurrence (on each direction alone, the
backward one on each review reversed within its own length), and since every gate at step `t` depends
only on `x_t` and `h_{t-1}`, all gates of all steps follow from its outputs in a few batched products.
Nothing of the model is changed.

The final memory is a sum of one write per step (`c_T = sum_t u_t` for the LSTM, `h_T = sum_t v_t`
for the GRU): `retained_writes` gives each step's write as it survives in it, which is what the
explanations call retention. `sentikit.gates.contributions` splits the logits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List

import torch
from torch import Tensor, nn

from sentikit.nn.recurrence import direction_weights, reversal_index, reverse_backward, run_direction, text_order


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


def layer_weights(flat_weights: List[Tensor], layer: int, num_layers: int, directions: int) -> List[Tensor]:
    """`w_ih, w_hh, b_ih, b_hh` of one layer, each stacked over directions: `(directions, blocks * hidden, ·)`,
    detached (the replay reads the weights, it does not train them)."""
    per_direction = [direction_weights(flat_weights, layer, d, num_layers, directions) for d in range(directions)]
    stacked: List[Tensor] = []
    for k in range(4):
        stacked.append(torch.stack([weights[k].detach() for weights in per_direction]))
    return stacked


def cell_of(rnn: nn.RNNBase) -> str:
    if isinstance(rnn, nn.LSTM):
        return "lstm"
    if isinstance(rnn, nn.GRU):
        return "gru"
    if isinstance(rnn, nn.RNN) and rnn.nonlinearity == "tanh":
        return "rnn"
    raise TypeError(f"cannot replay {type(rnn).__name__} (mode {getattr(rnn, 'mode', '?')})")


def replay_layer(cell: str, inputs: Tensor, mask: Tensor, weights: list[Tensor]) -> tuple[dict[str, Tensor], Tensor, Tensor]:
    """Every gate of one (possibly bidirectional) layer at every step.

    Args:
        cell: `rnn`, `lstm` or `gru`.
        inputs: `(directions, batch, time, input)` in each direction's reading order, right-padded.
        mask: `(1, batch, time, 1)`: 1 at a review's steps, 0 at its padding.
        weights: `layer_weights` of the layer.

    Returns the recorded states `(directions, batch, time, hidden)` in READING order, zero at padding,
    and two parts of the candidate's pre-activation at every step (`g` of the LSTM, `n` of the GRU; empty
    for the RNN), which `contributions.py` needs and which the replay computes anyway: the product with
    the input `W_ig x_t` / `W_in x_t` (no bias) and the whole sum that the `tanh` squashes.

    LSTM and RNN: the recurrence runs in the fused kernel, one direction at a time, which returns every
    `h_t`. A gate at step `t` is a function of `x_t` and `h_{t-1}` alone, so with all of `h` known every
    gate of every step comes out of two batched products; only the cell state needs a loop, one fused
    multiply-add a step (`c_t = f_t * c_{t-1} + i_t * g_t`). GRU: on a CPU PyTorch's fused GRU has no
    oneDNN kernel and is slower than a loop of a few batched operations per step (both directions at
    once), so the GRU runs its equations here.
    """
    w_ih, w_hh, b_ih, b_hh = weights[0], weights[1], weights[2], weights[3]
    hidden = w_hh.shape[-1]
    inputs = inputs.detach()
    directions, batch, time = inputs.shape[0], inputs.shape[1], inputs.shape[2]
    # one product per direction over all steps of all reviews (a broadcast matmul would copy the weights per review)
    input_product = torch.bmm(inputs.reshape(directions, batch * time, -1), w_ih.transpose(1, 2)).view(directions, batch, time, -1)
    candidate_input = input_product[..., 2 * hidden : 3 * hidden]  # g and n are the third block
    if cell == "gru":
        # (directions, hidden, ·), contiguous: a batched product would copy a transposed view at every step
        w_rz, w_n = w_hh[:, : 2 * hidden].transpose(1, 2).contiguous(), w_hh[:, 2 * hidden :].transpose(1, 2).contiguous()
        b_n = b_hh[:, None, 2 * hidden :]
        rz_in = (input_product[..., : 2 * hidden] + (b_ih + b_hh)[:, None, None, : 2 * hidden]).unbind(2)
        n_in = (candidate_input + b_ih[:, None, None, 2 * hidden :]).unbind(2)
        h = inputs.new_zeros(directions, batch, hidden)
        hs: list[Tensor] = []
        rs: list[Tensor] = []
        zs: list[Tensor] = []
        ns: list[Tensor] = []
        sums: list[Tensor] = []
        for t in range(len(n_in)):
            rz = torch.baddbmm(rz_in[t], h, w_rz).sigmoid()
            r, z = rz[..., :hidden], rz[..., hidden:]
            n_sum = torch.addcmul(n_in[t], r, torch.baddbmm(b_n, h, w_n))
            n = n_sum.tanh()
            h = torch.lerp(n, h, z)  # (1 - z) * n + z * h
            hs.append(h)
            rs.append(r)
            zs.append(z)
            ns.append(n)
            sums.append(n_sum)
        states = {"h": torch.stack(hs, 2) * mask, "r": torch.stack(rs, 2) * mask, "z": torch.stack(zs, 2) * mask, "n": torch.stack(ns, 2) * mask}
        return states, candidate_input, torch.stack(sums, 2)
    h = torch.stack([run_direction(cell, inputs[d], [w_ih[d], w_hh[d], b_ih[d], b_hh[d]]) for d in range(directions)])
    h = h * mask  # (directions, batch, time, hidden)
    if cell == "rnn":
        return {"h": h}, h[:, :, :0], h[:, :, :0]
    h_prev = torch.cat([torch.zeros_like(h[:, :, :1]), h[:, :, :-1]], dim=2)
    both_biases = input_product + (b_ih + b_hh)[:, None, None, :]
    gates = torch.baddbmm(both_biases.flatten(1, 2), h_prev.flatten(1, 2), w_hh.transpose(1, 2)).view(input_product.shape)
    input_forget = gates[..., : 2 * hidden].sigmoid()
    i, f, o = input_forget[..., :hidden], input_forget[..., hidden:], gates[..., 3 * hidden :].sigmoid()
    g = gates[..., 2 * hidden : 3 * hidden].tanh()
    c = torch.zeros_like(h[:, :, 0])
    cs: list[Tensor] = []
    for f_t, write_t in zip(f.unbind(2), (i * g).unbind(2)):
        c = torch.addcmul(write_t, f_t, c)
        cs.append(c)
    states = {"h": h, "c": torch.stack(cs, dim=2) * mask, "i": i * mask, "f": f * mask, "g": g * mask, "o": o * mask}
    return states, candidate_input, gates[..., 2 * hidden : 3 * hidden]


def replay_reading(
    cell: str, flat_weights: list[Tensor], num_layers: int, directions: int, inputs: Tensor, lengths: Tensor
) -> tuple[list[list[Tensor]], list[list[Tensor]], list[dict[str, Tensor]]]:
    """`replay_stack` in READING order: per layer, bottom first, its `layer_weights`, the two parts of
    its candidate's pre-activation (`replay_layer`: `[input product, whole sum]`, each `(directions,
    batch, time, hidden)`) and its recorded states. What `contributions.py` works on; `replay_stack`
    turns the states to text order."""
    lengths = lengths.to(inputs.device)
    time = inputs.shape[1]
    index = reversal_index(lengths, time)
    mask = (torch.arange(time, device=lengths.device)[None, :] < lengths[:, None])[None, :, :, None].to(inputs.dtype)
    weights: list[list[Tensor]] = []
    candidates: list[list[Tensor]] = []
    layer_states: list[dict[str, Tensor]] = []
    x = reverse_backward(inputs[None].expand(directions, -1, -1, -1), index)
    for layer in range(num_layers):
        weights.append(layer_weights(flat_weights, layer, num_layers, directions))
        states, candidate_input, candidate_sum = replay_layer(cell, x, mask, weights[layer])
        candidates.append([candidate_input, candidate_sum])
        layer_states.append(states)
        # The next layer reads both directions' outputs at each text position, each in its reading order.
        outputs = torch.cat(reverse_backward(states["h"], index).unbind(0), dim=-1)  # (batch, time, directions * hidden)
        x = reverse_backward(outputs[None].expand(directions, -1, -1, -1), index)
    return weights, candidates, layer_states


def replay_stack(cell: str, flat_weights: list[Tensor], num_layers: int, directions: int, inputs: Tensor, lengths: Tensor) -> list[dict[str, Tensor]]:
    """Replay every layer of a fused module given by its `_flat_weights` on `inputs` `(batch, time,
    input_size)` (right-padded, batch first) with `lengths` `(batch,)`, from a zero initial state.

    One dict of states per layer, bottom first, each `(directions, batch, time, hidden)` in TEXT order
    (step `t` of the backward direction is the state after it read token `t`), zero at padding.
    TorchScript-compatible: bundles script it into their `explain` method."""
    _, _, layer_states = replay_reading(cell, flat_weights, num_layers, directions, inputs, lengths)
    return in_text_order(layer_states, lengths.to(inputs.device))


def in_text_order(layer_states: list[dict[str, Tensor]], lengths: Tensor) -> list[dict[str, Tensor]]:
    """`replay_reading`'s states, every one turned to text order."""
    index = reversal_index(lengths, layer_states[0]["h"].shape[2])
    traces: list[dict[str, Tensor]] = []
    for states in layer_states:
        converted: dict[str, Tensor] = {}
        for name, value in states.items():
            converted[name] = reverse_backward(value, index)
        traces.append(converted)
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


def retained_writes(cell: str, states: dict[str, Tensor], lengths: Tensor) -> Tensor:
    """`(directions, batch, time, hidden)` in text order: what step `t` wrote that is still in the
    final memory of one layer (`states` in text order), TorchScript-compatible.

    LSTM: `u_t = prod_{k after t} f_k * i_t * g_t`, which sum to the final cell state `c_T`; GRU:
    `v_t = prod_{k after t} z_k * (1 - z_t) * n_t`, which sum to `h_T`. "After" follows each
    direction's reading order. A plain RNN has no such split and raises `ValueError`."""
    if cell != "lstm" and cell != "gru":
        raise ValueError("a " + cell + " layer has no gates whose writes add up to its final state")
    # Work in reading order, where "later" is "further along the time axis" for both directions (the
    # reversal within each length is its own inverse, so `text_order` also takes text to reading order).
    time = states["h"].shape[2]
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
    return text_order(after * write * valid, lengths)
