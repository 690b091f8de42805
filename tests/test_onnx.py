"""ONNX bundles: the checkpoint's logits in ONNX Runtime without torch or sentikit, each review read to its
own length; verified before ONNX Runtime reads them; run by predict-file and the app; and without the
`onnx` extra, one line that says how to install it."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from itertools import product
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from sentikit.app.page import explain_review, find_model, legend_html, load_models, model_view, survival_frame
from sentikit.bundle.bundle import export_bundle, load_bundle, sha256
from sentikit.bundle.predict_file import predict_file
from sentikit.cli import main
from sentikit.data.tokenizer import encode_texts, right_pad, train_tokenizer
from sentikit.errors import ConfigError
from sentikit.explain.explainer import Explainer
from sentikit.nn.classifier import load_classifier

from conftest import REPO, SST2, write_table
from test_bundle import write_checkpoint

needs_onnx = pytest.mark.skipif(
    importlib.util.find_spec("onnx") is None or importlib.util.find_spec("onnxruntime") is None,
    reason='the onnx extra is not installed (pip install -e ".[onnx]")',
)

LONG = " ".join(["a gripping , funny and wise film that never drags ."] * 6)  # 60 tokens: cut at max_length 32
# From 1 token (the empty review reads as one [UNK]) to the bundle's max length.
TEXTS = ["", "dull", "a gripping , funny and wise film", "it is not the worst , but it is close to it .", LONG]
SHAPES = list(product(("rnn", "lstm", "gru"), (False, True), (1, 2), ("last", "mean", "max", "max_mean")))
# The fast part: every cell, direction and depth through its final state, and each pooling over time once.
FAST = [s for s in SHAPES if s[3] == "last"] + [("lstm", True, 2, "mean"), ("gru", False, 1, "max"), ("rnn", True, 2, "max_mean")]


@pytest.fixture(scope="module")
def tokenizer():
    texts = pq.read_table(SST2 / "train.parquet").column("text").to_pylist()[:2000]
    return train_tokenizer([texts], vocab_size=3000, min_frequency=1)


@pytest.fixture(scope="module")
def gru(tmp_path_factory, tokenizer) -> dict[str, Path]:
    """One GRU checkpoint and its ONNX and TorchScript bundles."""
    folder = tmp_path_factory.mktemp("onnx-gru")
    ckpt = write_checkpoint(folder / "gru.ckpt", tokenizer, "gru")
    return {"ckpt": ckpt, "onnx": export_bundle(ckpt, folder / "gru-onnx", model_format="onnx"), "torchscript": export_bundle(ckpt, folder / "gru")}


def checkpoint_logits(ckpt: Path, texts: list[str]) -> torch.Tensor:
    """The checkpoint's own logits (packed modules), for `texts` read as every stage reads them."""
    loaded = load_classifier(ckpt)
    token_ids, lengths = right_pad(encode_texts(loaded.tokenizer, texts, loaded.max_length)[0])
    with torch.no_grad():
        return loaded.model(token_ids, lengths)


# A fresh interpreter with onnxruntime, tokenizers and numpy only. Each bundle reads TEXTS by the rule
# docs/bundles.md gives, in one padded batch and each review alone.
ONLY_ONNXRUNTIME = r"""
import json, sys
import numpy as np
import onnxruntime
from tokenizers import Tokenizer

jobs = json.load(open(sys.argv[1]))
results = {}
for name, folder in jobs["bundles"].items():
    meta = json.load(open(folder + "/meta.json"))
    encodings = Tokenizer.from_file(folder + "/tokenizer.json").encode_batch(jobs["texts"], add_special_tokens=False)
    ids = [e.ids[: meta["max_length"]] or [1] for e in encodings]
    session = onnxruntime.InferenceSession(folder + "/model.onnx", providers=["CPUExecutionProvider"])

    def logits(rows):
        lengths = np.array([len(i) for i in rows], dtype=np.int64)
        token_ids = np.array([i + [0] * (lengths.max() - len(i)) for i in rows], dtype=np.int64)
        return session.run(["logits"], {"token_ids": token_ids, "lengths": lengths})[0].tolist()

    results[name] = {"ids": ids, "batch": logits(ids), "alone": [logits([i])[0] for i in ids]}
assert "torch" not in sys.modules and "sentikit" not in sys.modules, "torch or sentikit was imported"
json.dump(results, open(sys.argv[2], "w"))
"""


