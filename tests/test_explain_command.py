"""`sentikit explain`: JSON that other tools can rely on, the rendering, the faithfulness table, clear errors."""

import json
import os
import subprocess
import sys

import pytest
import pytorch_lightning as pl
import torch

from conftest import REPO, write_table
from sentikit.cli import main
from sentikit.data.datamodule import SentimentDataModule
from sentikit.nn.classifier import SentimentClassifier

REVIEWS = ["a gem of a movie , warm and funny", "a dull , lifeless mess", "not the worst film this year"]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread, and far slower on a machine whose cores are all busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def lstm_checkpoint(small_sst2, tmp_path_factory) -> str:
    """A tiny BiLSTM after a few optimizer steps on 2,000 SST-2 phrases, saved as Lightning saves it."""
    torch.manual_seed(0)
    data = SentimentDataModule(data_files=small_sst2, label_names=["negative", "positive"], vocab_size=2000, max_length=32, batch_size=32)
    model = SentimentClassifier(data.vocabulary_size, data.classes, cell="lstm", embedding_dim=16, hidden_size=16)
    trainer = pl.Trainer(
        max_steps=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=0, accelerator="cpu", devices=1,
    )
    trainer.fit(model, datamodule=data)
    path = tmp_path_factory.mktemp("explain") / "tiny-lstm.ckpt"
    trainer.save_checkpoint(path)
    return str(path)


def explain(capsys, *args: str) -> tuple[int, str, str]:
    """Run `sentikit explain ARGS` in this process: (exit code, stdout, stderr)."""
    try:
        main(["explain", *args])
        code = 0
    except SystemExit as exit:
        code = exit.code
    out, err = capsys.readouterr()
    return code, out, err


def test_json_has_the_keys_other_tools_rely_on_and_contributions_plus_bias_are_the_logits(lstm_checkpoint, capsys):
    text = "A gem of a movie, warm and funny!"
    code, out, _ = explain(capsys, "--ckpt", lstm_checkpoint, "--text", text, "--json")
    assert code == 0
    report = json.loads(out)
    assert {"label", "probabilities", "logits", "bias", "method", "words"} <= report.keys()
    assert report["method"] == "gates" and report["label"] in report["classes"]
    assert len(report["probabilities"]) == len(report["logits"]) == len(report["bias"]) == 2
    for word in report["words"]:
        assert {"word", "start", "end", "retention", "contributions"} <= word.keys()
        assert text[word["start"] : word["end"]] == word["word"]
    total = torch.tensor([w["contributions"] for w in report["words"]]).sum(0) + torch.tensor(report["bias"])
    torch.testing.assert_close(total, torch.tensor(report["logits"]), rtol=0, atol=1e-4)


@pytest.mark.parametrize("suffix", [".jsonl", ".txt"])
def test_input_file_gives_one_json_line_per_review_in_order(lstm_checkpoint, capsys, tmp_path, suffix):
    path = tmp_path / f"reviews{suffix}"
    if suffix == ".jsonl":
        write_table(path, [{"text": t, "id": i} for i, t in enumerate(REVIEWS)])
    else:
        path.write_text("\n".join(REVIEWS[:2]) + "\n\n" + REVIEWS[2] + "\n")  # a blank line is skipped
    code, out, _ = explain(capsys, "--ckpt", lstm_checkpoint, "--input", str(path), "--json")
    assert code == 0
    assert [json.loads(line)["text"] for line in out.splitlines()] == REVIEWS


def test_without_json_the_review_is_rendered_with_its_label_probabilities_and_method(lstm_checkpoint, capsys):
    code, out, _ = explain(capsys, "--ckpt", lstm_checkpoint, "--text", REVIEWS[0], "--memory-probes", "0")
    assert code == 0
    assert REVIEWS[0] in out and "method: gates" in out
    assert "negative" in out and "positive" in out


def test_a_truncated_review_says_so(lstm_checkpoint, capsys):
    code, out, _ = explain(capsys, "--ckpt", lstm_checkpoint, "--text", " ".join(["good"] * 40), "--memory-probes", "0")
    assert code == 0 and "truncated to 32 of its 40 tokens" in " ".join(out.split())


def test_evaluate_prints_the_faithfulness_table(lstm_checkpoint, capsys, tmp_path):
    split = write_table(tmp_path / "split.parquet", [{"review": t, "label": 0} for t in REVIEWS])
    code, out, _ = explain(capsys, "--ckpt", lstm_checkpoint, "--evaluate", "--split-file", split, "--text-column", "review", "--limit", "2")
    assert code == 0
    assert "| method | AOPC |" in out and "| integrated_gradients |" in out and "2 reviews" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--text", "   "], "sentikit: error: the text to explain is empty"),
        (["--evaluate", "--split-file", "{split}", "--text-column", "review"], "has no column 'review'; its columns are ['text', 'label']"),
        (["--input", "{tmp}/gone.jsonl"], "input file not found"),
        (["--input", "{tmp}/bad.jsonl"], "bad.jsonl, line 2: not JSON"),
        (["--input", "{tmp}/no-text.jsonl"], "no-text.jsonl, line 1: expected a JSON object with a 'text' key"),
        (["--input", "{tmp}/empty-text.jsonl"], "empty-text.jsonl, line 1: 'text' is empty or not a string"),
        (["--input", "{tmp}/reviews.csv"], "unsupported input type; use .jsonl or .txt"),
    ],
)
def test_bad_input_fails_with_one_clear_line_and_no_traceback(lstm_checkpoint, capsys, tmp_path, small_sst2, args, message):
    (tmp_path / "bad.jsonl").write_text('{"text": "fine"}\n{"text": oops}\n')
    (tmp_path / "no-text.jsonl").write_text('{"review": "fine"}\n')
    (tmp_path / "empty-text.jsonl").write_text('{"text": ""}\n')
    (tmp_path / "reviews.csv").write_text("text\nfine\n")
    args = [a.format(tmp=tmp_path, split=small_sst2["validation"]) for a in args]
    code, out, err = explain(capsys, "--ckpt", lstm_checkpoint, *args)
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_missing_checkpoint_is_named(capsys, tmp_path):
    code, _, err = explain(capsys, "--ckpt", str(tmp_path / "gone.ckpt"), "--text", "fine")
    assert code == 2 and err.strip() == f"sentikit: error: checkpoint not found: {tmp_path / 'gone.ckpt'}"


@pytest.mark.slow
def test_python_dash_m_sentikit_explain_fails_cleanly_in_a_fresh_process(tmp_path):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    result = subprocess.run(
        [sys.executable, "-m", "sentikit", "explain", "--ckpt", str(tmp_path / "gone.ckpt"), "--text", "fine"],
        cwd=REPO, capture_output=True, text=True, timeout=120, env=env,
    )
    assert result.returncode == 2
    assert "sentikit: error: checkpoint not found" in result.stderr and "Traceback" not in result.stderr
