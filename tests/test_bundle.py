"""Bundles: exported once, they predict and explain like the checkpoint, without sentikit, and refuse tampering."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from sentikit.bundle.bundle import FORMAT_VERSION, export_bundle, load_bundle
from sentikit.checkpoint import DATA_STATE_KEY
from sentikit.nn.classifier import load_classifier
from sentikit.errors import ConfigError
from sentikit.explain.explainer import Explainer
from sentikit.nn.classifier import SentimentClassifier
from sentikit.data.tokenizer import train_tokenizer

from conftest import SST2

TEXTS = ["a gripping , funny and wise film", "dull", "it is not the worst , but it is close to it ."]
SHAPES = [(cell, bidirectional, layers) for cell in ("rnn", "lstm", "gru") for bidirectional in (False, True) for layers in (1, 2)]
# Every shape read through its final state, and each pooling over time on one of them.
POOLINGS = [(*shape, "last") for shape in SHAPES] + [("lstm", True, 1, "mean"), ("gru", True, 2, "max"), ("gru", True, 1, "max_mean")]


@pytest.fixture(scope="module")
def tokenizer():
    texts = pq.read_table(SST2 / "train.parquet").column("text").to_pylist()[:2000]
    return train_tokenizer([texts], vocab_size=3000, min_frequency=1)


def write_checkpoint(
    path: Path, tokenizer, cell: str = "gru", bidirectional: bool = True, num_layers: int = 1, seed: int = 0, pooling: str = "last",
) -> Path:
    """A checkpoint as `sentikit fit` writes it (the parts a bundle reads), for a randomly initialised model."""
    torch.manual_seed(seed)
    hyper = dict(
        vocab_size=tokenizer.get_vocab_size(), label_names=["negative", "positive"], cell=cell, embedding_dim=12,
        hidden_size=10, num_layers=num_layers, bidirectional=bidirectional, pooling=pooling,
    )
    model = SentimentClassifier(**hyper)
    with torch.no_grad():  # random biases too, so that nothing is zero by luck
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    torch.save(
        {
            "state_dict": model.state_dict(),
            "hyper_parameters": hyper,
            "epoch": 3,
            "global_step": 100,
            DATA_STATE_KEY: {"tokenizer": tokenizer.to_str(), "classes": hyper["label_names"], "max_length": 32,
                             "source": {"data_files": {"train": "train.parquet"}}},
        },
        path,
    )
    return path


# Run in a fresh interpreter: only torch and tokenizers, and a check that sentikit never got imported.
PLAIN_TORCH = r"""
import json, sys, torch
from tokenizers import Tokenizer
jobs = json.load(open(sys.argv[1]))
results = {}
for name, folder in jobs["bundles"].items():
    model = torch.jit.load(folder + "/model.pt")
    tokenizer = Tokenizer.from_file(folder + "/tokenizer.json")
    ids = [e.ids for e in tokenizer.encode_batch(jobs["texts"], add_special_tokens=False)]
    lengths = torch.tensor([len(i) for i in ids])
    token_ids = torch.zeros(len(ids), int(lengths.max()), dtype=torch.long)
    for row, i in enumerate(ids):
        token_ids[row, : len(i)] = torch.tensor(i)
    readings = model.explain(token_ids, lengths)
    results[name] = {
        "logits": model(token_ids, lengths).tolist(),
        "contributions": readings["contributions"].tolist() if "contributions" in readings else None,
    }