def run_python(script: str, cwd: Path, *args: str) -> None:
    """`script` in a fresh interpreter whose working directory is outside the repository."""
    program = cwd / "script.py"
    program.write_text(script)
    result = subprocess.run([sys.executable, str(program), *args], cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]


def check_parity(shapes: list[tuple], tmp_path: Path, tokenizer) -> None:
    bundles, expected = {}, {}
    for cell, bidirectional, layers, pooling in shapes:
        name = f"{cell}-{'bi' if bidirectional else 'uni'}-{layers}-{pooling}"
        ckpt = write_checkpoint(tmp_path / f"{name}.ckpt", tokenizer, cell, bidirectional, layers, pooling=pooling)
        bundles[name] = str(export_bundle(ckpt, tmp_path / name, model_format="onnx"))
        expected[name] = checkpoint_logits(ckpt, TEXTS)
    jobs, out = tmp_path / "jobs.json", tmp_path / "out.json"
    jobs.write_text(json.dumps({"bundles": bundles, "texts": TEXTS}))
    run_python(ONLY_ONNXRUNTIME, tmp_path, str(jobs), str(out))
    results = json.loads(out.read_text())
    reading = encode_texts(tokenizer, TEXTS, 32)[0]  # the checkpoints' max length
    for name, logits in expected.items():
        assert results[name]["ids"] == reading, "the documented rule reads as encode_texts"
        assert [len(i) for i in reading] == [1, 1, 7, 13, 32], "from 1 token to the max length"
        torch.testing.assert_close(torch.tensor(results[name]["batch"]), logits, rtol=0, atol=1e-5, msg=name)
        torch.testing.assert_close(torch.tensor(results[name]["alone"]), logits, rtol=0, atol=1e-5, msg=name)


@needs_onnx
def test_an_onnx_bundle_gives_the_checkpoint_s_logits_without_torch(tmp_path, tokenizer):
    check_parity(FAST, tmp_path, tokenizer)


@needs_onnx
@pytest.mark.slow  # 36 more bundles: every cell x direction x depth x pooling
def test_every_cell_direction_depth_and_pooling_gives_the_checkpoint_s_logits_without_torch(tmp_path, tokenizer):
    check_parity([s for s in SHAPES if s not in FAST], tmp_path, tokenizer)


@needs_onnx
def test_a_batch_larger_than_a_chunk_runs_in_length_sorted_chunks_and_keeps_its_order(gru):
    bundle = load_bundle(gru["onnx"])
    bundle.model.chunk = 2  # TEXTS three times over: 8 calls of reviews of similar length
    texts = TEXTS[::-1] + TEXTS + TEXTS[1::2] + TEXTS[::2]
    token_ids, lengths, _ = bundle.encode(texts)
    torch.testing.assert_close(bundle.model(token_ids, lengths), checkpoint_logits(gru["ckpt"], texts), rtol=0, atol=1e-5)


@needs_onnx
@pytest.mark.parametrize("cell, op", [("rnn", "RNN"), ("lstm", "LSTM"), ("gru", "GRU")])
def test_each_layer_is_one_onnx_recurrent_node_that_stops_at_each_review_s_length(tmp_path, tokenizer, cell, op):
    import onnx

    folder = export_bundle(write_checkpoint(tmp_path / "m.ckpt", tokenizer, cell, True, 2), tmp_path / "b", model_format="onnx")
    graph = onnx.load(str(folder / "model.onnx")).graph
    recurrent = [n for n in graph.node if n.op_type in ("RNN", "LSTM", "GRU")]
    assert [n.op_type for n in recurrent] == [op, op]
    assert all(n.input[4] == "sequence_lens" for n in recurrent)
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in recurrent[0].attribute}
    assert attributes["direction"] == b"bidirectional" and attributes.get("linear_before_reset", 0) == (cell == "gru")
    dims = lambda value: [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]  # noqa: E731
    assert [dims(i) for i in graph.input] == [["batch", "time"], ["batch"]] and dims(graph.output[0]) == ["batch", 2]


