"""Training survives what happens to long runs: a kill -9 mid-epoch or mid-save, a diverging loss, an
unwritable or full output folder. Kills are real: `fault_probe.KillAt` sends the training process SIGKILL."""

import errno
import os
import signal
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import pytorch_lightning as pl
import torch

from conftest import REPO
from sentikit.training.callbacks import SentikitCheckpoint
from sentikit.checkpoint import read_checkpoint
from sentikit.cli import main

pytestmark = pytest.mark.slow

EPOCHS, STEPS = 2, 16  # 1,000 phrases in batches of 64


@pytest.fixture(scope="module")
def small_config(small_sst2, tmp_path_factory) -> str:
    """The SST-2 LSTM config (dropout, word dropout, EMA, cosine schedule: everything random or stateful)
    made small: 1,000 phrases, 32 units, two epochs."""
    folder = tmp_path_factory.mktemp("config")
    train = folder / "train.parquet"
    pq.write_table(pq.read_table(small_sst2["train"]).slice(0, 1000), train)
    path = folder / "small.yaml"
    path.write_text(
        f"trainer:\n  max_epochs: {EPOCHS}\n  enable_progress_bar: false\n  log_every_n_steps: 5\n  callbacks: []\n"
        "model:\n  embedding_dim: 32\n  hidden_size: 32\n"
        f"data:\n  data_files: {{train: {train}, validation: {small_sst2['validation']}}}\n"
    )
    return str(path)


def fit(config: str, root: Path, *args: str, fault: str | None = None) -> subprocess.CompletedProcess:
    """`sentikit fit` in its own process, with a `fault_probe.KillAt` callback when `fault` is given."""
    command = [sys.executable, "-m", "sentikit", "fit", "-c", "configs/sst2-lstm.yaml", "-c", config, "--trainer.default_root_dir", str(root)]
    if fault:
        command += ["--trainer.callbacks+=fault_probe.KillAt", *fault.split()]
    env = dict(os.environ, PYTHONWARNINGS="ignore", PYTHONPATH=str(REPO / "tests" / "helpers"))
    return subprocess.run([*command, *args], cwd=REPO, capture_output=True, text=True, timeout=600, env=env)


def checkpoints(root: Path) -> Path:
    (folder,) = {p.parent for p in root.rglob("last.ckpt")}
    return folder


