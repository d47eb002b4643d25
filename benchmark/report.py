"""results.json, results.md and the figures of a benchmark, written atomically into ``out_dir``."""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from chexmix_dataset.atomic import atomic_file, write_json

from .metrics import mean_std

if TYPE_CHECKING:
    from .harness import Cell, RunOutcome

EMPTY_GROUND_TRUTH_RULE = ("A test image without ground-truth lesions scores IoU = Dice = 1 when no lesion is "
                           "predicted on it and 0 otherwise; the rule is the same for every model.")
PACKAGES = ("chexmix", "torch", "torchvision", "segmentation-models-pytorch", "numpy", "pycocotools", "datasets")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def _mean_or_none(values: list[float | None]) -> float | None:
    return None if not values or any(v is None for v in values) else float(np.mean(values))


def summarize(runs: list[dict]) -> list[dict]:
    """One row per (cell, model): means over seeds of the per-run scores and their spreads.

    ``iou_std_images`` is the mean over seeds of the per-run std over test images;
    ``iou_std_seeds`` is the std over seeds of the per-run means (0 with one seed). Dice alike.
    """
    keys = ("training_dataset", "config", "split", "augment", "model")
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        groups.setdefault(tuple(run[k] for k in keys), []).append(run)
    rows = []
    for key, group in groups.items():
        row = dict(zip(keys, key), seeds=len(group), epochs=group[0]["epochs"])
        for metric in ("iou", "dice"):
            row[f"{metric}_mean"], row[f"{metric}_std_seeds"] = mean_std([r[f"{metric}_mean"] for r in group])
            row[f"{metric}_std_images"] = float(np.mean([r[f"{metric}_std"] for r in group]))
        row["ap"] = _mean_or_none([r["ap"] for r in group])
        row["ap50"] = _mean_or_none([r["ap50"] for r in group])
        rows.append(row)
    return rows


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def results_markdown(summary: list[dict], versions: dict[str, str]) -> str:
    """The paper-style table with a note on how every number was computed."""
    several_seeds = any(row["seeds"] > 1 for row in summary)
    header = ["Training dataset", "Split", "Aug", "Model", "IoU ± std", "Dice", "AP50"]
    if several_seeds:
        header.append("IoU ± std over seeds")
    lines = ["# CheXMix lesion segmentation benchmark", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in summary:
        cells = [row["training_dataset"], row["split"], "y" if row["augment"] else "n", row["model"],
                 f"{row['iou_mean']:.3f} ± {row['iou_std_images']:.3f}",
                 f"{row['dice_mean']:.3f} ± {row['dice_std_images']:.3f}", _number(row["ap50"])]
        if several_seeds:
            cells.append(f"{row['iou_mean']:.3f} ± {row['iou_std_seeds']:.3f} ({row['seeds']} seeds)")
        lines.append("| " + " | ".join(cells) + " |")
    epochs = sorted({row["epochs"] for row in summary})
    lines += [
        "",
        "IoU and Dice: per test image, predicted lesion area (Mask R-CNN instances scoring >= 0.5; "
        "U-Net probability > 0.5) against the union of ground-truth lesions at the image's own size; "
        "mean ± standard deviation over test images (averaged over seeds). "
        "AP50: COCO mask AP at IoU 0.5 (pycocotools; U-Net instances are connected components scored "
        "by mean probability), averaged over seeds.",
        "",
        f"Empty ground truth: {EMPTY_GROUND_TRUTH_RULE}",
        "",
        f"Epochs: {', '.join(map(str, epochs))}. Versions: "
        + ", ".join(f"{name} {version}" for name, version in versions.items()) + ".",
        "",
    ]
    return "\n".join(lines)


def write_outputs(out_dir: Path, outcomes: list[tuple[Cell, RunOutcome]], options: dict) -> dict:
    """Write results.json, results.md and figures/; returns what results.json holds."""
    from .figures import draw_iou_bars, draw_loss_curves, draw_overlays

    versions = package_versions()
    runs = [outcome.result for _, outcome in outcomes]
    summary = summarize(runs)
    results = {"versions": versions, "options": options, "empty_ground_truth_rule": EMPTY_GROUND_TRUTH_RULE,
               "summary": summary, "runs": runs}
    figures = out_dir / "figures"
    cells = list(dict.fromkeys(cell for cell, _ in outcomes))
    for cell in cells:
        first_seed = [o for c, o in outcomes if c == cell and o.result["seed"] == 0]
        with atomic_file(figures / f"overlays_{cell.slug}.png", "wb") as handle:
            draw_overlays(handle, cell, first_seed)
    with atomic_file(figures / "loss_curves.png", "wb") as handle:
        draw_loss_curves(handle, runs)
    with atomic_file(figures / "iou_by_config.png", "wb") as handle:
        draw_iou_bars(handle, summary)
    write_json(out_dir / "results.json", results)
    with atomic_file(out_dir / "results.md", "w") as handle:
        handle.write(results_markdown(summary, versions))
    return results