@needs_onnx
def test_meta_json_names_the_onnx_format_its_opset_and_hashes_model_onnx(gru):
    meta = json.loads((gru["onnx"] / "meta.json").read_text())
    assert (meta["model_format"], meta["onnx_opset"], set(meta["sha256"])) == ("onnx", 18, {"model.onnx", "tokenizer.json"})
    assert {"onnx", "onnxruntime", "torch"} <= set(meta["versions"]) and not (gru["onnx"] / "model.pt").exists()


@needs_onnx
def test_load_bundle_refuses_a_tampered_model_onnx_before_onnx_runtime_reads_it(tmp_path, gru, monkeypatch):
    import shutil

    import onnxruntime

    folder = shutil.copytree(gru["onnx"], tmp_path / "tampered")
    model = folder / "model.onnx"
    model.write_bytes(model.read_bytes()[:-10] + b"0123456789")
    read = []
    monkeypatch.setattr(onnxruntime, "InferenceSession", lambda *args, **kwargs: read.append(args))
    with pytest.raises(ConfigError, match="model.onnx does not match the sha256 recorded in meta.json"):
        load_bundle(folder)
    assert read == []


# The reference snippet of docs/bundles.md (and README.md's export section), run as written in a folder that
# holds `bundles/sst2-gru-onnx`, with a check appended.
SNIPPET_CHECK = """
import sys
assert "torch" not in sys.modules and "sentikit" not in sys.modules, "torch or sentikit was imported"
json.dump({"texts": texts, "logits": logits.tolist()}, open("snippet.json", "w"))
"""


def onnx_snippet(document: Path) -> str:
    blocks = [b for b in re.findall(r"```python\n(.*?)```", document.read_text(encoding="utf-8"), flags=re.S) if "import onnxruntime" in b]
    assert len(blocks) == 1, f"{document.name} should show one ONNX Runtime example"
    return blocks[0]


@needs_onnx
def test_the_documented_onnx_example_predicts_with_only_onnxruntime_and_tokenizers(tmp_path, gru):
    snippet = onnx_snippet(REPO / "docs" / "bundles.md")
    assert onnx_snippet(REPO / "README.md") == snippet, "README.md and docs/bundles.md show the same example"
    (tmp_path / "bundles").mkdir()
    export_bundle(gru["ckpt"], tmp_path / "bundles" / "sst2-gru-onnx", model_format="onnx")
    run_python(snippet + SNIPPET_CHECK, tmp_path)
    result = json.loads((tmp_path / "snippet.json").read_text())
    assert "" in result["texts"], "the example shows the empty-text rule"
    torch.testing.assert_close(torch.tensor(result["logits"]), checkpoint_logits(gru["ckpt"], result["texts"]), rtol=0, atol=1e-5)


@needs_onnx
def test_predict_file_runs_an_onnx_bundle_like_the_torchscript_one_and_top_words_need_torchscript(tmp_path, gru, capsys):
    source = write_table(tmp_path / "reviews.jsonl", [{"text": t} for t in TEXTS])
    predict_file(load_bundle(gru["torchscript"]), source, tmp_path / "torchscript.jsonl", progress=False)
    assert main(["predict-file", "--bundle", str(gru["onnx"]), "--input", source, "--output", str(tmp_path / "onnx.jsonl"), "--no-progress"]) is None
    lines = lambda name: [json.loads(line) for line in (tmp_path / name).read_text().splitlines()]  # noqa: E731
    for by_onnx, by_script in zip(lines("onnx.jsonl"), lines("torchscript.jsonl"), strict=True):
        assert by_onnx["label"] == by_script["label"]
        assert list(by_onnx["probabilities"].values()) == pytest.approx(list(by_script["probabilities"].values()), abs=1e-6)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit:
        main(["predict-file", "--bundle", str(gru["onnx"]), "--input", source, "--output", str(tmp_path / "top.jsonl"), "--top-words", "3"])
    error = capsys.readouterr().err.strip()
    assert exit.value.code == 2 and error.count("\n") == 0
    assert error == "sentikit: error: top words need the gates' retention, which an ONNX bundle (model.onnx, forward only) does not have; use a TorchScript bundle"
    with pytest.raises(ConfigError, match="an ONNX bundle .* explanations need a TorchScript bundle"):
        Explainer.from_bundle(gru["onnx"])


