"""Evaluation results people would rather see than read: a table and a bar chart by mode."""

from __future__ import annotations

from pathlib import Path

from .models import EvaluationRun


def table(runs: list[EvaluationRun], measures: list[str], reference: dict[str, dict[str, float]] | None = None) -> str:
    """A Markdown table: one row per run, one column per measure (and the reference beside it)."""
    reference = reference or {}
    header = [
        "configuration",
        *measures,
        *(f"{m} (reference)" for m in measures if any(m in r for r in reference.values())),
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" + "---:|" * (len(header) - 1)]
    for run in runs:
        values = [f"{run.metrics.get(m, 0.0):.3f}" for m in measures]
        ref = reference.get(run.label, {})
        values += [f"{ref[m]:.3f}" if m in ref else "" for m in measures if any(m in r for r in reference.values())]
        lines.append("| " + " | ".join([run.label, *values]) + " |")
    return "\n".join(lines)


def plot(runs: list[EvaluationRun], measures: list[str], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    import numpy as np

    labels = [run.label.replace(" + ", "\n+ ") for run in runs]  # long labels on two lines
    positions = np.arange(len(labels))
    width = 0.8 / len(measures)
    figure, axes = plt.subplots(figsize=(max(6, 1.6 * len(labels)), 4))
    for index, measure in enumerate(measures):
        values = [run.metrics.get(measure, 0.0) for run in runs]
        bars = axes.bar(positions + index * width - 0.4 + width / 2, values, width, label=measure)
        axes.bar_label(bars, fmt="%.3f", fontsize=7)
    axes.set_xticks(positions, labels)
    axes.set_ylim(0, 1)
    axes.set_ylabel("score")
    axes.set_title(title)
    axes.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
