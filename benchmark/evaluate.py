"""Predicting a test split and scoring it (see :mod:`benchmark.metrics` for the rules).

Models predict at the training size (``image_size`` px square); lesion probabilities are
resized back to each test image's own (H, W) bilinearly and thresholded at 0.5 there, so scores
are computed against the original ground truth, not a resampled one.
"""

from __future__ import annotations

from dataclasses import dataclass

import datasets
import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from baselines import LesionModel

from .data import LesionDataset, ground_truth_instances, make_loader
from .metrics import coco_segmentation_ap, dice, iou, mean_std

MASK_THRESHOLD = 0.5


@dataclass
class ImagePrediction:
    """One test image's prediction at its own size: lesion area (H, W) and scored instances."""

    image_id: str
    lesion_area: np.ndarray
    instance_masks: np.ndarray
    scores: np.ndarray


def _to_size(probabilities: torch.Tensor, height: int, width: int) -> np.ndarray:
    """(..., S, S) probabilities -> (..., H, W) bool masks at threshold 0.5."""
    if probabilities.shape[-2:] != (height, width):
        flat = probabilities.reshape(-1, 1, *probabilities.shape[-2:]).float()
        flat = F.interpolate(flat, size=(height, width), mode="bilinear", align_corners=False)
        probabilities = flat.reshape(*probabilities.shape[:-2], height, width)
    return (probabilities > MASK_THRESHOLD).cpu().numpy()


@torch.no_grad()
def predict_split(model: LesionModel, split: datasets.Dataset, image_size: int, device: torch.device,
                  batch_size: int = 4, progress: bool = True) -> list[ImagePrediction]:
    """Predictions for every row of ``split``, in row order."""
    model.eval()
    loader = make_loader(LesionDataset(split, image_size), batch_size, shuffle=False, seed=0, workers=0)
    sizes = list(zip(split["image_id"], split["height"], split["width"]))
    predictions = []
    for images, _ in tqdm(loader, desc="predict", leave=False, disable=not progress):
        for prediction in model.predict(images.to(device)):
            image_id, height, width = sizes[len(predictions)]
            predictions.append(ImagePrediction(
                image_id=image_id,
                lesion_area=_to_size(prediction.lesion_probability, height, width),
                instance_masks=_to_size(prediction.instance_probabilities, height, width),
                scores=prediction.scores.float().cpu().numpy(),
            ))
    return predictions


def score_split(split: datasets.Dataset, predictions: list[ImagePrediction]) -> dict:
    """Per-image IoU/Dice, their mean and std over images, and COCO AP/AP50."""
    truths = [ground_truth_instances(row) for row in split.select_columns(["objects", "height", "width"])]
    per_image = []
    for truth, prediction in zip(truths, predictions):
        lesion = truth.any(axis=0)
        per_image.append({"image_id": prediction.image_id, "has_lesion": bool(lesion.any()),
                          "iou": iou(prediction.lesion_area, lesion), "dice": dice(prediction.lesion_area, lesion)})
    iou_mean, iou_std = mean_std([p["iou"] for p in per_image])
    dice_mean, dice_std = mean_std([p["dice"] for p in per_image])
    ap = coco_segmentation_ap(truths, [(p.instance_masks, p.scores) for p in predictions])
    return {"iou_mean": iou_mean, "iou_std": iou_std, "dice_mean": dice_mean, "dice_std": dice_std,
            **ap, "per_image": per_image}