@needs_onnx
def test_export_onnx_from_the_command_line_says_it_predicts_only(tmp_path, gru, capsys):
    main(["export", "--ckpt", str(gru["ckpt"]), "--out", str(tmp_path / "b"), "--format", "onnx"])
    out = capsys.readouterr().out
    assert "model.onnx runs in ONNX Runtime without torch (opset 18)" in out and "explanations need a TorchScript bundle" in out
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["meta.json", "model.onnx", "tokenizer.json"]


@needs_onnx
def test_the_app_serves_an_onnx_bundle_s_prediction_and_says_explanations_need_torchscript(gru):
    onnx_model, scripted = load_models([gru["onnx"], gru["torchscript"]])
    assert onnx_model.explainer is None and (onnx_model.cell, onnx_model.name) == ("gru", "gru-onnx")
    review = "a gripping , funny and wise film"
    predicted, explained = explain_review([onnx_model, scripted], review)
    assert predicted["label"] == explained["label"] and predicted["words"] == [] and predicted["method"] == "none"
    assert predicted["probabilities"] == pytest.approx(explained["probabilities"], abs=1e-6)
    view = model_view(onnx_model, predicted)
    assert "explanations need a TorchScript bundle" in view.summary and "TorchScript bundle" in view.gates
    assert view.summary.startswith(f"**{predicted['label']}**") and view.probabilities == dict(zip(predicted["classes"], predicted["probabilities"]))
    assert review in view.highlight and "sk-word" not in view.highlight
    assert set(survival_frame([onnx_model, scripted], [predicted, explained])["model"]) == {"GRU retention (gru)"}
    assert "negative" in legend_html([onnx_model], "contribution") and find_model([onnx_model, scripted], "gru-onnx") is onnx_model


# --- without the onnx extra -----------------------------------------------------------------------------------


def test_without_the_onnx_extra_the_onnx_commands_fail_with_one_line_saying_how_to_install(tmp_path, tokenizer, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` raises ImportError
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    ckpt = write_checkpoint(tmp_path / "m.ckpt", tokenizer)
    # An ONNX bundle whose hashes hold, so that loading gets as far as ONNX Runtime.
    folder, model, tokenizer_json = tmp_path / "onnx", b"never read", tokenizer.to_str().encode()
    folder.mkdir()
    (folder / "model.onnx").write_bytes(model)
    (folder / "tokenizer.json").write_bytes(tokenizer_json)
    meta = {"format": "sentikit-bundle", "format_version": 1, "model_format": "onnx", "label_names": ["negative", "positive"],
            "max_length": 32, "sha256": {"model.onnx": sha256(model), "tokenizer.json": sha256(tokenizer_json)}}
    (folder / "meta.json").write_text(json.dumps(meta))
    for argv in (
        ["export", "--ckpt", str(ckpt), "--out", str(tmp_path / "x"), "--format", "onnx"],
        ["predict-file", "--bundle", str(folder), "--input", "reviews.csv", "--output", str(tmp_path / "p.jsonl")],
    ):
        with pytest.raises(SystemExit):
            main(argv)
        assert capsys.readouterr().err == 'sentikit: error: ONNX bundles need onnx and onnxruntime, which are not installed: pip install -e ".[onnx]"\n'
    assert not (tmp_path / "x").exists()
    load_bundle(export_bundle(ckpt, tmp_path / "torchscript")).predict_proba(TEXTS)  # the default format needs neither


def test_no_module_imports_onnx_when_it_is_imported():
    """The base package imports and runs without the extra: onnx and onnxruntime are imported inside the
    functions of the ONNX code path only."""
    import ast

    top_level = []
    for path in (REPO / "sentikit").rglob("*.py"):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            top_level += [f"{path.name}: {n}" for n in names if n.split(".")[0] in ("onnx", "onnxruntime")]
    assert top_level == []
