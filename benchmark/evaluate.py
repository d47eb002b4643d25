"""Predicting a test split and scoring it (see :mod:`benchmark.metrics` for the rules).

Models predict at the training size (``image_size`` px square); lesion probabilities are
resized back to each test image's own (H, W) bilinearly and cut there at the prediction's
``mask_threshold`` (0.5 for Mask R-CNN masks; the U-Net's chosen probability threshold), so
scores are computed against the original ground truth, not a resampled one.

Scoring happens image by image while the split is predicted: predicted instances are RLE-encoded
as soon as they are resized, and full-size lesion areas are kept only for the few images the
overlay figures show, so memory does not grow with the size of the test split in pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import datasets
import numpy as np
import torch
from pycocotools import mask as mask_utils
from torch.nn import functional as F
from tqdm import tqdm

from baselines import LesionModel
from benchmark.data import LesionDataset, make_loader
from benchmark.metrics import coco_segmentation_ap_rle, dice, encode_instances, iou
from benchmark.stats import split_scores

MASK_THRESHOLD = 0.5
#: test images shown per overlay figure.
OVERLAY_IMAGES = 4
#: instances resized to full image size at once (bounds the float buffer of the resize).
INSTANCE_CHUNK = 8


@dataclass
class SplitEvaluation:
    """Scores of one run on its test split and what the overlay figure needs of its predictions.

    Attributes:
        scores: what results.json stores of a run's test split (see :func:`split_scores`), with
            per_image (image_id, patient_id, has_lesion, iou, dice, intersection_px, union_px).
        lesion_areas: row index -> (H, W) bool predicted lesion area at the image's own size (px),
            for the rows :func:`overlay_order` picks.
    """

    scores: dict
    lesion_areas: dict[int, np.ndarray]


def overlay_order(has_lesion: list[bool], count: int = OVERLAY_IMAGES) -> list[int]:
    """Row indices an overlay figure shows: images with lesions first, each group in row order."""
    return sorted(range(len(has_lesion)), key=lambda index: not has_lesion[index])[:count]


def masks_at_size(probabilities: torch.Tensor, height: int, width: int, threshold: float = MASK_THRESHOLD) -> np.ndarray:
    """(..., S, S) probabilities -> (..., H, W) bool masks, ``> threshold``."""
    if probabilities.shape[-2:] != (height, width):
        flat = probabilities.reshape(-1, 1, *probabilities.shape[-2:]).float()
        flat = F.interpolate(flat, size=(height, width), mode="bilinear", align_corners=False)
        probabilities = flat.reshape(*probabilities.shape[:-2], height, width)
    return (probabilities > threshold).cpu().numpy()


def _instance_rles(probabilities: torch.Tensor, height: int, width: int, threshold: float = MASK_THRESHOLD
                   ) -> list[dict]:
    """(N, S, S) instance probabilities -> N RLEs of the instances at (H, W) px."""
    rles: list[dict] = []
    for chunk in probabilities.split(INSTANCE_CHUNK):
        rles += encode_instances(masks_at_size(chunk, height, width, threshold))
    return rles


def _truth(row: dict) -> tuple[list[dict], np.ndarray]:
    """A row's ground-truth instance RLEs (pycocotools form) and their union, (H, W) bool."""
    rles = [{"size": list(rle["size"]), "counts": rle["counts"].encode("ascii")}
            for rle in row["objects"]["segmentation"]]
    if not rles:
        return rles, np.zeros((int(row["height"]), int(row["width"])), dtype=bool)
    return rles, mask_utils.decode(mask_utils.merge(rles, intersect=False)).astype(bool)


@torch.no_grad()
def evaluate_split(model: LesionModel, split: datasets.Dataset, image_size: int, device: torch.device,
                   batch_size: int = 4, progress: bool = True) -> SplitEvaluation:
    """Predict every row of ``split`` and score it: per-image IoU/Dice, their mean and std, COCO AP."""
    model.eval()
    loader = make_loader(LesionDataset(split, image_size), batch_size, shuffle=False, seed=0, workers=0)
    rows = iter(split.select_columns(["image_id", "patient_id", "objects", "height", "width"]))
    per_image: list[dict] = []
    sizes: list[tuple[int, int]] = []
    truths: list[list[dict]] = []
    detections: list[tuple[list[dict], np.ndarray]] = []
    lesion_areas: dict[int, np.ndarray] = {}
    kept = {True: 0, False: 0}  # areas kept so far of images with / without lesions
    for images, _ in tqdm(loader, desc="predict", leave=False, disable=not progress):
        for prediction in model.predict(images.to(device)):
            row = next(rows)
            height, width = int(row["height"]), int(row["width"])
            truth_rles, truth = _truth(row)
            area = masks_at_size(prediction.lesion_probability, height, width, prediction.mask_threshold)
            has_lesion = bool(truth.any())
            # overlay_order picks from the first OVERLAY_IMAGES of each group.
            if kept[has_lesion] < OVERLAY_IMAGES:
                kept[has_lesion] += 1
                lesion_areas[len(per_image)] = area
            intersection = int(np.logical_and(area, truth).sum())
            per_image.append({"image_id": row["image_id"], "patient_id": row["patient_id"], "has_lesion": has_lesion,
                              "iou": iou(area, truth), "dice": dice(area, truth), "intersection_px": intersection,
                              "union_px": int(area.sum()) + int(truth.sum()) - intersection})
            sizes.append((height, width))
            truths.append(truth_rles)
            detections.append((_instance_rles(prediction.instance_probabilities, height, width,
                                              prediction.mask_threshold),
                               prediction.scores.float().cpu().numpy()))
    shown = overlay_order([p["has_lesion"] for p in per_image])
    scores = {**split_scores(per_image), **coco_segmentation_ap_rle(sizes, truths, detections), "per_image": per_image}
    return SplitEvaluation(scores, {index: lesion_areas[index] for index in shown})

