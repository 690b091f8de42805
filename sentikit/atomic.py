"""Files written whole or not at all: under a temporary name beside the target, flushed to disk, then
renamed into place. A rename is atomic on one file system, so a kill or a full disk mid-write leaves
the previous file (or none), never half of one. Checkpoints do the same in `SentikitCheckpoint`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_text(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, path)


def write_json(path: Path, content: Any) -> None:
    """Write `content` as indented JSON to `path` atomically."""
    write_text(path, json.dumps(content, indent=2) + "\n")
