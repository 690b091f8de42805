"""Every command README.md shows is run here, as written, so the README cannot drift from the code.

The commands run in a scratch folder that links the repository's `configs/` and `data/`, so outputs
(`runs/`, `predictions.jsonl`) land there and the README's relative paths hold. Training commands get
small budgets appended (`--trainer.max_epochs 1 --trainer.limit_train_batches 3 ...`); nothing else is
changed. A command added to the README fails `test_every_readme_command_is_run_by_a_test` until a test
here runs it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO

README = REPO / "README.md"
BUDGET = ["--trainer.limit_train_batches", "3", "--trainer.limit_val_batches", "2", "--trainer.limit_test_batches", "2"]


def readme_commands() -> list[str]:
    """The lines of README.md's ```bash blocks."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip() and not line.startswith("#")]


COMMANDS = readme_commands()
INSTALL = 'pip install torch==2.13.0 -e ".[dev]"'
APP = "python app.py"
EXPLAIN = next((c for c in COMMANDS if c.startswith("sentikit explain --bundle data/bundles/english")), "")
ZH_EXPLAIN = next((c for c in COMMANDS if c.startswith("sentikit explain --bundle data/bundles/zh-shopping")), "")
ZH_FIT = "sentikit fit -c configs/zh-shopping-gru.yaml"
OWN_REVIEWS = next((c for c in COMMANDS if "my-reviews.csv" in c), "")
PREDICT_FILE = next((c for c in COMMANDS if c.startswith("sentikit predict-file")), "")
FIT = "sentikit fit -c configs/sst2-gru.yaml"
TEST = next((c for c in COMMANDS if c.startswith("sentikit test")), "")
EXPORT_ONNX = next((c for c in COMMANDS if c.startswith("sentikit export") and "--format onnx" in c), "")
RESUME = "sentikit fit -c configs/sst2-gru.yaml --ckpt_path last"
FAST_TESTS = 'python -m pytest -m "not slow"'
ALL_TESTS = "python -m pytest"
RUN_HERE = {INSTALL, APP, EXPLAIN, PREDICT_FILE, FIT, TEST, EXPORT_ONNX, RESUME, FAST_TESTS, ALL_TESTS, ZH_EXPLAIN, ZH_FIT, OWN_REVIEWS}


def test_every_readme_command_is_run_by_a_test():
    assert set(COMMANDS) == RUN_HERE


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("readme")
    for name in ("configs", "data", "app.py"):
        (folder / name).symlink_to(REPO / name)
    return folder


