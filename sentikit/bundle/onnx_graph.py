"""The classifier as an ONNX graph (`sentikit export --format onnx`), built node by node from its weights.

`torch.onnx.export` cannot export `pack_padded_sequence`, but ONNX's `RNN`, `LSTM` and `GRU` operators
take what packing gives: `sequence_lens`, one length per review, at which each review's recurrence
stops (the backward direction reads each review reversed within its own length and its final state is
the one at the first token). So the graph is written here directly with `onnx.helper`, one fused node
per layer, and its logits equal the packed module's:

    token_ids (batch, time) int64, right-padded; lengths (batch,) int64
      -> Gather(embedding)                          (batch, time, embedding)
      -> Transpose to time-major                    (time, batch, embedding)
      -> per layer: LSTM | GRU | RNN, forward or bidirectional, sequence_lens = lengths
      -> pooling: the top layer's Y_h (`last`), or a mean / max over Y with positions at or past each
         review's length masked out (`mean`, `max`, `max_mean`)
      -> Gemm(head)                                 logits (batch, classes)

Batch size and length are dynamic. PyTorch and ONNX order the gates differently, and ONNX keeps the
input and recurrent biases apart as PyTorch does (`Wb`, `Rb`):

- LSTM: PyTorch stacks `i, f, g, o`, ONNX `i, o, f, c` (its `c` is PyTorch's candidate `g`);
- GRU: PyTorch stacks `r, z, n`, ONNX `z, r, h`; PyTorch applies the reset gate after the recurrent
  matrix product, `n = tanh(W_in x + b_in + r * (W_hn h + b_hn))`, which is ONNX's `linear_before_reset=1`;
- RNN: one block, `h = tanh(W_ih x + b_ih + W_hh h + b_hh)`, ONNX's default activation.

The graph has the forward pass only: no gate readings, no explanation (a TorchScript bundle has them).
`onnx` and `onnxruntime` are an optional extra (`pip install -e ".[onnx]"`), imported only here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from sentikit.errors import ConfigError
from sentikit.nn.recurrence import direction_weights

if TYPE_CHECKING:
    from sentikit.nn.classifier import SentimentClassifier

OPSET = 18  # reductions take their axes as an input from 18 on; ONNX Runtime 1.20 reads up to 21
IR_VERSION = 8  # the lowest IR version of opset 18, so that older runtimes read the file
INSTALL_HINT = 'pip install -e ".[onnx]"'
ONNX_OP = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}
# Where each of ONNX's gate blocks sits in PyTorch's stacking (see the module docstring).
GATE_ORDER = {"rnn": [0], "lstm": [0, 3, 1, 2], "gru": [1, 0, 2]}


def require(module: str) -> Any:
    """Import `onnx` or `onnxruntime`, or say in one line how to install them."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"ONNX bundles need onnx and onnxruntime, which are not installed: {INSTALL_HINT}") from None


def runtime_versions() -> dict[str, str]:
    """The installed `onnx` and `onnxruntime` versions (for `meta.json`), or the install hint."""
    return {name: require(name).__version__ for name in ("onnx", "onnxruntime")}


def _onnx_gates(cell: str, weight: Tensor) -> np.ndarray:
    """A PyTorch weight or bias of one direction, gate blocks stacked along dim 0, in ONNX's gate order."""
    blocks = weight.detach().float().chunk(len(GATE_ORDER[cell]), dim=0)
    return torch.cat([blocks[g] for g in GATE_ORDER[cell]], dim=0).numpy()


