"""Shared fixtures: small slices of the SST-2 copy in data/, written as local files."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[1]
SST2 = REPO / "data" / "sst2"

# Keep the Hugging Face caches of a test run away from the user's.
os.environ.setdefault("HF_DATASETS_CACHE", str(Path(os.environ.get("TMPDIR", "/tmp")) / "sentikit-test-hf-cache"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def small_sst2(tmp_path_factory) -> dict[str, str]:
    """2,000 training phrases, 200 validation and 200 test sentences, as parquet files."""
    folder = tmp_path_factory.mktemp("sst2-small")
    files = {}
    for split, rows in (("train", 2000), ("validation", 200), ("test", 200)):
        table = pq.read_table(SST2 / f"{split}.parquet").slice(0, rows)
        files[split] = str(folder / f"{split}.parquet")
        pq.write_table(table, files[split])
    return files


def write_table(path: Path, rows: list[dict]) -> str:
    """Write rows as csv, jsonl or parquet, chosen by the file's extension."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path)
    return str(path)


def sentikit_in_process(argv: list[str], monkeypatch) -> int:
    """The exit status of `sentikit ARGV`, run in this process from the repository root."""
    import sys

    from sentikit.cli import main

    monkeypatch.chdir(REPO)
    monkeypatch.setattr(sys, "argv", ["sentikit"])  # LightningCLI warns when it also sees pytest's arguments
    try:
        main(argv)
    except SystemExit as exit_:
        return exit_.code
    return 0
