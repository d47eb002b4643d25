"""Benchmark figures: prediction overlays, training-loss curves, IoU bars (PNG, matplotlib Agg)."""

from __future__ import annotations

from typing import IO, TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from .evaluate import overlay_order  # noqa: E402

if TYPE_CHECKING:
    from .harness import Cell, RunOutcome

TRUTH_RGB = (0.1, 0.9, 0.2)
PREDICTION_RGB = (1.0, 0.25, 0.1)


def _tint(image: np.ndarray, mask: np.ndarray, rgb: tuple[float, float, float], alpha: float = 0.45) -> np.ndarray:
    """Grayscale uint8 (H, W) -> RGB float with ``mask`` pixels blended towards ``rgb``."""
    out = np.repeat(image[..., None].astype(np.float32) / 255.0, 3, axis=2)
    out[mask] = (1 - alpha) * out[mask] + alpha * np.asarray(rgb, dtype=np.float32)
    return out


def _outline(ax: plt.Axes, mask: np.ndarray, rgb: tuple[float, float, float]) -> None:
    if mask.any():
        ax.contour(mask.astype(float), levels=[0.5], colors=[rgb], linewidths=1.0)


def draw_overlays(handle: IO[bytes], cell: Cell, outcomes: list[RunOutcome]) -> None:
    """Rows: test images (those with lesions first); columns: ground truth, then each model.

    Ground truth is tinted green; a model's predicted lesion area is tinted red with the
    ground truth outlined in green on top, titled with that image's IoU.
    """
    test = cell.dataset["test"]
    order = overlay_order([p["has_lesion"] for p in outcomes[0].result["per_image"]])
    columns = 1 + len(outcomes)
    fig, axes = plt.subplots(len(order), columns, figsize=(2.6 * columns, 2.6 * len(order) + 0.6), squeeze=False)
    for row, index in enumerate(order):
        example = test[index]
        image = np.asarray(example["image"].convert("L"))
        truth = np.asarray(example["mask"].convert("L")) > 0
        axes[row, 0].imshow(_tint(image, truth, TRUTH_RGB))
        axes[row, 0].set_title(f"{example['image_id']}\nground truth", fontsize=8)
        for column, outcome in enumerate(outcomes, start=1):
            ax = axes[row, column]
            ax.imshow(_tint(image, outcome.lesion_areas[index], PREDICTION_RGB))
            _outline(ax, truth, TRUTH_RGB)
            ax.set_title(f"{outcome.result['model']}\nIoU {outcome.result['per_image'][index]['iou']:.2f}", fontsize=8)
    for ax in axes.flat:
        ax.set_axis_off()
    fig.suptitle(f"{cell.training_dataset} | {cell.split} | aug {'y' if cell.augment else 'n'}: "
                 "green ground truth, red prediction", fontsize=9)
    fig.tight_layout()
    fig.savefig(handle, format="png", dpi=110)
    plt.close(fig)


def _cell_label(row: dict) -> str:
    return f"{row['training_dataset']}\n{row['split']} aug {'y' if row['augment'] else 'n'}"


def draw_loss_curves(handle: IO[bytes], runs: list[dict]) -> None:
    """Mean training loss per epoch, one panel per cell, one line per model and seed."""
    labels = list(dict.fromkeys(_cell_label(r) for r in runs))
    models = list(dict.fromkeys(r["model"] for r in runs))
    colours = {m: plt.cm.tab10(i) for i, m in enumerate(models)}
    fig, axes = plt.subplots(1, len(labels), figsize=(4 * len(labels), 3.4), squeeze=False)
    for ax, label in zip(axes[0], labels):
        for run in (r for r in runs if _cell_label(r) == label):
            epochs = np.arange(1, len(run["train_loss"]) + 1)
            ax.plot(epochs, run["train_loss"], marker="o", color=colours[run["model"]],
                    alpha=1.0 if run["seed"] == 0 else 0.4, label=run["model"] if run["seed"] == 0 else None)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_yscale("log")  # Mask R-CNN sums five losses: its scale differs from the U-Net's
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("mean training loss")
    several_seeds = any(run["seed"] > 0 for run in runs)
    axes[0, 0].legend(fontsize=8, title="faded: seeds > 0" if several_seeds else None, title_fontsize=7)
    fig.tight_layout()
    fig.savefig(handle, format="png", dpi=110)
    plt.close(fig)


def draw_iou_bars(handle: IO[bytes], summary: list[dict]) -> None:
    """Mean IoU per cell and model; error bars are the std over test images."""
    labels = list(dict.fromkeys(_cell_label(r) for r in summary))
    models = list(dict.fromkeys(r["model"] for r in summary))
    width = 0.8 / len(models)
    fig, ax = plt.subplots(figsize=(max(4.5, 1.6 * len(labels) * len(models) ** 0.5), 3.8))
    for k, model in enumerate(models):
        rows = {_cell_label(r): r for r in summary if r["model"] == model}
        x = np.arange(len(labels)) + (k - (len(models) - 1) / 2) * width
        means = [rows[label]["iou_mean"] if label in rows else np.nan for label in labels]
        stds = [rows[label]["iou_std_images"] if label in rows else np.nan for label in labels]
        bars = ax.bar(x, means, width, yerr=stds, capsize=3, label=model, color=plt.cm.tab10(k))
        ax.bar_label(bars, fmt="%.2f", fontsize=7, label_type="center", color="white")  # clear of error bars
    ax.set_xticks(np.arange(len(labels)), labels, fontsize=8)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("IoU (mean ± std over test images)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(handle, format="png", dpi=110)
    plt.close(fig)
