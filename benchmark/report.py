"""results.json, results.md and the figures of a benchmark, written atomically into ``out_dir``."""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path

import numpy as np

from benchmark.grid import Cell, RunOutcome
from benchmark.results import ROW_KEYS, replaced_fraction, sweep_rows
from benchmark.stats import DEFAULT_RESAMPLES, paired_comparison, seed_spread, split_scores
from chexmix_dataset.atomic import atomic_file, write_json

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


def seed_averaged_images(group: list[dict]) -> list[dict]:
    """Per test image (in test order): patient_id, has_lesion and the mean over the group's seeds
    of iou and dice; intersection_px and union_px summed over seeds (for the pooled IoU)."""
    first = group[0]["per_image"]
    ids = [p["image_id"] for p in first]
    for run in group[1:]:
        if [p["image_id"] for p in run["per_image"]] != ids:
            raise ValueError("runs of one table row were scored on different test images")
    images = []
    for k, image in enumerate(first):
        seeds = [run["per_image"][k] for run in group]
        images.append({"image_id": image["image_id"], "patient_id": image["patient_id"],
                       "has_lesion": image["has_lesion"],
                       **{m: float(np.mean([s[m] for s in seeds])) for m in ("iou", "dice")},
                       **{m: float(np.sum([s[m] for s in seeds])) for m in ("intersection_px", "union_px")}})
    return images


def summarize(runs: list[dict]) -> list[dict]:
    """One row per (cell, model), i.e. per run but for the seed.

    Over test images (uncertainty of the test set): ``iou_mean`` and ``iou_ci``, the mean and
    patient bootstrap 95 % CI of each image's IoU averaged over seeds; Dice and the
    lesion-positive IoU alike; ``pooled_iou`` sums intersections and unions over images and seeds.
    ``iou_std_images`` is the spread (population std) over test images of those scores.
    Over seeds (uncertainty of training): ``iou_seeds`` lists each seed's mean IoU,
    ``iou_mean_seeds`` / ``iou_std_seeds`` their mean and sample std (None with one seed).
    """
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        groups.setdefault(tuple(run[k] for k in ROW_KEYS), []).append(run)
    rows = []
    for key, group in groups.items():
        first = group[0]
        images = seed_averaged_images(group)
        scores = split_scores(images)
        row = dict(zip(ROW_KEYS, key), seeds=len(group), epochs=first["epochs"],
                   train_images=first["train_images"], train_ct_projections=first.get("train_ct_projections"),
                   test_images=len(images), **{k: v for k, v in scores.items() if not k.endswith("_std")})
        for metric in ("iou", "dice"):
            row[f"{metric}_std_images"] = scores[f"{metric}_std"]
            row[f"{metric}_seeds"] = [r[f"{metric}_mean"] for r in group]
            row[f"{metric}_mean_seeds"], row[f"{metric}_std_seeds"] = seed_spread(row[f"{metric}_seeds"])
        row["train_composition"] = first.get("train_composition")
        row["validation_composition"] = first.get("validation_composition")
        row["test_composition"] = first.get("test_composition")
        row["thresholds"] = [r.get("threshold") for r in group]
        row["threshold_kind"] = first.get("threshold_kind")
        row["threshold_rule"] = first.get("threshold_rule")
        row["ap"] = _mean_or_none([r["ap"] for r in group])
        row["ap50"] = _mean_or_none([r["ap50"] for r in group])
        rows.append(row)
    return rows


def _row_name(row: dict) -> str:
    return row["training_dataset"]


def compare_rows(runs: list[dict], summary: list[dict]) -> list[dict]:
    """Paired comparisons of table rows scored on the same test images (IoU, A minus B).

    - Training data: rows of the same split, augmentation and model but another training dataset
      (e.g. Mixed, or a sweep's fractions) against the reference: the row with the smallest
      ct_fraction (a sweep's 0, the sample's X-rays only), else the first (X-rays only comes first).
    - Models: every other model of a cell against the cell's first model.
    Each image's IoU is first averaged over seeds. Rows whose test images differ are not paired.
    """
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        groups.setdefault(tuple(run[k] for k in ROW_KEYS), []).append(run)
    images = {key: seed_averaged_images(group) for key, group in groups.items()}
    key_of = {id(row): tuple(row[k] for k in ROW_KEYS) for row in summary}
    pairs: list[tuple[str, dict, dict]] = []
    by_setting: dict[tuple, list[dict]] = {}
    by_cell: dict[tuple, list[dict]] = {}
    for row in summary:
        by_setting.setdefault((row["split"], row["augment"], row["model"]), []).append(row)
        by_cell.setdefault(tuple(row[k] for k in ROW_KEYS if k != "model"), []).append(row)
    for rows in by_setting.values():
        # The reference is the fewest CT projections: X-rays only, or a sweep's smallest fraction.
        rows = sorted(rows, key=lambda r: (r["ct_fraction"] is None, r["ct_fraction"] or 0.0))
        pairs += [("training data", row, rows[0]) for row in rows[1:]]
    for rows in by_cell.values():
        pairs += [("model", row, rows[0]) for row in rows[1:]]
    comparisons = []
    for kind, a, b in pairs:
        images_a, images_b = images[key_of[id(a)]], images[key_of[id(b)]]
        entry = {"kind": kind, "a": {k: a[k] for k in ROW_KEYS}, "b": {k: b[k] for k in ROW_KEYS}}
        if [p["image_id"] for p in images_a] != [p["image_id"] for p in images_b]:
            comparisons.append({**entry, "paired": False})
            continue
        paired = paired_comparison([p["iou"] for p in images_a], [p["iou"] for p in images_b],
                                   [p["patient_id"] for p in images_a])
        comparisons.append({**entry, "paired": True, "metric": "iou", **paired.as_dict()})
    return comparisons


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _with_ci(value: float | None, interval: list[float | None]) -> str:
    if value is None:
        return "n/a"
    low, high = interval
    return f"{value:.3f}" if low is None else f"{value:.3f} [{low:.3f}, {high:.3f}]"


