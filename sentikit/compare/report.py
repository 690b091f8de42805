"""The report of `sentikit compare`: per-cell summaries over seeds, a Markdown table, a JSON file, plots.

`build_report` turns the runs' results (`compare.evaluate`) into plain data; `write_report` writes
`report.json` (every figure: the runs and the summaries), `report.md` (the table and the plots) and three
PNG files. Means and sample standard deviations are over seeds; a single seed has no spread ("±" left out).
"""

from __future__ import annotations

import math
import shlex
import statistics
from pathlib import Path
from typing import Any

from sentikit.atomic import atomic_open, write_json, write_text

# How far back the table reads the memory-decay curve: a sentence's length in SST-2, early in a review
# in IMDB. The full curve is in report.json and memory_decay.png.
DECAY_DISTANCE = 20
PLOTS = {
    "learning_curves": "learning_curves.png",
    "memory_decay": "memory_decay.png",
    "accuracy_by_length": "accuracy_by_length.png",
}
COLOURS = {"rnn": "#d62728", "lstm": "#1f77b4", "gru": "#2ca02c"}


def build_report(results: list[dict[str, Any]], setup: dict[str, Any], command: list[str]) -> dict[str, Any]:
    """`command`: the comparison's command line as a list of arguments (the report shows it to rerun)."""
    cells = list(dict.fromkeys(r["cell"] for r in results))
    summaries = {cell: summarize([r for r in results if r["cell"] == cell]) for cell in cells}
    return {"command": command, "setup": setup, "summary": summaries, "runs": results}


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One cell's figures: speeds and memory averaged over every epoch of every seed; scores as mean and
    spread over seeds."""
    epochs = [e for r in runs for e in r["epochs"]]

    def over_epochs(key: str) -> float | None:
        values = [e[key] for e in epochs if key in e]
        return statistics.fmean(values) if values else None

    def over_seeds(values: list[float | None]) -> dict[str, float] | None:
        values = [v for v in values if v is not None]
        if not values:
            return None
        return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0, "n": len(values)}

    peaks = [max((e["memory_peak_mb"] for e in r["epochs"] if "memory_peak_mb" in e), default=None) for r in runs]
    starts = [min((e["memory_start_mb"] for e in r["epochs"] if "memory_start_mb" in e), default=None) for r in runs]
    summary = {
        "seeds": [r["seed"] for r in runs],
        "parameters": runs[0]["parameters"],
        "epoch_seconds": over_epochs("train_seconds"),
        "train_tokens_per_sec": over_epochs("train_tokens_per_sec"),
        "inference_tokens_per_sec": over_seeds([r["inference_tokens_per_sec"] for r in runs]),
        "memory_peak_mb": over_seeds(peaks),
        "memory_start_mb": over_seeds(starts),
        "epochs_run": over_seeds([len(r["epochs"]) for r in runs]),
        "best_epoch": over_seeds([r["best_epoch"] for r in runs]),
        "memory_decay": _mean_curves([r["memory_decay"] for r in runs]),
        "accuracy_by_length": _mean_buckets([r["accuracy_by_length"] for r in runs]),
    }
    for split in ("validation", "test"):
        for metric in ("acc", "f1"):
            if all(split in r for r in runs):
                summary[f"{split}_{metric}"] = over_seeds([r[split][metric] for r in runs])
        if all("acc_by_source" in r.get(split, {}) for r in runs):
            names = runs[0][split]["acc_by_source"]
            summary[f"{split}_acc_by_source"] = {n: over_seeds([r[split]["acc_by_source"].get(n) for r in runs]) for n in names}
    curve = summary["memory_decay"]
    if len(curve) > DECAY_DISTANCE and curve[0] and curve[DECAY_DISTANCE] is not None:
        summary[f"memory_at_{DECAY_DISTANCE}"] = curve[DECAY_DISTANCE] / curve[0]
    return summary


def _mean_curves(curves: list[list[float | None]]) -> list[float | None]:
    longest = max(len(c) for c in curves)
    means = []
    for d in range(longest):
        values = [c[d] for c in curves if d < len(c) and c[d] is not None]
        means.append(statistics.fmean(values) if values else None)
    return means


def _mean_buckets(per_run: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    rows = []
    for bucket in zip(*per_run):
        accuracies = [b["acc"] for b in bucket if b["acc"] is not None]
        rows.append(
            {
                "tokens": bucket[0]["tokens"],
                "examples": bucket[0]["examples"],
                "acc": statistics.fmean(accuracies) if accuracies else None,
                "std": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
            }
        )
    return rows


# --- writing --------------------------------------------------------------------------------------


def write_report(report: dict[str, Any], out: Path) -> str:
    """Write report.json, the plots and report.md into `out`; return the Markdown table."""
    write_json(out / "report.json", report)
    plot_learning_curves(report, out / PLOTS["learning_curves"])
    plot_memory_decay(report, out / PLOTS["memory_decay"])
    plot_accuracy_by_length(report, out / PLOTS["accuracy_by_length"])
    table = markdown_table(report)
    write_text(out / "report.md", markdown_report(report, table))
    return table


def markdown_table(report: dict[str, Any]) -> str:
    setup = report["setup"]
    has_test = all("test_acc" in s for s in report["summary"].values())
    header = [
        "cell", "parameters", "s / epoch", "train tokens/s", "inference tokens/s", "peak memory MB",
        "val acc %", "val F1 %", *(["test acc %", "test F1 %"] if has_test else []), "epochs to best",
        f"memory {DECAY_DISTANCE} words back",
    ]  # fmt: skip
    rows = []
    for cell, s in report["summary"].items():
        rows.append(
            [
                cell.upper(),
                f"{s['parameters']:,}",
                _number(s["epoch_seconds"], 1),
                _number(s["train_tokens_per_sec"], 0),
                _number(s["inference_tokens_per_sec"] and s["inference_tokens_per_sec"]["mean"], 0),
                _number(s["memory_peak_mb"] and s["memory_peak_mb"]["mean"], 0),
                _spread(s.get("validation_acc")),
                _spread(s.get("validation_f1")),
                *([_spread(s.get("test_acc")), _spread(s.get("test_f1"))] if has_test else []),
                _epochs(s["best_epoch"]) + " of " + _epochs(s["epochs_run"]),
                _ratio(s.get(f"memory_at_{DECAY_DISTANCE}")),
            ]
        )
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    seeds = max(len(s["seeds"]) for s in report["summary"].values())
    lines.append("")
    lines.append(
        f"Scores: mean ± standard deviation over {seeds} seed{'s' if seeds > 1 else ''}, best checkpoint by validation accuracy. "
        f"Speeds: training batches only, real tokens; inference on {setup['length_split']} ({setup['evaluation_device']}, "
        f"{setup['threads']} thread{'s' if setup['threads'] > 1 else ''}). Peak memory: {_memory_kind(setup)}. Memory {DECAY_DISTANCE} words back: "
        f"mean ||d h_T / d x_t|| of the final forward state {DECAY_DISTANCE} tokens before the end, over the last token's."
    )
    return "\n".join(lines)


def markdown_report(report: dict[str, Any], table: str) -> str:
    setup = report["setup"]
    splits = ", ".join(f"{name} {count:,}" for name, count in setup["splits"].items())
    lines = [
        "# RNN vs LSTM vs GRU",
        "",
        f"`{shlex.join(report['command'])}`",
        "",
        f"Data: {splits} reviews; a shared tokenizer of {setup['vocabulary']:,} tokens. torch {setup['torch']}"
        + (f", GPU {setup['gpu']}" if setup.get("gpu") else ", CPU")
        + ".",
        "",
        table,
        "",
        "## Learning curves",
        "",
        f"![validation accuracy against training time and epoch]({PLOTS['learning_curves']})",
        "",
        "## Memory of early words",
        "",
        f"![mean gradient norm of the final state by distance from the end]({PLOTS['memory_decay']})",
        *_source_table(report),
        "",
        "## Accuracy by review length",
        "",
        f"![accuracy per length bucket]({PLOTS['accuracy_by_length']})",
        "",
        "| tokens | examples | " + " | ".join(report["summary"]) + " |",
        "|---|---:|" + "---:|" * len(report["summary"]),
    ]
    buckets = next(iter(report["summary"].values()))["accuracy_by_length"]
    for i, bucket in enumerate(buckets):
        accuracies = [s["accuracy_by_length"][i]["acc"] for s in report["summary"].values()]
        lines.append(f"| {bucket['tokens']} | {bucket['examples']:,} | " + " | ".join(_number(a and 100 * a, 2) for a in accuracies) + " |")
    return "\n".join(lines) + "\n"


def _source_table(report: dict[str, Any]) -> list[str]:
    """Accuracy per data source and split (runs over several `data.sources`), or nothing."""
    columns = [
        (split, name)
        for split in ("validation", "test")
        for name in next(iter(report["summary"].values())).get(f"{split}_acc_by_source", {})
    ]
    if not columns:
        return []
    lines = ["", "## Accuracy per source", "", "| cell | " + " | ".join(f"{name} {split} %" for split, name in columns) + " |"]
    lines.append("|---|" + "---:|" * len(columns))
    for cell, s in report["summary"].items():
        figures = [_spread(s.get(f"{split}_acc_by_source", {}).get(name)) for split, name in columns]
        lines.append(f"| {cell.upper()} | " + " | ".join(figures) + " |")
    return lines


def _memory_kind(setup: dict[str, Any]) -> str:
    if setup.get("gpu"):
        return "CUDA memory allocated by torch while training"
    return "resident memory of the training process while training (rank 0)"


def _number(value: float | None, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.{digits}f}"


def _spread(figure: dict[str, float] | None, scale: float = 100.0, digits: int = 2) -> str:
    if figure is None:
        return "n/a"
    text = f"{scale * figure['mean']:.{digits}f}"
    return text + (f" ± {scale * figure['std']:.{digits}f}" if figure["n"] > 1 else "")


def _epochs(figure: dict[str, float] | None) -> str:
    if figure is None:
        return "n/a"
    return f"{figure['mean']:.0f}" if figure["mean"] == int(figure["mean"]) else f"{figure['mean']:.1f}"


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1e}"



# --- plots ----------------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def plot_learning_curves(report: dict[str, Any], path: Path) -> None:
    """Validation accuracy after each epoch, against training time and against the epoch; one line per run."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    figure, (by_time, by_epoch) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    labelled = set()
    for run in report["runs"]:
        rows = [e for e in run["epochs"] if "val_acc" in e]
        if not rows:
            continue
        seconds = [e.get("train_seconds") for e in run["epochs"]]
        known = [s for s in seconds if s is not None]
        fill = statistics.fmean(known) if known else 0.0
        elapsed, total = {}, 0.0
        for e, s in zip(run["epochs"], seconds):
            total += s if s is not None else fill
            elapsed[e["epoch"]] = total / 60
        label = None if run["cell"] in labelled else run["cell"]
        labelled.add(run["cell"])
        style = dict(color=COLOURS.get(run["cell"]), marker="o", markersize=3, alpha=0.8, label=label)
        accuracy = [100 * e["val_acc"] for e in rows]
        by_time.plot([elapsed[e["epoch"]] for e in rows], accuracy, **style)
        by_epoch.plot([e["epoch"] for e in rows], accuracy, **style)
    by_time.set_xlabel("training time (minutes, validation excluded)")
    by_epoch.set_xlabel("epoch")
    by_epoch.xaxis.set_major_locator(MaxNLocator(integer=True))
    by_time.set_ylabel("validation accuracy (%)")
    for axes in (by_time, by_epoch):
        axes.grid(alpha=0.3)
    by_epoch.legend()
    figure.suptitle("Learning curves (one line per seed)")
    save_plot(figure, path)