def run(command: str, cwd: Path, *extra: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """`command` as a user types it (`sentikit ...` through this interpreter), plus `extra` options."""
    argv = shlex.split(command)
    if argv[0] == "sentikit":
        argv = [sys.executable, "-m", "sentikit", *argv[1:]]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([*argv, *extra], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def test_the_install_command_is_the_one_ci_runs():
    ci = (REPO / ".ci" / "run").read_text()
    # CI adds the optional ONNX extra, so that the ONNX bundle tests run there too.
    assert "pip install --quiet torch==2.13.0" in ci and 'pip install --quiet -e ".[dev,onnx]"' in ci


@pytest.mark.slow
def test_the_test_commands_select_the_fast_part_and_everything():
    """The two test commands collect tests, and the first leaves the slow ones out (CI runs the second)."""
    ci = (REPO / ".ci" / "run").read_text()
    assert ci.rstrip().splitlines()[-1].startswith(ALL_TESTS)
    fast = run(FAST_TESTS, REPO, "--collect-only", "-q", timeout=300)
    everything = run(ALL_TESTS, REPO, "--collect-only", "-q", timeout=300)
    count = lambda result: int(re.search(r"(\d+)(?:/\d+)? tests? (?:collected|selected)", result.stdout).group(1))  # noqa: E731
    assert 0 < count(fast) < count(everything), fast.stdout[-500:]


@pytest.mark.slow
def test_explain_prints_the_cereal_review_with_its_label(scratch):
    result = run(EXPLAIN, scratch)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "positive" in result.stdout and "amazing" in result.stdout


@pytest.mark.slow
def test_predict_file_writes_a_line_per_review_with_its_top_words(scratch):
    result = run(PREDICT_FILE, scratch)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in (scratch / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 300  # the Amazon kitchen reviews held out for validation
    assert all(row["label"] in ("negative", "positive") and len(row["top_words"]) <= 3 for row in rows)


@pytest.fixture(scope="module")
def main_job(scratch) -> subprocess.CompletedProcess:
    result = run(FIT, scratch, "--trainer.max_epochs", "1", *BUDGET)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_the_main_job_prints_a_line_per_epoch_and_the_readme_s_test_command(main_job, scratch):
    assert re.search(r"^epoch 1/1 step 3 train_loss \S+ val_acc 0\.\d{4} tokens/s [\d,]+ elapsed \d+:\d\d:\d\d$", main_job.stdout, re.M)
    assert f"evaluate it with: {TEST}" in main_job.stdout  # the README shows what fit prints


@pytest.mark.slow
def test_the_readme_s_test_command_scores_the_best_checkpoint(main_job, scratch):
    result = run(TEST, scratch, "--trainer.limit_test_batches", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test_acc" in result.stdout


@pytest.mark.slow
def test_the_readme_s_onnx_export_writes_a_bundle_of_the_best_checkpoint(main_job, scratch):
    pytest.importorskip("onnxruntime", reason='the onnx extra is not installed (pip install -e ".[onnx]")')
    result = run(EXPORT_ONNX, scratch)  # the README's example, which reads this bundle, runs in test_onnx.py
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((scratch / "bundles" / "sst2-gru-onnx" / "meta.json").read_text())["model_format"] == "onnx"


@pytest.mark.slow
def test_the_resume_command_finds_the_last_checkpoint_and_trains_on(main_job, scratch):
    result = run(RESUME, scratch, "--trainer.max_epochs", "2", *BUDGET)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming from" in result.stderr and "last.ckpt" in result.stderr
    assert re.search(r"^epoch 2/2 step 6 ", result.stdout, re.M)


@pytest.mark.slow
def test_the_app_serves_its_page(scratch):
    from sentikit.app.load import running_app

    with running_app([], scratch / "app.log") as (url, _):
        with urllib.request.urlopen(url, timeout=30) as page:
            assert page.status == 200 and "sentikit" in page.read().decode("utf-8", "replace").lower()


@pytest.mark.slow
def test_the_chinese_explain_command_reads_the_review_character_by_character(scratch):
    result = run(ZH_EXPLAIN + " --json", scratch)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["label"] == "positive"
    assert [w["word"] for w in report["words"]][:4] == ["这", "家", "店", "的"]


@pytest.mark.slow
def test_the_chinese_main_job_trains(scratch):
    result = run(ZH_FIT, scratch, "--trainer.max_epochs", "1", *BUDGET)
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"^epoch 1/1 step 3 ", result.stdout, re.M)
    assert "evaluate it with: sentikit test -c configs/zh-shopping-gru.yaml --ckpt_path runs/zh-shopping-gru/" in result.stdout


JAPANESE_REVIEWS = [
    ("このシリアルは本当に美味しい！また買います。", "positive"),
    ("サクサクで甘さもちょうどいい。最高です。", "positive"),
    ("店員さんがとても親切で、料理も素晴らしかった。", "positive"),
    ("配送が早くて、包装も丁寧でした。満足です。", "positive"),
    ("音がきれいで、使いやすいイヤホンです。おすすめ。", "positive"),
    ("味がひどくて、二度と買いません。", "negative"),
    ("届いた商品が壊れていました。最悪です。", "negative"),
    ("サービスが悪くて、とても残念でした。", "negative"),
    ("高いのに品質が悪い。がっかりしました。", "negative"),
    ("説明と違う商品が届いた。返品したい。", "negative"),
]


@pytest.mark.slow
def test_your_own_japanese_reviews_train_from_a_csv_with_text_and_label_columns(scratch):
    rows = "\n".join(f"{text},{label}" for text, label in JAPANESE_REVIEWS * 4)
    (scratch / "my-reviews.csv").write_text(f"text,label\n{rows}\n", encoding="utf-8")
    result = run(OWN_REVIEWS, scratch, "--trainer.max_epochs", "1", "--data.batch_size", "8", *BUDGET)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "validation: carved 4 examples out of train" in result.stderr
    best = next((scratch / "runs" / "my-reviews").rglob("best.ckpt"))
    explained = run(f"sentikit explain --ckpt {best} --json --text 二度と買いません", scratch)
    assert explained.returncode == 0, explained.stderr[-2000:]
    assert [w["word"] for w in json.loads(explained.stdout)["words"]] == list("二度と買いません")