def _signed_with_ci(value: float, interval: list[float | None]) -> str:
    low, high = interval
    return f"{value:+.3f}" if low is None else f"{value:+.3f} [{low:+.3f}, {high:+.3f}]"


def _setting(row: dict) -> str:
    return f"{row['split']}, aug {'y' if row['augment'] else 'n'}"


def comparison_line(comparison: dict) -> str:
    """E.g. "Mixed vs X-rays only (60/40, aug y, unet): ΔIoU -0.020 [-0.060, +0.010], Wilcoxon p=0.4 (8 patients)"."""
    a, b = comparison["a"], comparison["b"]
    if comparison["kind"] == "model":
        title = f"{a['model']} vs {b['model']} ({_row_name(a)}, {_setting(a)})"
    else:
        title = f"{_row_name(a)} vs {_row_name(b)} ({_setting(a)}, {a['model']})"
    if not comparison["paired"]:
        return f"{title}: not paired, the test images differ"
    p = comparison["wilcoxon_p"]
    p_text = "n/a (no patient's IoU differs)" if p is None else f"{p:.2g}"
    difference = _signed_with_ci(comparison["difference_value"],
                                 [comparison["difference_low"], comparison["difference_high"]])
    return f"{title}: ΔIoU {difference}, Wilcoxon p={p_text} ({comparison['patients']} patients)"


def training_line(row: dict) -> str:
    """What one table row trained on and the threshold its runs used, in one line."""
    from chexmix_dataset.dataset.composition import describe_composition

    composition = row.get("train_composition")
    data = describe_composition(composition) if composition else f"{row['train_images']} images"
    thresholds = ", ".join(_number(t) for t in row.get("thresholds") or [] if t is not None) or "n/a"
    validation = row.get("validation_composition")
    chosen_on = f", chosen on {describe_composition(validation)}" if validation else ""
    return (f"{_row_name(row)} ({_setting(row)}, {row['model']}): {data}; threshold {thresholds} "
            f"({row.get('threshold_kind') or 'n/a'}; {row.get('threshold_rule') or 'n/a'}{chosen_on})")


def validation_domain_warning(row: dict) -> str | None:
    """A warning when the threshold was chosen on images of another kind than the test images
    (e.g. CT projections only, for a test split of CXRs): score levels can differ between the two,
    so the operating point may not carry over. None when the kinds match or are not recorded."""
    validation, test = row.get("validation_composition"), row.get("test_composition")
    if not validation or not test:
        return None
    kinds = {"cxr": "CXRs", "ct_projections": "CT projections"}
    missing = [key for key in kinds if test[key] and not validation[key]]
    if not missing:
        return None
    held = " and ".join(kinds[key] for key in kinds if validation[key])
    trained = row.get("train_composition") or {}
    why = ("too few patients of that kind to hold any out" if any(trained.get(key) for key in missing)
           else "none to hold out")
    return (f"† Warning: {_row_name(row)} ({_setting(row)}, {row['model']}) chose its threshold on {held} only, "
            f"while its test images include {' and '.join(kinds[key] for key in missing)} (the training split "
            f"has {why}); score levels can differ between kinds of image, so the threshold may not carry over.")