assert not any(m.startswith("sentikit") for m in sys.modules), "sentikit was imported"
json.dump(results, open(sys.argv[2], "w"))
"""


def without_sentikit(script: str, bundles: dict[str, str], tmp_path: Path) -> dict:
    """Run `script` on `bundles` and `TEXTS` in a fresh interpreter whose working directory is outside the
    repository (so that `import sentikit` could not even find the source tree); its JSON output."""
    jobs, program, out = tmp_path / "jobs.json", tmp_path / "script.py", tmp_path / "out.json"
    jobs.write_text(json.dumps({"bundles": bundles, "texts": TEXTS}))
    program.write_text(script)
    subprocess.run([sys.executable, str(program), str(jobs), str(out)], check=True, cwd=tmp_path)
    return json.loads(out.read_text())


def test_a_bundle_gives_the_checkpoint_s_logits_and_contributions_in_a_process_without_sentikit(tmp_path, tokenizer):
    bundles, expected = {}, {}
    for cell, bidirectional, layers, pooling in POOLINGS:
        name = f"{cell}-{'bi' if bidirectional else 'uni'}-{layers}-{pooling}"
        ckpt = write_checkpoint(tmp_path / f"{name}.ckpt", tokenizer, cell, bidirectional, layers, pooling=pooling)
        bundles[name] = str(export_bundle(ckpt, tmp_path / name))
        loaded = load_classifier(ckpt)
        explainer = Explainer(loaded.model, loaded.tokenizer, loaded.max_length)
        token_ids, lengths, _ = load_bundle(bundles[name]).encode(TEXTS)
        with torch.no_grad():
            logits = loaded.model(token_ids, lengths)
        contributions = explainer.token_contributions(token_ids, lengths) if explainer.exact else None
        expected[name] = (logits, contributions)
    results = without_sentikit(PLAIN_TORCH, bundles, tmp_path)
    for name, (logits, contributions) in expected.items():
        torch.testing.assert_close(torch.tensor(results[name]["logits"]), logits, rtol=0, atol=1e-5)
        if contributions is None:
            assert results[name]["contributions"] is None, name
        else:
            torch.testing.assert_close(torch.tensor(results[name]["contributions"]), contributions, rtol=0, atol=1e-4)


# The exported format, in a fresh interpreter too: torch.export.load, ids padded to meta's input_length.
PLAIN_EXPORTED = r"""
import json, sys, torch
from tokenizers import Tokenizer
jobs = json.load(open(sys.argv[1]))
results = {}
for name, folder in jobs["bundles"].items():
    program = torch.export.load(folder + "/model.pt2").module()
    meta = json.load(open(folder + "/meta.json"))
    tokenizer = Tokenizer.from_file(folder + "/tokenizer.json")
    ids = [e.ids for e in tokenizer.encode_batch(jobs["texts"], add_special_tokens=False)]
    token_ids = torch.full((len(ids), meta["input_length"]), meta["pad_id"], dtype=torch.long)
    for row, i in enumerate(ids):
        token_ids[row, : len(i)] = torch.tensor(i)
    results[name] = program(token_ids, torch.tensor([len(i) for i in ids])).tolist()
