"""The `sentikit` command end to end, in subprocesses, as a user runs it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow

FAST = ["--trainer.limit_train_batches", "20"]


def sentikit(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "sentikit", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("quickstart")
    result = sentikit("fit", "-c", "configs/quickstart.yaml", "--trainer.default_root_dir", str(root), *FAST)
    assert result.returncode == 0, result.stderr[-3000:]
    return root, result


def test_fit_leaves_best_and_last_checkpoints_and_the_tokenizer(quickstart_run):
    root, result = quickstart_run
    names = {p.name for p in root.rglob("*")}
    assert {"best.ckpt", "last.ckpt", "tokenizer.json"} <= names
    best = next(root.rglob("best.ckpt"))
    assert f"--ckpt_path {best}" in result.stdout  # the next command is printed


def test_validate_prints_the_metrics_of_the_checkpoint(quickstart_run):
    root, _ = quickstart_run
    best = next(root.rglob("best.ckpt"))
    result = sentikit("validate", "-c", "configs/quickstart.yaml", "--ckpt_path", str(best), "--trainer.default_root_dir", str(root))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "val_acc" in result.stdout and "val_f1" in result.stdout


def test_test_reuses_the_checkpoint_s_tokenizer_even_if_the_config_says_otherwise(quickstart_run):
    root, _ = quickstart_run
    best = next(root.rglob("best.ckpt"))
    # A different vocabulary size would train a different tokenizer (and a mis-sized embedding).
    result = sentikit("test", "-c", "configs/quickstart.yaml", "--data.vocab_size", "300", "--ckpt_path", str(best), "--trainer.default_root_dir", str(root))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test_acc" in result.stdout


def test_ddp_on_two_cpu_processes_trains(tmp_path):
    result = sentikit(
        "fit", "-c", "configs/quickstart.yaml", "--trainer.default_root_dir", str(tmp_path),
        "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp", *FAST,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert next(tmp_path.rglob("best.ckpt"))


def test_print_config_shows_the_merged_configuration():
    result = sentikit("fit", "-c", "configs/sst2-gru.yaml", "--model.cell", "lstm", "--print_config")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "cell: lstm" in result.stdout and "train: data/sst2/train.parquet" in result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model.cell", "lstmm"], "Expected a typing.Literal['rnn', 'lstm', 'gru']. Got value: lstmm"),
        (["--model.hidden_size", "0"], "hidden_size must be at least 1, got 0"),
        (["--data.text_column", "review"], "has no column 'review'; its columns are ['text', 'label']"),
        (["--data.label_names", "[negative]"], "a classifier needs at least 2 classes, got ['negative']"),
        (["--data.label_column", "text"], "is not one of the 2 classes ['negative', 'positive']"),
        (["--data.data_files", "{train: data/nowhere.parquet}"], "data file for split 'train' not found: data/nowhere.parquet"),
        (["--data.max_length", "0"], "max_length must be at least 1"),
        (["--trainer.enable_progress_bar", "false"], "found `RichProgressBar` in callbacks list"),
    ],
)
def test_bad_configs_fail_with_one_clear_message_and_no_traceback(tmp_path, args, message):
    result = sentikit("fit", "-c", "configs/quickstart.yaml", "--trainer.default_root_dir", str(tmp_path), *args)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_checkpoint_is_named(tmp_path):
    result = sentikit("test", "-c", "configs/quickstart.yaml", "--ckpt_path", str(tmp_path / "gone.ckpt"))
    assert result.returncode == 2
    assert "checkpoint not found" in result.stderr and "Traceback" not in result.stderr
