"""`sentikit compare` end to end: every cell trained through `sentikit fit` on the same data and tokenizer,
measured, reported, and resumed rather than repeated."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import yaml

from sentikit.nn.classifier import load_classifier
from sentikit.nn.classifier import SentimentClassifier
from sentikit.data.tokenizer import load_tokenizer, right_pad

pytestmark = pytest.mark.slow


def sentikit(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    # One thread: tiny models run fastest so, and the machine's cores may be busy with other tests.
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "sentikit", *args], cwd=cwd, capture_output=True, text=True, timeout=600, env=env)


@pytest.fixture(scope="module")
def tiny_config(small_sst2, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("compare")
    config = {
        "seed_everything": 7,
        "trainer": {"max_epochs": 2, "log_every_n_steps": 10, "enable_progress_bar": False, "enable_model_summary": False},
        "model": {"embedding_dim": 16, "hidden_size": 16, "bidirectional": True, "learning_rate": 0.01},
        "data": {"data_files": small_sst2, "vocab_size": 2000, "max_length": 40, "batch_size": 64},
    }
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def compared(tiny_config) -> tuple[Path, subprocess.CompletedProcess]:
    out = tiny_config.parent / "report"
    result = sentikit("compare", "-c", str(tiny_config), "--cells", "rnn", "gru", "--out", str(out), "--decay-reviews", "8", cwd=tiny_config.parent)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return out, result


def report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


def test_every_cell_is_trained_with_the_same_tokenizer_and_counted(compared, tiny_config):
    out, _ = compared
    runs = {run["cell"]: run for run in report(out)["runs"]}
    assert set(runs) == {"rnn", "gru"}
    vocab_size = load_tokenizer(out / "tokenizer.json").get_vocab_size()
    for cell, run in runs.items():
        assert run["seed"] == 7
        model = load_classifier(out / run["best_checkpoint"])
        assert model.tokenizer.to_str() == load_tokenizer(out / "tokenizer.json").to_str()
        expected = SentimentClassifier(vocab_size, ["negative", "positive"], cell=cell, embedding_dim=16, hidden_size=16)
        assert run["parameters"] == expected.num_parameters
    assert runs["gru"]["parameters"] > runs["rnn"]["parameters"]  # three gate blocks against one


def test_each_epoch_records_time_tokens_and_memory(compared, small_sst2):
    out, _ = compared
    tokenizer = load_tokenizer(out / "tokenizer.json")
    for run in report(out)["runs"]:
        assert [e["epoch"] for e in run["epochs"]] == [1, 2]
        for epoch in run["epochs"]:
            assert 0 <= epoch["val_acc"] <= 1
            assert epoch["train_seconds"] > 0
            assert epoch["memory_peak_mb"] >= epoch["memory_start_mb"] > 0
            tokens = epoch["train_tokens_per_sec"] * epoch["train_seconds"]
            # Each epoch reads every training review once: the real tokens of the split (validation is
            # carved out of nothing here, the files have their own).
            assert tokens == pytest.approx(train_tokens(small_sst2["train"], tokenizer, 40), rel=1e-6)
        assert run["best_epoch"] in (1, 2)
        assert run["validation"]["acc"] == pytest.approx(max(e["val_acc"] for e in run["epochs"]), abs=1e-6)


def train_tokens(path: str, tokenizer, max_length: int) -> int:
    texts = pq.read_table(path).column("text").to_pylist()
    return sum(max(1, min(len(e.ids), max_length)) for e in tokenizer.encode_batch(texts))  # an empty review reads as [UNK]


def test_scores_are_those_of_the_best_checkpoint_on_each_split(compared, small_sst2):
    out, _ = compared
    for run in report(out)["runs"]:
        loaded = load_classifier(out / run["best_checkpoint"])
        for split in ("validation", "test"):
            table = pq.read_table(small_sst2[split])
            encodings = loaded.tokenizer.encode_batch(table.column("text").to_pylist())
            ids, lengths = right_pad([e.ids[: loaded.max_length] for e in encodings])
            with torch.no_grad():
                predicted = loaded.model(ids, lengths).argmax(-1).numpy()
            labels = np.asarray(table.column("label").to_pylist())
            assert run[split]["acc"] == pytest.approx(float((predicted == labels).mean()), abs=1e-6)
            assert run[split]["examples"] == len(labels)


def test_accuracy_by_length_partitions_the_test_split(compared):
    out, _ = compared
    for run in report(out)["runs"]:
        buckets = run["accuracy_by_length"]
        assert len(buckets) >= 2
        counts = [b["examples"] for b in buckets]
        assert sum(counts) == run["test"]["examples"]
        weighted = sum(b["acc"] * b["examples"] for b in buckets if b["examples"]) / sum(counts)
        assert weighted == pytest.approx(run["test"]["acc"], abs=1e-6)
    first, second = (r["accuracy_by_length"] for r in report(out)["runs"])
    assert [b["tokens"] for b in first] == [b["tokens"] for b in second]  # the same buckets for every cell


def test_the_plain_rnn_forgets_early_words_faster_than_the_gru(compared):
    out, _ = compared
    summary = report(out)["summary"]
    for cell in ("rnn", "gru"):
        curve = summary[cell]["memory_decay"]
        assert curve[0] > curve[10] > 0  # the last word weighs more than one ten words earlier
    assert summary["rnn"]["memory_at_20"] < summary["gru"]["memory_at_20"]


def test_the_report_is_written_as_markdown_json_and_plots_and_printed(compared, tiny_config):
    out, result = compared
    markdown = (out / "report.md").read_text()
    for row in ("| RNN |", "| GRU |"):
        assert row in markdown and row in result.stdout
    assert "val acc %" in markdown and "test acc %" in markdown
    assert f"`sentikit compare -c {tiny_config} --cells rnn gru --seeds 1 --out {out}`" in markdown  # to rerun it
    for plot in ("learning_curves.png", "memory_decay.png", "accuracy_by_length.png"):
        data = (out / plot).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000
        assert f"]({plot})" in markdown
    assert not list(out.rglob("*.partial*"))


def test_a_second_call_reuses_finished_runs_and_resumes_a_stopped_one(compared, tiny_config):
    out, _ = compared
    finished = out / "runs" / "rnn-seed7" / "result.json"
    before = finished.stat().st_mtime_ns
    # A run stopped after its last checkpoint and before its evaluation: only its checkpoint is left.
    stopped = out / "runs" / "gru-seed7"
    (stopped / "fit.json").unlink()
    (stopped / "result.json").unlink()
    result = sentikit("compare", "-c", str(tiny_config), "--cells", "rnn", "gru", "--out", str(out), "--decay-reviews", "8", cwd=tiny_config.parent)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "rnn-seed7: done earlier" in result.stdout
    assert "gru-seed7: resuming training from its last checkpoint" in result.stdout
    assert finished.stat().st_mtime_ns == before
    gru = next(r for r in report(out)["runs"] if r["cell"] == "gru")
    assert [e["epoch"] for e in gru["epochs"]] == [1, 2]  # both epochs kept, none trained twice
    assert len(list((stopped / "lightning_logs").glob("version_*"))) == 2


def test_a_copied_comparison_finishes_and_reports_from_its_own_folder(compared, tiny_config, tmp_path):
    """Reports travel: a comparison trained on a GPU machine is copied back, or committed. The copy's
    checkpoints are found by name inside it, and the report names them relative to itself, not by
    the absolute paths Lightning recorded where they were trained."""
    out, _ = compared
    copy = Path(shutil.copytree(out, tmp_path / "copied"))
    stopped = copy / "runs" / "gru-seed7"  # trained there, not yet evaluated
    (stopped / "fit.json").unlink()
    (stopped / "result.json").unlink()
    result = sentikit("compare", "-c", str(tiny_config), "--cells", "rnn", "gru", "--out", str(copy), "--decay-reviews", "8", cwd=tiny_config.parent)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    original = {run["cell"]: run for run in report(out)["runs"]}
    for run in report(copy)["runs"]:
        assert not Path(run["best_checkpoint"]).is_absolute()
        assert run["best_checkpoint"] == original[run["cell"]]["best_checkpoint"]
        assert (copy / run["best_checkpoint"]).resolve().is_relative_to(copy.resolve())
        assert run["validation"]["acc"] == original[run["cell"]]["validation"]["acc"]


def test_another_config_in_the_same_folder_is_refused(compared, tiny_config):
    out, _ = compared
    result = sentikit("compare", "-c", str(tiny_config), "--out", str(out), "--trainer.max_epochs", "3", cwd=tiny_config.parent)
    assert result.returncode == 2
    assert "other configs or options" in result.stderr and "--force" in result.stderr
    assert (out / "runs" / "rnn-seed7" / "result.json").is_file()  # nothing was lost


@pytest.mark.parametrize("option", ["--model.cell", "--seed_everything", "--ckpt_path"])
def test_options_that_compare_sets_per_run_are_refused(option, tiny_config, tmp_path):
    result = sentikit("compare", "-c", str(tiny_config), "--out", str(tmp_path), option, "1", cwd=tmp_path)
    assert result.returncode == 2
    assert f"{option} is set by sentikit compare" in result.stderr


def test_data_without_validation_is_refused_before_any_training(small_sst2, tmp_path):
    files = f"{{train: {small_sst2['train']}, test: {small_sst2['test']}}}"
    config = ["-c", "configs/quickstart.yaml", "--data.data_files", files, "--data.validation_fraction", "0"]
    result = sentikit("compare", *config, "--out", str(tmp_path / "report"), cwd=Path(__file__).parents[1])
    assert result.returncode == 2
    assert "validation_fraction is 0" in result.stderr
    assert not (tmp_path / "report" / "runs").exists()


def test_terminating_compare_stops_the_training_it_started(tmp_path):
    """`kill <pid of sentikit compare>` (what a job scheduler sends) must not leave its `sentikit fit`
    running unseen on the machine: the signal is passed on, and the exit code says how the child ended."""
    training = "import os, time; print(os.getpid(), flush=True); time.sleep(120)"
    parent = (
        "import sys\n"
        "from sentikit.compare.fits import run_child\n"
        f"print('child exited with', run_child([sys.executable, '-c', {training!r}], env={{}}), flush=True)\n"
    )
    compare = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True)
    child = int(compare.stdout.readline())
    try:
        compare.terminate()
        output, _ = compare.communicate(timeout=30)
        assert f"child exited with -{signal.SIGTERM.value}" in output
        assert not Path(f"/proc/{child}").exists()  # reaped by compare, not orphaned
    finally:
        if Path(f"/proc/{child}").exists():
            os.kill(child, signal.SIGKILL)


def test_a_comparison_over_several_sources_reports_accuracy_per_source(small_sst2, tmp_path):
    """With `data.sources` the report gives each source's validation accuracy, per cell, and the epochs'
    logs keep `val_acc/<source>`; each source's figure is the accuracy over that source's reviews."""
    halves = {}
    for name, rows in (("movies", slice(0, 1000)), ("more", slice(1000, 2000))):
        frame = pq.read_table(small_sst2["train"]).to_pandas()[rows]
        if name == "more":  # another column name and label spelling
            frame = frame.rename(columns={"text": "review", "label": "stars"})
            frame["stars"] = frame["stars"].map({0: "bad", 1: "good"})
        frame.to_parquet(tmp_path / f"{name}.parquet", index=False)
        halves[name] = str(tmp_path / f"{name}.parquet")
    config = {
        "seed_everything": 7,
        "trainer": {"max_epochs": 1, "enable_progress_bar": False, "enable_model_summary": False},
        "model": {"embedding_dim": 8, "hidden_size": 8},
        "data": {
            "label_names": ["negative", "positive"],
            "sources": [
                {"name": "movies", "data_files": {"train": halves["movies"]}},
                {"name": "more", "data_files": {"train": halves["more"]}, "text_column": "review", "label_column": "stars",
                 "labels": {"bad": "negative", "good": "positive"}},
            ],
            "max_length": 40,
            "batch_size": 64,
        },
    }  # fmt: skip
    (tmp_path / "sources.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "report"
    result = sentikit("compare", "-c", "sources.yaml", "--cells", "gru", "--out", str(out), "--decay-reviews", "4", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    (run,) = report(out)["runs"]
    by_source = run["validation"]["acc_by_source"]
    assert set(by_source) == {"movies", "more"}
    # 100 validation reviews carved from each source: the overall accuracy is the mean of the two.
    assert run["validation"]["acc"] == pytest.approx((by_source["movies"] + by_source["more"]) / 2)
    assert {"val_acc/movies", "val_acc/more"} <= set(run["epochs"][-1])
    assert "## Accuracy per source" in (out / "report.md").read_text()
    assert "| GRU |" in (out / "report.md").read_text().split("## Accuracy per source")[1]
