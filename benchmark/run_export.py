"""Each finished run's model as files ``chexmix predict`` and ``chexmix publish-model`` read.

``runs/<cell>/<model>/seed<k>/model/`` holds ``model.safetensors`` (the scored weights: the best
validation epoch), ``config.json`` (:mod:`benchmark.model_files`: architecture, image size,
threshold, plus the run's settings, training-data composition and licences, test scores) and
``test_overlay.png`` (the run's predictions on test images, as in the benchmark's overlays).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from baselines import LesionModel
from benchmark.grid import Cell, RunOutcome
from benchmark.model_files import save_model_files
from chexmix_dataset.atomic import atomic_file

MODEL_DIR = "model"
TRAINING_KEYS = ("training_dataset", "config", "split", "augment", "model", "seed", "epochs", "best_epoch",
                 "weights", "init_weights", "image_size", "batch_size", "device", "train_images",
                 "validation_images", "threshold_rule")
TEST_KEYS = ("iou_mean", "iou_ci", "dice_mean", "dice_ci", "ap", "ap50", "pooled_iou", "iou_lesion_mean",
             "iou_lesion_ci",
             "lesion_free_fraction", "test_images", "test_patients")


def model_config(cell: Cell, outcome: RunOutcome, model: LesionModel) -> dict:
    """config.json of a run's model: what predict needs, then where the model came from."""
    result = outcome.result
    return {
        "architecture": model.architecture, "init_weights": result["init_weights"],
        "image_size": result["image_size"], "threshold": float(model.threshold),
        "threshold_kind": model.threshold_kind,
        "threshold_source": f"chosen on the validation part of the training split ({result['threshold_rule']})",
        "training": {key: result[key] for key in TRAINING_KEYS if key in result},
        "train_composition": result.get("train_composition"),
        # The whole training split: its validation part chose the epoch and the threshold too.
        "training_licences": dict(Counter(cell.dataset["train"]["license"])),
        "test": {key: result[key] for key in TEST_KEYS if key in result},
        "downloads": result.get("downloads", []),
    }


def write_run_model(run_dir: Path, cell: Cell, outcome: RunOutcome, model: LesionModel) -> Path:
    """Write ``run_dir/model/``; returns that folder."""
    from benchmark.figures import draw_overlays  # matplotlib only once there is something to draw

    folder = run_dir / MODEL_DIR
    folder.mkdir(parents=True, exist_ok=True)
    save_model_files(folder, model, model_config(cell, outcome, model))
    with atomic_file(folder / "test_overlay.png", "wb") as handle:
        draw_overlays(handle, cell, [outcome])
    return folder
