"""PNG figures: confusion heatmaps, sweep histories, accuracy-vs-parameter scatters, parameter importances.

matplotlib runs on the non-interactive Agg backend (no display needed; safe in sweep workers). Every figure
is rendered to a temporary file next to the target and renamed onto it, then closed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (backend must be chosen first)
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from aesweep.io import write_bytes_atomic  # noqa: E402


def save_figure(fig: Figure, path: str | os.PathLike) -> None:
    """Write ``fig`` as a PNG to ``path`` atomically and close it."""
    try:
        fig.tight_layout()
        write_bytes_atomic(path, lambda handle: fig.savefig(handle, format="png", dpi=110))
    finally:
        plt.close(fig)


def save_confusion_png(confusion: np.ndarray, path: str | os.PathLike, title: str | None = None,
                       classes: Sequence[str] | None = None) -> None:
    """Heatmap of a cluster x class count matrix, each cell annotated with its count.

    Rows are bottleneck units / clusters (as many as the matrix has), columns the true classes, named by
    `classes` (the run record's) where given, else numbered.
    """
    counts = np.asarray(confusion)
    if counts.ndim != 2:
        raise ValueError(f"confusion must be a 2-d cluster x class matrix, got shape {counts.shape}")
    n_clusters, n_classes = counts.shape
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * n_classes, 1.0 + 0.45 * n_clusters))
    image = ax.imshow(counts, cmap="Blues", aspect="auto")
    fig.colorbar(image, ax=ax, label="images")
    ax.set_xlabel("class (true label)")
    ax.set_ylabel("bottleneck unit / cluster")
    if classes is not None and len(classes) == n_classes:
        words = any(len(name) > 2 for name in classes)  # "Ankle boot" needs turning, "7" does not
        ax.set_xticks(range(n_classes), labels=list(classes), rotation=45 if words else 0,
                      ha="right" if words else "center")
    else:
        ax.set_xticks(range(n_classes))
    ax.set_yticks(range(n_clusters))
    # Dark text on light cells, white on dark ones, so every count stays readable.
    threshold = counts.max() / 2 if counts.size and counts.max() > 0 else 0
    fontsize = 8 if max(n_clusters, n_classes) <= 12 else 6
    for row in range(n_clusters):
        for col in range(n_classes):
            value = counts[row, col]
            ax.text(col, row, f"{value:g}", ha="center", va="center", fontsize=fontsize,
                    color="white" if value > threshold else "black")
    if title:
        ax.set_title(title)
    save_figure(fig, path)


def save_history_png(numbers: Sequence[int], values: Sequence[float], path: str | os.PathLike,
                     metric: str, maximize: bool = True, title: str | None = None) -> None:
    """Optimization history: each trial's value as a dot, the best-so-far as a step line."""
    numbers = np.asarray(numbers, dtype=float)
    values = np.asarray(values, dtype=float)
    order = np.argsort(numbers)
    numbers, values = numbers[order], values[order]
    finite = np.where(np.isfinite(values), values, -np.inf if maximize else np.inf)
    best = np.maximum.accumulate(finite) if maximize else np.minimum.accumulate(finite)
    best = np.where(np.isfinite(best), best, np.nan)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.plot(numbers, values, "o", color="tab:blue", alpha=0.6, label="trial")
    ax.step(numbers, best, where="post", color="tab:red", label="best so far")
    ax.set_xlabel("trial number")
    ax.set_ylabel(metric)
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    ax.set_title(title or f"optimization history ({metric})")
    save_figure(fig, path)


def save_param_scatter_png(param_values: Sequence[float], metric_values: Sequence[float],
                           path: str | os.PathLike, param: str, metric: str, log_x: bool = False) -> None:
    """One dot per trial: ``metric`` against the numeric parameter ``param``."""
    fig, ax = plt.subplots(figsize=(5.6, 4.0))
    ax.plot(np.asarray(param_values, dtype=float), np.asarray(metric_values, dtype=float), "o", alpha=0.7)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(param)
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.set_title(f"{metric} vs {param}")
    save_figure(fig, path)


def save_importances_png(importances: Mapping[str, float], path: str | os.PathLike,
                         title: str | None = None) -> None:
    """Horizontal bars, most important parameter on top."""
    names = list(importances)[::-1]
    values = [importances[name] for name in names]
    fig, ax = plt.subplots(figsize=(6.4, 1.2 + 0.4 * max(len(names), 1)))
    ax.barh(names, values, color="tab:green")
    ax.set_xlabel("importance (fraction of variance, fANOVA)")
    ax.set_title(title or "parameter importances")
    save_figure(fig, path)
