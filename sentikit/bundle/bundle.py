"""Bundles: a trained classifier as a folder that predicts and explains without sentikit.

    bundles/sst2-gru/
      model.pt        TorchScript (`torch.jit.script` of `PortableClassifier`): forward, explain, memory
      tokenizer.json  the Hugging Face `tokenizers` tokenizer it was trained with
      meta.json       format version, classes, cell and sizes, max length, training data and metrics,
                      versions, and the sha256 of the two files above

`sentikit export --format exported` writes `model.pt2` instead: a `torch.export` program with forward only,
for right-padded ids of exactly `meta["input_length"]` tokens (`bundle/exported.py` says why and how):

    program = torch.export.load("bundles/sst2-gru/model.pt2").module()
    logits = program(token_ids, lengths)               # token_ids padded to input_length

`sentikit export --format onnx` writes `model.onnx`: an ONNX graph with forward only, for right-padded ids
of any length, that runs in ONNX Runtime without torch (`bundle/onnx_graph.py`; docs/bundles.md has a
complete example):

    session = onnxruntime.InferenceSession("bundles/sst2-gru/model.onnx")
    logits = session.run(["logits"], {"token_ids": token_ids, "lengths": lengths})[0]   # int64 numpy arrays

The same folder zipped (`.zip`) loads too. Loading parses `meta.json` as data, refuses a newer format
version, checks both hashes and only then hands `model.pt` to `torch.jit.load` (or `model.onnx` to
ONNX Runtime), which runs no pickle code. A user without sentikit needs only torch and tokenizers:

    model = torch.jit.load("bundles/sst2-gru/model.pt")
    logits = model(token_ids, lengths)                 # (batch, classes)
    readings = model.explain(token_ids, lengths)       # gate traces, contributions, retention
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from tokenizers import Tokenizer

from sentikit.atomic import sync_folder, write_bytes, write_json
from sentikit.errors import ConfigError
from sentikit.gates.portable import PortableClassifier
from sentikit.data.tokenizer import PAD_ID, encode_texts, right_pad, tokenizer_from_string

if TYPE_CHECKING:
    from sentikit.nn.classifier import SentimentClassifier

FORMAT_VERSION = 1
ModelFormat = Literal["torchscript", "exported", "onnx"]
MODEL_FILES: dict[str, str] = {"torchscript": "model.pt", "exported": "model.pt2", "onnx": "model.onnx"}
# How messages name a bundle of each format; all but TorchScript have a forward pass only (no explanations).
FORMAT_NAMES: dict[str, str] = {"torchscript": "a TorchScript bundle", "exported": "an exported bundle", "onnx": "an ONNX bundle"}


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _sentikit_version() -> str:
    try:
        return version("sentikit")
    except PackageNotFoundError:  # running from a source tree that was not installed
        return "unknown"


def checkpoint_summary(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint says about its own training: the epoch and step, and the monitored metric of the
    checkpoint callback (for `best.ckpt`, this checkpoint's own validation score)."""
    summary: dict[str, Any] = {"epoch": checkpoint.get("epoch"), "global_step": checkpoint.get("global_step")}
    for key, state in (checkpoint.get("callbacks") or {}).items():
        if key.startswith("SentikitCheckpoint") or key.startswith("ModelCheckpoint"):
            score = state.get("best_model_score")
            if state.get("monitor") and score is not None:
                summary[state["monitor"]] = float(score)
    return summary