def plot_memory_decay(report: dict[str, Any], path: Path) -> None:
    """Mean `||d h_T / d x_t||` by distance from the end, log scale, mean over seeds."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7, 4))
    for cell, summary in report["summary"].items():
        points = [(d, v) for d, v in enumerate(summary["memory_decay"]) if v is not None and v > 0]
        if points:
            axes.semilogy(*zip(*points), color=COLOURS.get(cell), label=cell)
    axes.set_xlabel("distance from the end of the review (tokens)")
    axes.set_ylabel("mean ||d h_T / d x_t||")
    axes.set_title("How much the final state still depends on each earlier word")
    axes.grid(alpha=0.3, which="both")
    axes.legend()
    save_plot(figure, path)


def plot_accuracy_by_length(report: dict[str, Any], path: Path) -> None:
    """Accuracy per review-length bucket, one bar per cell (mean over seeds, spread as error bars)."""
    plt = _pyplot()
    summaries = report["summary"]
    buckets = [b["tokens"] for b in next(iter(summaries.values()))["accuracy_by_length"]]
    width = 0.8 / len(summaries)
    figure, axes = plt.subplots(figsize=(7, 4))
    for i, (cell, summary) in enumerate(summaries.items()):
        rows = summary["accuracy_by_length"]
        axes.bar(
            [b + (i - (len(summaries) - 1) / 2) * width for b in range(len(buckets))],
            [100 * (r["acc"] or 0.0) for r in rows],
            width,
            yerr=[100 * r["std"] for r in rows],
            color=COLOURS.get(cell),
            label=cell,
        )
    axes.set_xticks(range(len(buckets)), [f"{b}\n({r['examples']:,})" for b, r in zip(buckets, rows)])
    axes.set_xlabel(f"review length in tokens ({report['setup']['length_split']} reviews per bucket)")
    axes.set_ylabel("accuracy (%)")
    low = min((100 * (r["acc"] or 100.0) for s in summaries.values() for r in s["accuracy_by_length"]), default=50.0)
    axes.set_ylim(max(0.0, low - 10), 100)
    axes.grid(alpha=0.3, axis="y")
    axes.legend()
    save_plot(figure, path)


def save_plot(figure, path: Path) -> None:
    """Write `figure` to `path` as PNG, atomically, and close it."""
    import matplotlib.pyplot as plt

    figure.tight_layout()
    try:
        with atomic_open(path, "wb") as out:
            figure.savefig(out, format="png", dpi=110)
    finally:
        plt.close(figure)