def layer_initializers(model: SentimentClassifier, layer: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`W (directions, gates * hidden, input)`, `R (directions, gates * hidden, hidden)` and
    `B (directions, 2 * gates * hidden)` of one layer, as ONNX's recurrent operators read them."""
    encoder = model.encoder
    rnn, cell, directions = encoder.rnn, encoder.cell, encoder.num_directions
    W, R, B = [], [], []
    for direction in range(directions):
        w_ih, w_hh, b_ih, b_hh = direction_weights(rnn._flat_weights, layer, direction, rnn.num_layers, directions)
        W.append(_onnx_gates(cell, w_ih))
        R.append(_onnx_gates(cell, w_hh))
        B.append(np.concatenate([_onnx_gates(cell, b_ih), _onnx_gates(cell, b_hh)]))
    return np.stack(W), np.stack(R), np.stack(B)


def build_graph(model: SentimentClassifier) -> Any:
    """The `onnx.ModelProto` of `model`'s inference (eval mode: no dropout); see the module docstring."""
    onnx = require("onnx")
    from onnx import TensorProto, helper, numpy_helper

    encoder = model.encoder
    cell, pooling, directions = encoder.cell, encoder.pooling, encoder.num_directions
    hidden, layers = encoder.rnn.hidden_size, encoder.rnn.num_layers
    nodes: list[Any] = []
    weights: dict[str, np.ndarray] = {
        "embedding": model.embedding.weight.detach().float().numpy(),  # (vocab, embedding)
        "head_weight": model.head.weight.detach().float().numpy(),  # (classes, summary)
        "head_bias": model.head.bias.detach().float().numpy(),
    }

    def node(op: str, inputs: list[str], output: str, **attributes: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attributes))
        return output

    def const(name: str, value: Any, dtype: Any = np.int64) -> str:
        weights[name] = np.array(value, dtype=dtype)
        return name

    lengths = node("Cast", ["lengths"], "sequence_lens", to=TensorProto.INT32)
    embedded = node("Gather", ["embedding", "token_ids"], "embedded", axis=0)  # (batch, time, embedding)
    x = node("Transpose", [embedded], "time_major", perm=[1, 0, 2])  # (time, batch, embedding)
    direction = "bidirectional" if directions == 2 else "forward"
    extra = {"linear_before_reset": 1} if cell == "gru" else {}
    for layer in range(layers):
        W, R, B = layer_initializers(model, layer)
        weights.update({f"W_{layer}": W, f"R_{layer}": R, f"B_{layer}": B})
        y, y_h = f"Y_{layer}", f"Y_h_{layer}"
        nodes.append(helper.make_node(
            ONNX_OP[cell], [x, f"W_{layer}", f"R_{layer}", f"B_{layer}", lengths], [y, y_h], name=f"{cell}_{layer}",
            hidden_size=hidden, direction=direction, **extra,
        ))  # Y (time, directions, batch, hidden), Y_h (directions, batch, hidden)
        if layer == layers - 1 and pooling == "last":
            break
        by_step = node("Transpose", [y], f"by_step_{layer}", perm=[0, 2, 1, 3])  # (time, batch, directions, hidden)
        x = node("Reshape", [by_step, const("join_directions", [0, 0, -1])], f"outputs_{layer}")  # (time, batch, directions * hidden)

    if pooling == "last":
        # Y_h holds each direction's state at the end of its reading: the forward one at the last token,
        # the backward one at the first, as the packed module's h_n.
        final = node("Transpose", [y_h], "final_by_batch", perm=[1, 0, 2])  # (batch, directions, hidden)
        summary = node("Reshape", [final, const("join_final", [0, -1])], "summary")  # (batch, directions * hidden)
    else:
        time = node("Gather", [node("Shape", ["token_ids"], "ids_shape"), const("one", 1)], "time", axis=0)
        steps = node("Range", [const("zero", 0), time, "one"], "steps")  # (time,)
        steps = node("Unsqueeze", [steps, const("axis_1", [1])], "steps_column")  # (time, 1)
        valid = node("Unsqueeze", [node("Less", [steps, "lengths"], "valid_2d"), const("axis_2", [2])], "valid")  # (time, batch, 1)
        pooled = []
        if pooling in ("max", "max_mean"):
            masked = node("Where", [valid, x, const("minus_inf", -np.inf, np.float32)], "masked_for_max")
            pooled.append(node("ReduceMax", [masked, const("axis_0", [0])], "max_pool", keepdims=0))
        if pooling in ("mean", "max_mean"):
            kept = node("Mul", [x, node("Cast", [valid], "valid_float", to=TensorProto.FLOAT)], "masked_for_mean")
            total = node("ReduceSum", [kept, const("axis_0", [0])], "sum_pool", keepdims=0)  # (batch, features)
            count = node("Unsqueeze", [node("Cast", ["lengths"], "lengths_float", to=TensorProto.FLOAT), "axis_1"], "count")  # (batch, 1)
            pooled.append(node("Div", [total, count], "mean_pool"))
        summary = pooled[0] if len(pooled) == 1 else node("Concat", pooled, "summary", axis=-1)
    node("Gemm", [summary, "head_weight", "head_bias"], "logits", transB=1)

    graph = helper.make_graph(
        nodes, "sentikit_classifier",
        inputs=[
            helper.make_tensor_value_info("token_ids", TensorProto.INT64, ["batch", "time"]),
            helper.make_tensor_value_info("lengths", TensorProto.INT64, ["batch"]),
        ],
        outputs=[helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", len(model.label_names)])],
        initializer=[numpy_helper.from_array(value, name) for name, value in weights.items()],
    )
    proto = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION, producer_name="sentikit",
        doc_string=f"{cell} classifier, {direction}, {layers} layer(s), {pooling} pooling; "
        f"classes {model.label_names}; inputs: right-padded token_ids and their lengths",
    )
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export_onnx(model: SentimentClassifier) -> bytes:
    """`model.onnx`'s bytes for `model` (see the module docstring)."""
    return build_graph(model.eval()).SerializeToString()


class OnnxSession:
    """A `model.onnx` in an ONNX Runtime session, called like the TorchScript model: right-padded
    `token_ids` `(batch, time)` and `lengths` `(batch,)` tensors in, logits `(batch, classes)` out.

    ONNX's recurrent operators compute every step up to the longest review of a call, masking the steps
    past each review's length, where packed sequences stop each review at its own length: a batch of
    short sentences and one long review costs as if all were long. So a batch runs in chunks of `chunk`
    reviews of similar length (sorted by length), each cut to its own longest review; a review's logits
    do not depend on the chunk it runs in (docs/results.md has the speeds)."""

    exact = False  # no gates split: the graph has a forward pass only

    def __init__(self, model_bytes: bytes, source: str = "model.onnx", threads: int = 0, chunk: int = 16) -> None:
        ort = require("onnxruntime")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # 0: ONNX Runtime's default, one per core
        try:
            self.session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
        except Exception as error:  # noqa: BLE001 - ONNX Runtime raises its own types for a file it cannot read
            raise ConfigError(f"{source} is not an ONNX model onnxruntime {ort.__version__} can load: {str(error).splitlines()[0]}") from None
        self.chunk = chunk

    def __call__(self, token_ids: Tensor, lengths: Tensor) -> Tensor:
        ids, lengths = token_ids.numpy().astype(np.int64, copy=False), lengths.numpy().astype(np.int64, copy=False)
        order = np.argsort(-lengths, kind="stable")  # longest first
        logits = []
        for first in range(0, len(order), self.chunk):
            rows = order[first : first + self.chunk]
            feeds = {"token_ids": ids[rows, : lengths[rows].max()], "lengths": lengths[rows]}
            logits.append(self.session.run(["logits"], feeds)[0])
        return torch.from_numpy(np.concatenate(logits)[np.argsort(order)])  # back in the batch's order
