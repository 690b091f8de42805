"""Files written whole or not at all: under `NAME.partial` beside the target, flushed and synced to
disk, then renamed into place, and the folder synced so that the rename itself survives a power cut.

A rename is atomic on one file system, so a kill or a full disk mid-write leaves the previous file (or
none), never half of one. The sync before the rename matters too: without it a crash soon after can
leave the new name pointing at a file whose bytes never reached the disk. Every file sentikit writes
goes through here; checkpoints are written by Lightning inside `training.callbacks.SentikitCheckpoint`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Literal

Mode = Literal["w", "wb", "a", "ab"]


def partial_path(path: str | os.PathLike) -> Path:
    """Where `path` is written before it is renamed into place: `path` with `.partial` appended."""
    path = Path(path)
    return path.with_name(path.name + ".partial")


@contextmanager
def atomic_open(path: str | os.PathLike, mode: Mode = "w", keep_partial: bool = False) -> Iterator[IO]:
    """Open `NAME.partial` for writing (text modes in UTF-8); when the block ends without an error, sync
    it to disk and rename it to `path`.

    When the block raises, the partial file is removed and `path` keeps its previous content, unless
    `keep_partial`: a streamed output that can be resumed (predict-file) keeps what it has written.
    The append modes continue a kept partial file."""
    if mode not in ("w", "wb", "a", "ab"):
        raise ValueError(f"atomic_open writes or appends, mode 'w', 'wb', 'a' or 'ab'; got {mode!r}")
    path = Path(path)
    partial = partial_path(path)
    try:
        with open(partial, mode, encoding=None if "b" in mode else "utf-8") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, path)
    except BaseException:
        if not keep_partial:
            partial.unlink(missing_ok=True)
        raise
    sync_folder(path.parent)


def sync_folder(folder: str | os.PathLike) -> None:
    """Sync a folder's entries to disk: on POSIX a rename is recorded in the folder, not in the file."""
    if os.name != "posix":  # elsewhere a folder cannot be opened for a sync
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_bytes(path: str | os.PathLike, content: bytes) -> None:
    """Write `content` to `path` atomically."""
    with atomic_open(path, "wb") as out:
        out.write(content)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    with atomic_open(path, "w") as out:
        out.write(text)


def write_json(path: str | os.PathLike, content: Any) -> None:
    """Write `content` as indented JSON to `path` atomically."""
    write_text(path, json.dumps(content, indent=2) + "\n")