def results_markdown(summary: list[dict], versions: dict[str, str], comparisons: list[dict] | None = None) -> str:
    """The paper-style table with intervals, seed spreads, paired comparisons and how each number was computed."""
    several_seeds = any(row["seeds"] > 1 for row in summary)
    header = ["Training dataset", "Split", "Aug", "Model", "IoU [95% CI]", "Dice [95% CI]", "AP50",
              "IoU lesion+ [95% CI]", "Pooled IoU", "Lesion-free test", "Test images (patients)"]
    if several_seeds:
        header.append("IoU over seeds: mean ± std")
    lines = ["# CheXMix lesion segmentation benchmark", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    warnings = [validation_domain_warning(row) for row in summary]
    for row, warning in zip(summary, warnings):
        marked = " †" if warning else ""  # the warning below the table explains it
        cells = [row["training_dataset"] + marked, row["split"], "y" if row["augment"] else "n", row["model"],
                 _with_ci(row["iou_mean"], row["iou_ci"]), _with_ci(row["dice_mean"], row["dice_ci"]),
                 _number(row["ap50"]), _with_ci(row["iou_lesion_mean"], row["iou_lesion_ci"]),
                 _with_ci(row["pooled_iou"], row["pooled_iou_ci"]), f"{100 * row['lesion_free_fraction']:.0f} %",
                 f"{row['test_images']} ({row['test_patients']})"]
        if several_seeds:
            std = row["iou_std_seeds"]
            spread = "n/a" if std is None else f"{std:.3f}"
            cells.append(f"{row['iou_mean_seeds']:.3f} ± {spread} ({row['seeds']} seeds)")
        lines.append("| " + " | ".join(cells) + " |")
    sweep = sweep_rows(summary)
    if sweep:
        lines += ["", "## Replacement curve (CT fraction sweep)", "",
                  "| Split | Aug | Model | CT fraction asked | CXRs replaced (built) | Train images | IoU [95% CI] |",
                  "|---|---|---|---|---|---|---|"]
        for row in sweep:
            built = replaced_fraction(row)
            lines.append(f"| {row['split']} | {'y' if row['augment'] else 'n'} | {row['model']} | "
                         f"{row['ct_fraction']:.3g} | {_number(built)} ({row['train_ct_projections']} of "
                         f"{row['train_images']}) | {row['train_images']} | "
                         f"{_with_ci(row['iou_mean'], row['iou_ci'])} |")
        if len({row["train_images"] for row in sweep}) > 1:
            lines += ["", "Warning: the training sets of the sweep differ in size, so the curve mixes the effect "
                          "of the CT fraction with that of the amount of training data."]
        lines += ["", "Figure: figures/replacement_curve.png (the paper's mix replaces 5/6 of the CXRs)."]
    if comparisons:
        lines += ["", "## Paired comparisons (same test images, A minus B)", ""]
        lines += [f"- {comparison_line(c)}" for c in comparisons]
    lines += ["", "## What each row trained on", ""]
    lines += [f"- {training_line(row)}" for row in summary]
    for warning in filter(None, warnings):  # a paragraph each
        lines += ["", warning]
    epochs = sorted({row["epochs"] for row in summary})
    lines += [
        "",
        "## How the numbers were computed",
        "",
        "IoU and Dice: per test image, predicted lesion area (Mask R-CNN instances scoring at least the "
        "run's threshold; U-Net probability above the run's threshold; each threshold chosen on a "
        "patient-level validation part of the training split, see above) against the union of ground-truth "
        "lesions at the image's own size, then the mean over test images. With several seeds each image's "
        "score is first averaged over seeds.",
        "",
        "[95% CI]: uncertainty from the choice of test images, a percentile bootstrap "
        f"({DEFAULT_RESAMPLES} resamples) that resamples test *patients* (patient_id) with all their images, "
        "since images of one patient are not independent. The spread of the scores over test images "
        "(how much images differ, not how certain the mean is) is in results.json as iou_std_images.",
        "",
        "IoU lesion+: the mean over test images with at least one ground-truth lesion only. "
        "Pooled IoU: all test pixels at once (total intersection / total union), which weighs images by "
        "lesion size and needs no empty-ground-truth rule. Lesion-free test: the share of test images "
        "without ground-truth lesions, where predicting nothing scores 1.",
        "",
        "IoU over seeds: mean ± sample standard deviation (ddof 1) of the per-seed mean IoUs, the "
        "uncertainty from training (initialisation, batch order, augmentation); it is not the spread over "
        "test images and not the CI." if several_seeds else
        "One seed per row: the spread over training seeds is not measured (use --seeds K).",
        "",
        "Paired comparisons: the mean over test images of the IoU difference A - B with its patient "
        "bootstrap 95 % CI, and a two-sided Wilcoxon signed-rank p-value (scipy) over the per-patient "
        "mean differences (patients with no difference are dropped).",
        "",
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
    from benchmark.figures import draw_iou_bars, draw_loss_curves, draw_overlays, draw_replacement_curve

    versions = package_versions()
    runs = [outcome.result for _, outcome in outcomes]
    summary = summarize(runs)
    comparisons = compare_rows(runs, summary)
    results = {"versions": versions, "options": options, "empty_ground_truth_rule": EMPTY_GROUND_TRUTH_RULE,
               "summary": summary, "comparisons": comparisons, "runs": runs}
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
    if sweep_rows(summary):
        with atomic_file(figures / "replacement_curve.png", "wb") as handle:
            draw_replacement_curve(handle, sweep_rows(summary))
    write_json(out_dir / "results.json", results)
    with atomic_file(out_dir / "results.md", "w") as handle:
        handle.write(results_markdown(summary, versions, comparisons))
    return results
