"""The logits split exactly into one part per token, by carrying each token's write through the gates.

A gated cell mixes two kinds of operation. Its gates (`i, f, o` of the LSTM, `r, z` of the GRU)
multiply; its candidate (`g`, `n`) and the LSTM's output squash a SUM, `tanh(a_1 + a_2 + ...)`. Fix
every gate at the value it took on the review, and write each squashing as its secant,
`tanh(A) = (tanh(A) / A) * A`, with the factor `tanh(A) / A` also fixed at that value: what is left is
a linear map from what each token put into a candidate to the final state. So each token gets the part
of the logits that its own input carried there, and the parts add up to `logits - head.bias` exactly.

What a token puts in is the input side of its candidate: `W_ig x_t + b_ig + b_hg` (LSTM),
`W_in x_t + b_in + r_t * b_hn` (GRU). The recurrent side, `W_hg h_{t-1}` or `r_t * W_hn h_{t-1}`, is
not the token's: it is the earlier tokens' parts of `h_{t-1}` passed on. That is the difference from
crediting each step with its whole write (`u_t`, `v_t` of `gates.retained_writes`): in "not good" the
write at "good" is negative because of what "not" left in the state, and here that share goes to "not".
Deleting the top-ranked words (`sentikit.explain.faithfulness`) shows the difference: this split ranks
words about as well as Integrated Gradients, the whole-write split clearly worse (docs/results.md).

The linear map is applied backwards, as a gradient would be, one sweep per layer from the head's
weights: `dc_t = f_{t+1} dc_{t+1} + o_t k_t dh_t` and `da_t = i_t m_t dc_t` with `k_t = tanh(c_t) / c_t`
and `m_t = g_t / a_t` for the LSTM, `dn_t = m_t (1 - z_t) dh_t` and `dh_{t-1} = z_t dh_t +
W_hn^T (r_t dn_t)` for the GRU. A layer's share of its input `x_t` (the layer below's output at `t`)
is passed down as that layer's incoming sensitivities, so in a stack each part still belongs to a token
of the text. For the plain RNN `gates/replay.py` has no gates to fix and the explanations use occlusion.

The rule is the linearisation that layer-wise relevance propagation uses for LSTMs (gates as fixed
weights, Arras et al. 2017), without its stabiliser, so that the split stays exact.
"""

from typing import Dict, List

import torch
from torch import Tensor

from sentikit.gates.replay import reverse_backward, reversal_index


def secant(y: Tensor, a: Tensor) -> Tensor:
    """`y / a` where `y = tanh(a)`, and its limit 1 where `a` is too close to zero to divide by."""
    return torch.where(a.abs() > 1e-6, y / a, torch.ones_like(a))


def per_class(x: Tensor, classes: int) -> Tensor:
    """`(directions, batch, time, hidden)` -> `(time, directions, batch * classes, hidden)`: a per-step
    factor repeated for each class, laid out as `sweep` reads it."""
    d, b, t, h = x.shape[0], x.shape[1], x.shape[2], x.shape[3]
    return x.permute(2, 0, 1, 3)[:, :, :, None].expand(t, d, b, classes, h).reshape(t, d, b * classes, h)


def sweep(cell: str, incoming: Tensor, state_weight: Tensor, carry: Tensor, scale: Tensor, keep: Tensor) -> Tensor:
    """One layer's backward pass of the fixed linear map, in reading order.

    Args:
        incoming: `(time, directions, batch * classes, hidden)`: the sensitivity of each class's logit
            to the layer's output `h_t` from outside the layer (the head, or the layer above).
        state_weight: `(directions, hidden, hidden)`: `W_hg` (LSTM) or `W_hn` (GRU), rows by unit.
        carry, scale, keep: `per_class` factors: LSTM `o_t k_t`, `i_t m_t`, `f_t`; GRU `m_t (1 - z_t)`,
            `r_t`, `z_t`.

    Returns `(time, directions, batch * classes, hidden)`: the sensitivity of the logits to what step `t`
    put into its candidate's sum (`da_t` of the module docstring). The loop is three operations a step."""
    steps = incoming.unbind(0)
    carry_t = carry.unbind(0)
    dh = steps[-1]
    das: List[Tensor] = []
    if cell == "lstm":
        # one product gives both `da_t = scale_t dc_t` and `f_t dc_t`, the part of dc passed back a step
        scale_keep = torch.stack([scale, keep], 1).unbind(0)  # per step (2, directions, batch * classes, hidden)
        kept = torch.zeros_like(dh)
        for t in range(len(steps) - 1, -1, -1):
            da, kept = (torch.addcmul(kept, carry_t[t], dh) * scale_keep[t]).unbind(0)
            if t > 0:
                dh = torch.baddbmm(steps[t - 1], da, state_weight)
            das.append(da)
    else:
        scale_t, keep_t = scale.unbind(0), keep.unbind(0)
        for t in range(len(steps) - 1, -1, -1):
            da = carry_t[t] * dh
            if t > 0:
                dh = torch.baddbmm(torch.addcmul(steps[t - 1], keep_t[t], dh), scale_t[t] * da, state_weight)
            das.append(da)
    das.reverse()
    return torch.stack(das)