assert not any(m.startswith("sentikit") for m in sys.modules), "sentikit was imported"
json.dump(results, open(sys.argv[2], "w"))
"""


@pytest.mark.slow  # 15 torch.export runs; the exported format is checked in-process by the fast tests below
def test_an_exported_program_gives_the_checkpoint_s_logits_in_a_process_without_sentikit(tmp_path, tokenizer):
    bundles, expected = {}, {}
    for cell, bidirectional, layers, pooling in POOLINGS:
        name = f"{cell}-{'bi' if bidirectional else 'uni'}-{layers}-{pooling}"
        ckpt = write_checkpoint(tmp_path / f"{name}.ckpt", tokenizer, cell, bidirectional, layers, pooling=pooling)
        bundles[name] = str(export_bundle(ckpt, tmp_path / name, model_format="exported"))
        loaded = load_classifier(ckpt)
        token_ids, lengths, _ = load_bundle(bundles[name]).encode(TEXTS)
        with torch.no_grad():
            expected[name] = loaded.model(token_ids, lengths)
    results = without_sentikit(PLAIN_EXPORTED, bundles, tmp_path)
    for name, logits in expected.items():
        torch.testing.assert_close(torch.tensor(results[name]), logits, rtol=0, atol=1e-5, msg=name)


def test_an_exported_bundle_predicts_like_the_torchscript_one_and_says_it_cannot_explain(tmp_path, tokenizer):
    ckpt = write_checkpoint(tmp_path / "m.ckpt", tokenizer, "lstm")
    scripted = load_bundle(export_bundle(ckpt, tmp_path / "scripted"))
    folder = export_bundle(ckpt, tmp_path / "exported", model_format="exported")
    exported = load_bundle(folder)
    meta = json.loads((folder / "meta.json").read_text())
    assert (meta["model_format"], meta["input_length"], set(meta["sha256"])) == ("exported", 32, {"model.pt2", "tokenizer.json"})
    assert not (folder / "model.pt").exists()
    torch.testing.assert_close(exported.predict_proba(TEXTS), scripted.predict_proba(TEXTS), rtol=0, atol=1e-6)
    with pytest.raises(ConfigError, match="exported bundle .* forward only"):
        Explainer.from_bundle(folder)
    with pytest.raises(ConfigError, match="top words need the gates' retention, which an exported bundle"):
        predict_file(exported, tmp_path / "in.csv", tmp_path / "out.jsonl", "review", top_words=3)
    (folder / "model.pt2").write_bytes((folder / "model.pt2").read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ConfigError, match="model.pt2 does not match the sha256"):
        load_bundle(folder)


def test_a_bundle_explains_word_by_word_exactly_as_its_checkpoint(tmp_path, tokenizer):
    ckpt = write_checkpoint(tmp_path / "lstm.ckpt", tokenizer, "lstm")
    folder = export_bundle(ckpt, tmp_path / "bundle")
    text = "a gripping , funny and wise film that never drags"
    from_bundle = Explainer.from_bundle(folder).explain(text)
    from_checkpoint = Explainer.from_checkpoint(ckpt).explain(text)
    assert from_bundle["method"] == from_checkpoint["method"] == "gates"
    assert [w["word"] for w in from_bundle["words"]] == [w["word"] for w in from_checkpoint["words"]]
    for a, b in zip(from_bundle["words"], from_checkpoint["words"]):
        assert a["contributions"] == pytest.approx(b["contributions"], abs=1e-5)
        assert a["retention"] == pytest.approx(b["retention"], abs=1e-6)
        assert a["memory"] == pytest.approx(b["memory"], rel=1e-4, abs=1e-6)


def test_meta_json_describes_the_model_and_hashes_its_files(tmp_path, tokenizer):
    folder = export_bundle(write_checkpoint(tmp_path / "m.ckpt", tokenizer, "gru"), tmp_path / "bundle")
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["format_version"] == FORMAT_VERSION
    assert meta["label_names"] == ["negative", "positive"] and meta["cell"] == "gru" and meta["max_length"] == 32
    assert meta["training"]["data"] == {"data_files": {"train": "train.parquet"}}
    assert meta["versions"]["torch"] == torch.__version__
    assert set(meta["sha256"]) == {"model.pt", "tokenizer.json"}


@pytest.mark.parametrize("model_format", ["torchscript", "exported"])
def test_export_reads_reviews_up_to_the_checkpoint_s_length_or_the_one_asked_for(tmp_path, tokenizer, model_format):
    ckpt = write_checkpoint(tmp_path / "m.ckpt", tokenizer, "lstm")  # saved with max_length 32
    long_review = " ".join(["a gripping , funny and wise film ."] * 10)  # 80 tokens
    first_five = " ".join(long_review.split()[:5])
    default = load_bundle(export_bundle(ckpt, tmp_path / "default", model_format=model_format))
    short = load_bundle(export_bundle(ckpt, tmp_path / "short", model_format=model_format, max_length=5))
    assert (default.max_length, short.max_length) == (32, 5)
    assert short.meta.get("input_length", 5) == 5
    torch.testing.assert_close(short.predict_proba([long_review]), short.predict_proba([first_five]))
    assert not torch.allclose(default.predict_proba([long_review]), short.predict_proba([long_review]))
    with pytest.raises(ConfigError, match="max_length must be at least 1, got 0"):
        export_bundle(ckpt, tmp_path / "none", max_length=0)


def test_a_zipped_bundle_loads_like_the_folder(tmp_path, tokenizer):
    folder = export_bundle(write_checkpoint(tmp_path / "m.ckpt", tokenizer), tmp_path / "bundle")
    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for file in folder.iterdir():
            z.write(file, f"bundle/{file.name}")
    torch.testing.assert_close(load_bundle(archive).predict_proba(TEXTS), load_bundle(folder).predict_proba(TEXTS))


@pytest.mark.parametrize("damage, message", [("no meta", "has no meta.json"), ("bad json", "not valid JSON"), ("no tokenizer", "missing tokenizer.json")])
def test_a_broken_bundle_is_a_clear_error(tmp_path, tokenizer, damage, message):
    folder = export_bundle(write_checkpoint(tmp_path / "m.ckpt", tokenizer), tmp_path / "bundle")
    if damage == "no meta":
        (folder / "meta.json").unlink()
    elif damage == "bad json":
        (folder / "meta.json").write_text("{not json")
    else:
        (folder / "tokenizer.json").unlink()
    with pytest.raises(ConfigError, match=message):
        load_bundle(folder)


def test_export_never_replaces_a_bundle_without_force(tmp_path, tokenizer):
    ckpt = write_checkpoint(tmp_path / "m.ckpt", tokenizer)
    folder = export_bundle(ckpt, tmp_path / "bundle")
    with pytest.raises(ConfigError, match="already exists; pass --force"):
        export_bundle(ckpt, folder)
    export_bundle(write_checkpoint(tmp_path / "other.ckpt", tokenizer, seed=1), folder, force=True)
    assert not list(tmp_path.glob(".bundle.*")), "no staging folder left behind"


# --- export and predict-file from the command line (predict-file on its own: test_predict_file.py) -----------

from conftest import write_table  # noqa: E402

from sentikit.bundle.predict_file import predict_file  # noqa: E402


@pytest.mark.slow
def test_export_and_predict_file_through_the_command_line(tmp_path, tokenizer):
    ckpt = write_checkpoint(tmp_path / "m.ckpt", tokenizer, "gru")
    run = lambda *args: subprocess.run([sys.executable, "-m", "sentikit", *args], capture_output=True, text=True)  # noqa: E731
    scored = write_table(tmp_path / "scored.csv", [{"text": t, "label": "positive" if i % 2 else "negative"} for i, t in enumerate(TEXTS)])
    exported = run(
        "export", "--ckpt", str(ckpt), "--out", str(tmp_path / "b"), "--validation", str(SST2 / "validation.parquet"), "--score", scored,
        "--score", str(SST2 / "test.parquet"),
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    assert "accuracy on validation.parquet" in exported.stdout and "reads up to 32 tokens a review" in exported.stdout
    assert f"accuracy on {scored}:" in exported.stdout
    scores = json.loads((tmp_path / "b" / "meta.json").read_text())["scores"]
    assert [(s["file"], s["examples"]) for s in scores] == [(scored, len(TEXTS)), (str(SST2 / "test.parquet"), 1821)]
    assert load_bundle(tmp_path / "b").meta["scores"] == scores  # the hashes still hold
    too_short = run("export", "--ckpt", str(ckpt), "--out", str(tmp_path / "s"), "--max-length", "0")
    assert too_short.returncode == 2 and "max_length must be at least 1, got 0" in too_short.stderr and not (tmp_path / "s").exists()
    meta = json.loads((tmp_path / "b" / "meta.json").read_text())
    assert meta["validation"]["examples"] == 872 and 0 <= meta["validation"]["accuracy"] <= 1
    source = write_table(tmp_path / "reviews.jsonl", [{"text": t} for t in TEXTS])
    args = ("predict-file", "--bundle", str(tmp_path / "b"), "--input", source, "--output", str(tmp_path / "p.jsonl"), "--no-progress")
    assert run(*args).returncode == 0
    again = run(*args)
    assert again.returncode == 2 and again.stderr.strip().startswith("sentikit: error:") and "Traceback" not in again.stderr
    tampered = tmp_path / "b" / "tokenizer.json"
    tampered.write_text(tampered.read_text().replace("film", "flim"))
    refused = run("predict-file", "--bundle", str(tmp_path / "b"), "--input", source, "--output", str(tmp_path / "q.jsonl"))
    assert refused.returncode == 2 and "tokenizer.json does not match the sha256" in refused.stderr

    program = run("export", "--ckpt", str(ckpt), "--out", str(tmp_path / "x"), "--format", "exported")
    assert program.returncode == 0 and "model.pt2 is a torch.export program" in program.stdout, program.stderr
    assert run("predict-file", "--bundle", str(tmp_path / "x"), "--input", source, "--output", str(tmp_path / "x.jsonl"), "--no-progress").returncode == 0
    by_program = [json.loads(line)["probabilities"] for line in (tmp_path / "x.jsonl").read_text().splitlines()]
    by_script = [json.loads(line)["probabilities"] for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    for a, b in zip(by_program, by_script):
        assert a == pytest.approx(b, abs=1e-6)