def export_bundle(
    ckpt: str | Path,
    out: str | Path,
    force: bool = False,
    validation: dict[str, Any] | None = None,
    model_format: ModelFormat = "torchscript",
    max_length: int | None = None,
) -> Path:
    """Export a sentikit checkpoint to a bundle folder `out` (written under a temporary name and renamed
    into place, so a failed export leaves nothing half-made). `validation` (from `evaluate_bundle`) is
    recorded in `meta.json` when given. `model_format`: `torchscript` (`model.pt`: forward and explain),
    `exported` (`model.pt2`, a `torch.export` program: forward only, fixed input length) or `onnx`
    (`model.onnx`, for ONNX Runtime: forward only, any length; needs the `onnx` extra).
    `max_length`: the most tokens of a review the bundle reads; by default the checkpoint's (its training
    run's `data.eval_max_length`). Returns the folder."""
    if model_format not in MODEL_FILES:
        raise ConfigError(f"unknown bundle format {model_format!r}; choose one of {list(MODEL_FILES)}")
    if max_length is not None and max_length < 1:
        raise ConfigError(f"max_length must be at least 1, got {max_length}")
    from sentikit.checkpoint import checkpoint_extras, read_checkpoint
    from sentikit.nn.classifier import classifier_from_checkpoint

    if model_format == "onnx":
        from sentikit.bundle.onnx_graph import runtime_versions

        runtime_versions()  # onnx and onnxruntime are installed, or one line says how, before any work
    out = Path(out)
    if out.exists() and not force:
        raise ConfigError(f"{out} already exists; pass --force to replace it")
    checkpoint = read_checkpoint(ckpt)
    loaded, extras = classifier_from_checkpoint(checkpoint, ckpt), checkpoint_extras(checkpoint, ckpt)
    length = max_length or loaded.max_length
    format_meta: dict[str, Any] = {}  # what this format adds to meta.json
    versions = {"sentikit": _sentikit_version(), "torch": torch.__version__}
    if model_format == "exported":
        from sentikit.bundle.exported import export_program

        model_bytes = export_program(loaded.model.eval(), length)
        format_meta["input_length"] = length
    elif model_format == "onnx":
        from sentikit.bundle.onnx_graph import OPSET, export_onnx, runtime_versions

        model_bytes = export_onnx(loaded.model)
        format_meta["onnx_opset"] = OPSET
        versions.update(runtime_versions())
    else:
        portable = PortableClassifier.from_classifier(loaded.model)
        with warnings.catch_warnings():
            # torch 2.13 warns on every `torch.jit.script` call that TorchScript is deprecated; `export` says
            # it once, in the command's output and docs/bundles.md, instead of from deep inside torch.
            warnings.filterwarnings("ignore", message=".*torch.jit.script.*deprecated.*")
            scripted = torch.jit.script(portable)
        buffer = io.BytesIO()
        torch.jit.save(scripted, buffer)
        model_bytes = buffer.getvalue()
    model_file = MODEL_FILES[model_format]
    tokenizer_bytes = loaded.tokenizer.to_str().encode("utf-8")
    hparams = loaded.model.hparams
    meta = {
        "format": "sentikit-bundle",
        "format_version": FORMAT_VERSION,
        "model_format": model_format,
        "label_names": list(loaded.model.label_names),
        "cell": hparams["cell"],
        "embedding_dim": hparams["embedding_dim"],
        "hidden_size": hparams["hidden_size"],
        "num_layers": hparams["num_layers"],
        "bidirectional": hparams["bidirectional"],
        "pooling": hparams["pooling"],
        "vocab_size": hparams["vocab_size"],
        "num_parameters": loaded.model.num_parameters,
        "max_length": length,
        **format_meta,
        "pad_id": PAD_ID,
        "training": {"data": extras.get("source"), "checkpoint": Path(ckpt).name, **checkpoint_summary(checkpoint)},
        "validation": validation,
        "versions": versions,
        "exported": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "sha256": {model_file: sha256(model_bytes), "tokenizer.json": sha256(tokenizer_bytes)},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; a bundle is meant to be shared
    try:
        write_bytes(staging / model_file, model_bytes)
        write_bytes(staging / "tokenizer.json", tokenizer_bytes)
        write_meta(staging, meta)
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        staging.rename(out)
        sync_folder(out.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


@dataclass
class Bundle:
    """A loaded bundle: the scripted model (eval mode, CPU; for an exported bundle, its program behind
    `exported.PaddedProgram`; for an ONNX bundle, its ONNX Runtime session behind `onnx_graph.OnnxSession`:
    both forward only), its tokenizer and its `meta.json`."""

    model: Any  # torch.jit.ScriptModule, exported.PaddedProgram or onnx_graph.OnnxSession
    tokenizer: Tokenizer
    meta: dict[str, Any]

    @property
    def max_length(self) -> int:
        return int(self.meta["max_length"])

    @property
    def label_names(self) -> list[str]:
        return list(self.meta["label_names"])

    @property
    def model_format(self) -> str:
        return self.meta.get("model_format", "torchscript")

    @property
    def forward_only(self) -> str | None:
        """Why this bundle cannot explain (`"an ONNX bundle (model.onnx, forward only)"`), or `None` when it can."""
        if self.model_format == "torchscript":
            return None
        return f"{FORMAT_NAMES[self.model_format]} ({MODEL_FILES[self.model_format]}, forward only)"

    def encode(self, texts: list[str], offsets: bool = False) -> tuple[torch.Tensor, torch.Tensor, list[Any]]:
        """Right-padded token ids `(batch, time)`, lengths `(batch,)` and the encodings, which carry word ids
        and character offsets only with `offsets`: `data.tokenizer.encode_texts` at the bundle's max length,
        the rule training read its text by (a text without any token reads as one `[UNK]`)."""
        ids, encodings = encode_texts(self.tokenizer, texts, self.max_length, offsets)
        token_ids, lengths = right_pad(ids)
        return token_ids, lengths, encodings

    def eager_classifier(self) -> "SentimentClassifier":
        """The bundle's weights in an eager `SentimentClassifier` (eval mode; TorchScript bundles only), built
        from `meta.json`: what the benchmarks measure the bundle against."""
        from sentikit.nn.classifier import SentimentClassifier

        m = self.meta
        model = SentimentClassifier(
            m["vocab_size"], m["label_names"], cell=m["cell"], embedding_dim=m["embedding_dim"],
            hidden_size=m["hidden_size"],
            num_layers=m["num_layers"], bidirectional=m["bidirectional"], pooling=m["pooling"],
        )
        PortableClassifier.from_classifier(model).load_state_dict(self.model.state_dict())  # shares the modules
        return model.eval()

    @torch.no_grad()
    def predict_proba(self, texts: list[str]) -> torch.Tensor:
        """`(len(texts), classes)` class probabilities."""
        token_ids, lengths, _ = self.encode(texts)
        return self.model(token_ids, lengths).softmax(-1)


def _read_members(path: Path) -> dict[str, bytes]:
    """The bundle's files by name, from a folder or a `.zip` (whose files may sit in one top folder)."""
    names = ("meta.json", "tokenizer.json", *MODEL_FILES.values())
    if path.is_dir():
        return {name: (path / name).read_bytes() for name in names if (path / name).is_file()}
    try:
        with zipfile.ZipFile(path) as archive:
            members = {Path(info.filename).name: info for info in archive.infolist() if not info.is_dir()}
            return {name: archive.read(members[name]) for name in names if name in members}
    except zipfile.BadZipFile:
        raise ConfigError(f"{path} is neither a bundle folder nor a .zip archive") from None


def load_bundle(path: str | Path) -> Bundle:
    """Load and verify a bundle folder or `.zip` (see the module docstring for what is checked)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"bundle not found: {path}")
    files = _read_members(path)
    if "meta.json" not in files:
        raise ConfigError(f"{path} is not a sentikit bundle: it has no meta.json")
    try:
        meta = json.loads(files["meta.json"].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"{path}/meta.json is not valid JSON: {error}") from None
    if not isinstance(meta, dict) or meta.get("format") != "sentikit-bundle":
        raise ConfigError(f"{path}/meta.json does not describe a sentikit bundle")
    found = meta.get("format_version")
    if not isinstance(found, int) or found > FORMAT_VERSION:
        raise ConfigError(
            f"{path} is a bundle of format version {found}, newer than this sentikit reads ({FORMAT_VERSION}); upgrade sentikit"
        )
    model_format = meta.get("model_format", "torchscript")
    if model_format not in MODEL_FILES:
        raise ConfigError(f"{path}/meta.json names an unknown model format {model_format!r}; this sentikit reads {list(MODEL_FILES)}")
    model_file = MODEL_FILES[model_format]
    for name in (model_file, "tokenizer.json"):
        if name not in files:
            raise ConfigError(f"{path} is missing {name}")
        expected = (meta.get("sha256") or {}).get(name)
        if sha256(files[name]) != expected:
            raise ConfigError(
                f"{path}/{name} does not match the sha256 recorded in meta.json: it was changed or corrupted after export"
            )
    tokenizer = tokenizer_from_string(files["tokenizer.json"].decode("utf-8"), f"{path}/tokenizer.json")
    if model_format == "onnx":
        from sentikit.bundle.onnx_graph import OnnxSession

        return Bundle(OnnxSession(files[model_file], f"{path}/{model_file}"), tokenizer, meta)
    if model_format == "exported":
        from sentikit.bundle.exported import PaddedProgram

        try:
            program = torch.export.load(io.BytesIO(files[model_file])).module()
        except Exception as error:  # noqa: BLE001 - torch raises several types for an unreadable program
            raise ConfigError(f"{path}/{model_file} is not a torch.export program torch {torch.__version__} can load: {str(error).splitlines()[0]}") from None
        return Bundle(PaddedProgram(program, int(meta["input_length"]), int(meta.get("pad_id", PAD_ID))), tokenizer, meta)
    try:
        model = torch.jit.load(io.BytesIO(files[model_file]), map_location="cpu")
    except RuntimeError as error:
        raise ConfigError(f"{path}/{model_file} is not a TorchScript module torch {torch.__version__} can load: {str(error).splitlines()[0]}") from None
    return Bundle(model.eval(), tokenizer, meta)


def write_meta(folder: str | Path, meta: dict[str, Any]) -> None:
    """Rewrite a bundle folder's `meta.json` atomically (its hashes cover the other two files only)."""
    write_json(Path(folder) / "meta.json", meta)



def evaluate_bundle(bundle: Bundle, texts: list[str], labels: list[int], batch_size: int = 256) -> dict[str, Any]:
    """Accuracy of a bundle on labelled texts (label ids in the bundle's class order)."""
    correct = 0
    for start in range(0, len(texts), batch_size):
        predicted = bundle.predict_proba(texts[start : start + batch_size]).argmax(-1)
        correct += int((predicted == torch.tensor(labels[start : start + batch_size])).sum())
    return {"examples": len(texts), "accuracy": correct / len(texts)}