def token_contributions(
    cell: str,
    lengths: Tensor,
    weights: List[List[Tensor]],
    candidates: List[List[Tensor]],
    layer_states: List[Dict[str, Tensor]],
    head_weight: Tensor,
) -> Tensor:
    """`(batch, time, classes)`: each token's part of the logits (module docstring); with the head's bias
    they add up to the logits. Zero at padding. TorchScript-compatible.

    Args:
        cell: `lstm` or `gru`.
        lengths: `(batch,)`.
        weights, candidates, layer_states: `gates.replay_reading` of the review (reading order).
        head_weight: `(classes, directions * hidden)`, reading the top layer's final states.
    """
    if cell != "lstm" and cell != "gru":
        raise ValueError("a " + cell + " has no gates to carry its tokens' writes through")
    num_layers = len(layer_states)
    directions, batch, time, hidden = layer_states[0]["h"].shape
    classes = head_weight.shape[0]
    index = reversal_index(lengths, time)
    # The head reads each direction's final state: the forward one at the last token, the backward one
    # at the first; in reading order both sit at step `length - 1`.
    final = torch.nn.functional.one_hot(lengths - 1, time).to(head_weight.dtype)  # (batch, time)
    per_direction = head_weight.view(classes, directions, hidden).transpose(0, 1)  # (directions, classes, hidden)
    incoming = final.t()[:, None, :, None, None] * per_direction[None, :, None]  # (time, directions, batch, classes, hidden)
    incoming = incoming.reshape(time, directions, batch * classes, hidden)
    total = head_weight.new_zeros(directions, batch, time, classes)
    for layer in range(num_layers - 1, -1, -1):
        states = layer_states[layer]
        from_input, candidate_sum = candidates[layer][0], candidates[layer][1]  # W x_t; the whole sum under the tanh
        w_ih, w_hh, b_ih, b_hh = weights[layer][0], weights[layer][1], weights[layer][2], weights[layer][3]
        # g (LSTM) and n (GRU) are the third block of the weights
        w_in, w_state = w_ih[:, 2 * hidden : 3 * hidden], w_hh[:, 2 * hidden : 3 * hidden]
        b_in, b_state = b_ih[:, None, None, 2 * hidden : 3 * hidden], b_hh[:, None, None, 2 * hidden : 3 * hidden]
        if cell == "lstm":
            bias = b_in + b_state  # (directions, 1, 1, hidden)
            i, g, c = states["i"], states["g"], states["c"]
            carry, scale, keep = states["o"] * secant(c.tanh(), c), i * secant(g, candidate_sum), states["f"]
        else:
            r, z, n = states["r"], states["z"], states["n"]
            bias = b_in + r * b_state  # (directions, batch, time, hidden)
            carry, scale, keep = secant(n, candidate_sum) * (1 - z), r, z
        da = sweep(cell, incoming, w_state.contiguous(), per_class(carry, classes), per_class(scale, classes), per_class(keep, classes))
        da = da.view(time, directions, batch, classes, hidden).permute(1, 2, 0, 3, 4)  # (directions, batch, time, classes, hidden)
        own = (from_input + bias if layer == 0 else bias.expand_as(from_input))[:, :, :, None]
        total = total + (da * own).sum(-1)  # layer 0's input is the token itself; above it, only the bias is the step's own
        if layer > 0:  # pass the share of x_t down, as the layer below's incoming sensitivities
            to_input = torch.bmm(da.reshape(directions, batch * time * classes, hidden), w_in).view(directions, batch, time, classes, -1)
            to_input = reverse_backward(to_input.flatten(3), index).sum(0)  # text order, both directions of this layer
            below = to_input.view(batch, time, classes, directions, hidden).permute(3, 0, 1, 2, 4).flatten(3)
            below = reverse_backward(below, index).view(directions, batch, time, classes, hidden)  # each lower direction's reading order
            incoming = below.permute(2, 0, 1, 3, 4).reshape(time, directions, batch * classes, hidden)
    return reverse_backward(total, index).sum(0)
