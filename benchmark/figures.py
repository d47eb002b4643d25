"""Benchmark figures: prediction overlays, training-loss curves, IoU bars and the replacement curve
(PNG, matplotlib Agg)."""

from __future__ import annotations

import textwrap
from typing import IO

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402

from benchmark.evaluate import overlay_order  # noqa: E402
from benchmark.grid import Cell, RunOutcome  # noqa: E402
from benchmark.results import replaced_fraction  # noqa: E402

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
    # Wrapped to the figure's width (about 12 characters of 9 pt per inch): with one model the
    # figure is only two images wide.
    setting = f"{cell.training_dataset} | {cell.split} | aug {'y' if cell.augment else 'n'}"
    lines = textwrap.wrap(setting, width=int(12 * 2.6 * columns)) + ["green: ground truth, red: prediction"]
    fig.suptitle("\n".join(lines), fontsize=9)
    fig.tight_layout()
    fig.savefig(handle, format="png", dpi=110)
    plt.close(fig)


def _cell_label(row: dict) -> str:
    return f"{row['training_dataset']}\n{row['split']} aug {'y' if row['augment'] else 'n'}"


def _minor_log_label(value: float, _position: int) -> str:
    """Plain numbers at 2 and 5 times a power of ten; the other minor ticks stay unlabelled (crowded)."""
    leading = value / 10 ** np.floor(np.log10(value)) if value > 0 else 0
    return f"{value:g}" if np.isclose(leading, 2) or np.isclose(leading, 5) else ""


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
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        last_epoch = max((len(r["train_loss"]) for r in runs if _cell_label(r) == label), default=1)
        ax.set_xlim(0.5, last_epoch + 0.5)  # a 1-epoch run is one point: keep the axis in whole epochs
        losses = [loss for r in runs if _cell_label(r) == label for loss in r["train_loss"]]
        if min(losses) > 0 and max(losses) / min(losses) > 5:
            # Mask R-CNN sums five losses: its scale differs from the U-Net's.
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
            ax.yaxis.set_minor_formatter(FuncFormatter(_minor_log_label))
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("mean training loss")
    several_seeds = any(run["seed"] > 0 for run in runs)
    axes[0, 0].legend(fontsize=8, title="faded: seeds > 0" if several_seeds else None, title_fontsize=7)
    fig.tight_layout()
    fig.savefig(handle, format="png", dpi=110)
    plt.close(fig)


def _error_below_above(means: list[float], intervals: list[list[float | None]]) -> np.ndarray:
    """(2, N) distances from each mean down to and up to its CI bound (0 where the CI is undefined)."""
    below = [m - lo if lo is not None else 0.0 for m, (lo, _) in zip(means, intervals)]
    above = [hi - m if hi is not None else 0.0 for m, (_, hi) in zip(means, intervals)]
    return np.nan_to_num(np.array([below, above]))


def draw_iou_bars(handle: IO[bytes], summary: list[dict]) -> None:
    """Mean IoU per cell and model with its 95 % CI (patient bootstrap) as error bars.

    The value label sits above the error bar in black, so a bar of height 0 keeps its label.
    """
    labels = list(dict.fromkeys(_cell_label(r) for r in summary))
    models = list(dict.fromkeys(r["model"] for r in summary))
    width = 0.8 / len(models)
    fig, ax = plt.subplots(figsize=(max(4.5, 1.6 * len(labels) * len(models) ** 0.5), 3.8))
    for k, model in enumerate(models):
        rows = {_cell_label(r): r for r in summary if r["model"] == model}
        x = np.arange(len(labels)) + (k - (len(models) - 1) / 2) * width
        means = [rows[label]["iou_mean"] if label in rows else np.nan for label in labels]
        intervals = [rows[label]["iou_ci"] if label in rows else [None, None] for label in labels]
        errors = _error_below_above(means, intervals)
        ax.bar(x, means, width, yerr=errors, capsize=3, label=model, color=plt.cm.tab10(k))
        for x_k, mean, above in zip(x, means, errors[1]):
            if not np.isnan(mean):
                ax.annotate(f"{mean:.2f}", (x_k, mean + above), xytext=(0, 2), textcoords="offset points",
                            ha="center", va="bottom", fontsize=7, color="black")
    ax.set_xticks(np.arange(len(labels)), labels, fontsize=8)
    ax.set_ylim(0, 1.15)
    ax.set_ylabel("test IoU (mean, 95 % CI over patients)")
    # Above the axes, where no bar (at most IoU 1 plus its label) can hide under it.
    ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(models), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(handle, format="png", dpi=110)
    plt.close(fig)


#: the paper's mix: 50 of 60 training CXRs replaced by CT projections.
PAPER_FRACTION = 5 / 6


def draw_replacement_curve(handle: IO[bytes], rows: list[dict]) -> None:
    """Test IoU against the share of training CXRs replaced by CT projections (as built), one
    line per model and setting, with the 95 % CI over test patients as a band."""
    settings = list(dict.fromkeys((r["split"], r["augment"], r["model"]) for r in rows))
    fig, ax = plt.subplots(figsize=(5.6, 4.0))
    for k, setting in enumerate(settings):
        line = sorted((r for r in rows if (r["split"], r["augment"], r["model"]) == setting),
                      key=lambda r: (replaced_fraction(r) is None, replaced_fraction(r) or 0.0))
        x = np.array([replaced_fraction(r) if replaced_fraction(r) is not None else r["ct_fraction"] for r in line])
        mean = np.array([r["iou_mean"] for r in line])
        low = np.array([np.nan if r["iou_ci"][0] is None else r["iou_ci"][0] for r in line])
        high = np.array([np.nan if r["iou_ci"][1] is None else r["iou_ci"][1] for r in line])
        colour = plt.cm.tab10(k)
        split, augment, model = setting
        label = model if len({s[:2] for s in settings}) == 1 else f"{model}, {split} aug {'y' if augment else 'n'}"
        ax.fill_between(x, low, high, color=colour, alpha=0.2, linewidth=0)
        ax.plot(x, mean, marker="o", color=colour, label=label)
    ax.axvline(PAPER_FRACTION, color="grey", linestyle=":", linewidth=1)
    ax.annotate("paper's mix (5/6)", (PAPER_FRACTION, 1.02), xycoords=("data", "data"), ha="right",
                va="bottom", fontsize=7, color="grey", xytext=(-3, 0), textcoords="offset points")
    ax.set_xlim(-0.03, 1.03)
    ax.set_ylim(0, 1.08)
    ax.set_xlabel("fraction of training CXRs replaced by CT projections")
    ax.set_ylabel("test IoU (mean over images)")
    splits = sorted({s[0] for s in settings})
    ax.set_title(f"Replacement curve ({', '.join(splits)}; band: 95 % CI over test patients)", fontsize=9, pad=18)
    ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=min(len(settings), 3), frameon=False)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(handle, format="png", dpi=110)
    plt.close(fig)
