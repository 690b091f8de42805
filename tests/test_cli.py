"""The `sentikit` command end to end, in subprocesses, as a user runs it."""

import os
import subprocess
import sys

import pytest
import torch

from conftest import REPO

pytestmark = pytest.mark.slow

FAST = ["--trainer.limit_train_batches", "20"]


def sentikit(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "sentikit", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("quickstart")
    result = sentikit("fit", "-c", "configs/quickstart.yaml", "--trainer.default_root_dir", str(root), "--data.eval_max_length", "100", *FAST)
    assert result.returncode == 0, result.stderr[-3000:]
    return root, result


def test_fit_leaves_best_and_last_checkpoints_and_the_tokenizer(quickstart_run):
    root, result = quickstart_run
    names = {p.name for p in root.rglob("*")}
    assert {"best.ckpt", "last.ckpt", "tokenizer.json"} <= names
    best = next(root.rglob("best.ckpt"))
    assert f"--ckpt_path {best}" in result.stdout  # the next command is printed


def test_the_checkpoint_reads_new_text_up_to_eval_max_length(quickstart_run):
    from sentikit.checkpoint import DATA_STATE_KEY
    from sentikit.nn.classifier import load_classifier

    best = next(quickstart_run[0].rglob("best.ckpt"))
    assert load_classifier(best).max_length == 100  # what bundles, explain and the app read
    assert torch.load(best, map_location="cpu", weights_only=False)[DATA_STATE_KEY]["train_max_length"] == 64


def test_fit_without_validation_trains_every_epoch_and_keeps_the_last_weights(small_sst2, tmp_path):
    """`data.validation_fraction 0` on data without a validation split: all of train is trained on, no
    early stopping can cut the epochs short, and `last.ckpt` (not a `best.ckpt` chosen by nothing) is
    the checkpoint to evaluate."""
    files = f"{{train: {small_sst2['train']}, test: {small_sst2['test']}}}"
    common = ["-c", "configs/quickstart.yaml", "--data.data_files", files, "--data.validation_fraction", "0"]
    common += ["--trainer.default_root_dir", str(tmp_path)]
    result = sentikit("fit", *common, "--trainer.max_epochs", "2", "--trainer.callbacks", "[]", *FAST)
    assert result.returncode == 0, result.stderr[-3000:]
    names = {p.name for p in tmp_path.rglob("*.ckpt")}
    assert names == {"last.ckpt"}
    last = next(tmp_path.rglob("last.ckpt"))
    assert torch.load(last, map_location="cpu", weights_only=False)["epoch"] == 1  # both epochs ran
    assert f"--ckpt_path {last}" in result.stdout
    tested = sentikit("test", *common, "--ckpt_path", str(last))
    assert tested.returncode == 0, tested.stderr[-3000:]
    assert "test_acc" in tested.stdout
    validated = sentikit("validate", *common, "--ckpt_path", str(last))
    assert validated.returncode == 2 and "has no 'validation' split" in validated.stderr, validated.stderr[-2000:]


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


@pytest.mark.parametrize("config", sorted(p.name for p in (REPO / "configs").glob("*.yaml")))
def test_every_shipped_config_parses(config):
    """A typo in a config's key or value is an error at parse time, before any data is read."""
    layers = ["-c", "configs/imdb-lstm.yaml"] if config == "ddp.yaml" else []  # ddp.yaml is a layer
    result = sentikit("fit", *layers, "-c", f"configs/{config}", "--print_config")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "cell:" in result.stdout


def test_print_config_shows_the_merged_configuration():
    result = sentikit("fit", "-c", "configs/sst2-gru.yaml", "--model.cell", "lstm", "--print_config")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "cell: lstm" in result.stdout and "train: data/sst2/train.parquet" in result.stdout