@pytest.fixture(scope="module")
def uninterrupted(small_config, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("uninterrupted")
    result = fit(small_config, root)
    assert result.returncode == 0, result.stderr[-3000:]
    return checkpoints(root)


def assert_same_training_state(resumed: Path, reference: Path) -> None:
    """The final checkpoints agree: averaged and current weights, optimiser moments, the best score and
    which epoch was best, and the tokenizer."""
    a, b = read_checkpoint(resumed / "last.ckpt"), read_checkpoint(reference / "last.ckpt")
    assert (a["epoch"], a["global_step"]) == (b["epoch"], b["global_step"]) == (EPOCHS - 1, STEPS * EPOCHS)
    for key in ("state_dict", "current_model_state"):
        for name, value in b[key].items():
            torch.testing.assert_close(a[key][name], value, rtol=0, atol=1e-6, msg=f"{key}: {name}")
    for moment in ("exp_avg", "exp_avg_sq"):
        for index, state in b["optimizer_states"][0]["state"].items():
            torch.testing.assert_close(a["optimizer_states"][0]["state"][index][moment], state[moment], rtol=0, atol=1e-6)
    (key,) = [k for k in b["callbacks"] if k.startswith("SentikitCheckpoint")]
    assert a["callbacks"][key]["best_model_score"] == b["callbacks"][key]["best_model_score"]
    assert read_checkpoint(resumed / "best.ckpt")["epoch"] == read_checkpoint(reference / "best.ckpt")["epoch"]
    assert a["SentimentDataModule"]["tokenizer"] == b["SentimentDataModule"]["tokenizer"]


def test_a_run_killed_mid_epoch_resumes_from_last_to_the_same_final_state(small_config, uninterrupted, tmp_path):
    killed = fit(small_config, tmp_path, fault=f"--trainer.callbacks.step {STEPS + 5}")  # in the second epoch
    assert killed.returncode == -signal.SIGKILL
    assert read_checkpoint(checkpoints(tmp_path) / "last.ckpt")["global_step"] == STEPS  # the first epoch's end

    # The resumed run must read the tokenizer from the checkpoint: a different vocabulary size in the
    # config would train a different one (and fail to load the embedding) if it were retrained.
    resumed = fit(small_config, tmp_path, "--ckpt_path", "last", "--data.vocab_size", "500")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stderr and "tokenizer: read" in resumed.stderr
    assert_same_training_state(checkpoints(tmp_path), uninterrupted)


def test_a_kill_during_a_checkpoint_save_leaves_the_previous_checkpoint_whole(small_config, uninterrupted, tmp_path):
    killed = fit(small_config, tmp_path, fault=f"--trainer.callbacks.step {STEPS + 1} --trainer.callbacks.during_save true")  # the last save
    assert killed.returncode == -signal.SIGKILL
    folder = checkpoints(tmp_path)
    assert list(folder.glob("*.partial"))  # the half-written file is there, under its temporary name
    assert read_checkpoint(folder / "last.ckpt")["global_step"] == STEPS

    resumed = fit(small_config, tmp_path, "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_training_state(folder, uninterrupted)


def test_resuming_with_no_last_checkpoint_trains_from_the_start(small_config, tmp_path):
    result = fit(small_config, tmp_path, "--ckpt_path", "last", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"no last checkpoint under {tmp_path}: training from the start" in result.stderr


def test_a_checkpoint_folder_moved_before_resuming_keeps_its_best(tmp_path):
    """A run copied off the machine that trained it (or renamed) resumes with its best checkpoint still
    the one to beat. Lightning alone keeps the record only in the folder it was saved in: elsewhere the
    next epoch, however bad, would replace `best.ckpt`."""
    trained_in, moved_to = tmp_path / "gpu-machine" / "checkpoints", tmp_path / "here" / "checkpoints"
    moved_to.mkdir(parents=True)
    for name in ("best.ckpt", "last.ckpt"):
        (moved_to / name).write_bytes(b"")
    best = torch.tensor(0.84)
    callback = SentikitCheckpoint(dirpath=moved_to, monitor="val_acc", mode="max", filename="best", save_last=True)
    callback.load_state_dict({
        "dirpath": str(trained_in), "monitor": "val_acc", "best_model_score": best,
        "best_model_path": str(trained_in / "best.ckpt"), "kth_best_model_path": str(trained_in / "best.ckpt"),
        "kth_value": best, "best_k_models": {str(trained_in / "best.ckpt"): best}, "last_model_path": str(trained_in / "last.ckpt"),
    })  # fmt: skip
    assert callback.best_model_score == best
    assert callback.best_model_path == str(moved_to / "best.ckpt")
    assert callback.best_k_models == {str(moved_to / "best.ckpt"): best}
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    assert not callback.check_monitor_top_k(trainer, torch.tensor(0.80))  # a worse epoch leaves best.ckpt alone
    assert callback.check_monitor_top_k(trainer, torch.tensor(0.86))


# In-process: the failures below happen before or instead of training, so no process of their own is needed.


def run_fit(capsys, config: str, root: Path, *args: str) -> str:
    """`sentikit fit` in this process; returns its error line (it must exit with status 2)."""
    with pytest.MonkeyPatch.context() as patch, pytest.raises(SystemExit) as exit_info:
        patch.setattr(sys, "argv", ["sentikit"])  # LightningCLI warns when it also sees pytest's arguments
        main(["fit", "-c", str(REPO / "configs/sst2-lstm.yaml"), "-c", config, "--trainer.default_root_dir", str(root), *args])
    assert exit_info.value.code == 2
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("sentikit: error:")]
    return line


def test_a_diverging_loss_stops_with_the_step_and_the_cause_and_saves_no_checkpoint(capsys, small_config, small_sst2, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    data = f"{{train: {small_sst2['train']}, validation: {small_sst2['validation']}}}"  # 2,000 phrases: NaN by step 30
    error = run_fit(capsys, small_config, tmp_path, "--model.learning_rate", "1e3", "--data.data_files", data)
    assert "training stopped at step" in error and "the loss is nan" in error
    assert "The likely cause is the learning rate (1000)" in error
    assert not list(tmp_path.rglob("*.ckpt"))  # it diverged in the first epoch: nothing was saved


def test_an_output_folder_that_cannot_be_created_fails_before_anything_runs(capsys, small_config, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    (tmp_path / "a-file").write_text("")
    error = run_fit(capsys, small_config, tmp_path / "a-file" / "runs")
    assert error == f"sentikit: error: cannot write into the output folder (trainer.default_root_dir) {tmp_path}/a-file/runs: Not a directory"


def test_a_full_disk_fails_before_training_starts(capsys, small_config, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr("sentikit.training.callbacks.shutil.disk_usage", lambda path: usage(10**9, 10**9 - 2**20, 2**20))
    error = run_fit(capsys, small_config, tmp_path)
    assert "has 1.0 MB free, but checkpoints of this model need about" in error
    assert not list(tmp_path.rglob("metrics.csv"))  # no epoch ran


def test_a_disk_that_fills_up_during_a_save_keeps_the_previous_checkpoint(capsys, small_config, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    from pytorch_lightning.strategies import Strategy

    save = Strategy.save_checkpoint
    calls = []

    def fill_up(self, checkpoint, filepath, storage_options=None):
        calls.append(filepath)
        if len(calls) <= 2:  # the first epoch's best and last
            return save(self, checkpoint, filepath, storage_options)
        Path(filepath).write_bytes(b"half a checkpoint")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Strategy, "save_checkpoint", fill_up)
    error = run_fit(capsys, small_config, tmp_path)
    assert "could not write the checkpoint" in error and "(the previous one is kept): No space left on device" in error
    folder = checkpoints(tmp_path)
    assert read_checkpoint(folder / "last.ckpt")["global_step"] == STEPS
    assert not list(folder.glob("*.partial"))
