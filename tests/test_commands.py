"""The command table: every subcommand is listed once, has its own help, and a typo names the commands."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from sentikit.cli import COMMANDS, main
from sentikit.training.progress import EpochLines, epoch_line

ALL = ["fit", "validate", "test", "predict", "explain", "export", "predict-file", "compare"]


def run(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as stop:
        main(list(args))
    out, err = capsys.readouterr()
    return stop.value.code or 0, out, err


def test_sentikit_help_lists_every_command_with_a_line_each(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    listed = [line.split()[0] for line in out.split("commands:")[1].strip().splitlines()]
    assert listed == ALL == list(COMMANDS)
    assert all(len(line.split()) > 2 for line in out.split("commands:")[1].strip().splitlines())  # each has a summary


def test_sentikit_alone_prints_the_commands_and_fails(capsys):
    code, _, err = run(capsys)
    assert code == 2 and "predict-file" in err


@pytest.mark.parametrize("command", ALL)
def test_every_command_has_its_own_help(capsys, command):
    code, out, _ = run(capsys, command, "--help")
    assert code == 0
    assert "usage:" in out.lower() and ("--config" in out or f"sentikit {command}" in out)


@pytest.mark.parametrize(("typo", "suggestion"), [("fitt", "fit"), ("explian", "explain"), ("predict_file", "predict-file")])
def test_a_mistyped_command_names_the_closest_and_all_commands(capsys, typo, suggestion):
    code, out, err = run(capsys, typo)
    assert code == 2 and out == ""
    assert err.count("\n") == 1  # one line, no traceback
    assert f"unknown command '{typo}' (did you mean '{suggestion}'?)" in err
    assert ", ".join(ALL) in err


def fake_trainer(**metrics) -> SimpleNamespace:
    return SimpleNamespace(callback_metrics=metrics, max_epochs=3, current_epoch=1, global_step=1054)


def test_an_epoch_line_carries_epoch_step_loss_accuracy_speed_and_time():
    line = epoch_line(fake_trainer(train_loss=0.31214, val_acc=0.85321), tokens_per_sec=12345.4, elapsed=3725.0)
    assert line == "epoch 2/3 step 1054 train_loss 0.3121 val_acc 0.8532 tokens/s 12,345 elapsed 1:02:05"


def test_an_epoch_line_over_several_sources_adds_each_sources_accuracy():
    metrics = {"train_loss": 0.31214, "val_acc": 0.85321, "val_acc/sst2": 0.86123, "val_acc/imdb": 0.849}
    line = epoch_line(fake_trainer(**metrics), tokens_per_sec=12345.4, elapsed=3725.0)
    assert " val_acc 0.8532 (sst2 0.8612, imdb 0.8490) tokens/s " in line


def test_an_epoch_without_validation_shows_a_dash_for_its_accuracy():
    assert " val_acc - " in epoch_line(fake_trainer(train_loss=0.5), tokens_per_sec=10.0, elapsed=1.0)


def test_epoch_lines_print_only_when_stdout_is_not_a_terminal(monkeypatch):
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    assert not EpochLines().enabled and EpochLines(always=True).enabled
    monkeypatch.setattr("sys.stdout.isatty", lambda: False)
    assert EpochLines().enabled
