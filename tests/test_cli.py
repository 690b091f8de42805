"""The `sentikit` command end to end, in subprocesses, as a user runs it."""

import os
import subprocess
import sys

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
