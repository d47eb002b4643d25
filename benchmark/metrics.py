"""Scores of predicted lesions against the ground truth, per image and over a test split.

- IoU and Dice compare the predicted lesion *area* (a (H, W) bool mask: the union of Mask R-CNN
  instances scoring at least 0.5, or the U-Net probability above 0.5) with the union of the
  ground-truth lesions, pixel by pixel at the image's own size.
- Empty-ground-truth rule, the same for every model: on a test image without any ground-truth
  lesion, IoU = Dice = 1 when nothing is predicted and 0 when any lesion pixel is predicted.
- The standard deviation over test images is a population statistic (numpy's ``std``, ddof 0):
  a spread, not an uncertainty of the mean. Confidence intervals (patient bootstrap), pooled IoU
  and the spread over seeds (ddof 1) are in :mod:`benchmark.stats`.
- COCO segmentation AP (IoU 0.50:0.95) and AP50 come from pycocotools on instance masks ranked by
  score; every test image counts, so detections on lesion-free images are false positives.
  With no ground-truth lesion in the whole split, AP is undefined and reported as None.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def iou(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of two (H, W) bool masks (empty-ground-truth rule above)."""
    union = np.logical_or(predicted, truth).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(predicted, truth).sum() / union)


def dice(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Dice coefficient of two (H, W) bool masks (empty-ground-truth rule above)."""
    total = predicted.sum() + truth.sum()
    if total == 0:
        return 1.0
    return float(2 * np.logical_and(predicted, truth).sum() / total)


def encode_instances(masks: np.ndarray) -> list[dict]:
    """(N, H, W) bool masks -> N pycocotools RLEs (compressed, ``counts`` as bytes)."""
    return [mask_utils.encode(np.asfortranarray(mask.astype(np.uint8))) for mask in masks]


def coco_segmentation_ap(truths: list[np.ndarray], predictions: list[tuple[np.ndarray, np.ndarray]]
                         ) -> dict[str, float | None]:
    """COCO mask AP and AP50 over a split.

    Args:
        truths: per image, (N, H, W) bool ground-truth lesion instances.
        predictions: per image, ((M, H, W) bool predicted instances, (M,) scores in [0, 1]).

    Returns:
        {"ap": AP@[.50:.95], "ap50": AP@.50}, each None when the split has no ground-truth lesion.
    """
    sizes = [truth.shape[-2:] for truth in truths]
    return coco_segmentation_ap_rle(sizes, [encode_instances(t) for t in truths],
                                    [(encode_instances(m), s) for m, s in predictions])


def coco_segmentation_ap_rle(sizes: list[tuple[int, int]], truths: list[list[dict]],
                             predictions: list[tuple[list[dict], np.ndarray]]) -> dict[str, float | None]:
    """:func:`coco_segmentation_ap` on instances already RLE-encoded (as pycocotools encodes them).

    Args:
        sizes: per image, its (H, W) in px.
        truths: per image, the RLEs of its ground-truth lesion instances.
        predictions: per image, (RLEs of the predicted instances, (M,) scores in [0, 1]).
    """
    images, annotations, detections = [], [], []
    for image_id, ((height, width), truth, (masks, scores)) in enumerate(zip(sizes, truths, predictions), start=1):
        images.append({"id": image_id, "height": int(height), "width": int(width)})
        for rle in truth:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": 1,
                                "segmentation": rle, "area": float(mask_utils.area(rle)),
                                "bbox": mask_utils.toBbox(rle).tolist(), "iscrowd": 0})
        for rle, score in zip(masks, scores):
            if mask_utils.area(rle) > 0:
                detections.append({"image_id": image_id, "category_id": 1, "segmentation": rle,
                                   "score": float(score)})
    if not annotations:
        return {"ap": None, "ap50": None}
    if not detections:
        return {"ap": 0.0, "ap50": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools reports on stdout
        truth_coco = COCO()
        truth_coco.dataset = {"images": images, "annotations": annotations,
                              "categories": [{"id": 1, "name": "lesion"}]}
        truth_coco.createIndex()
        evaluation = COCOeval(truth_coco, truth_coco.loadRes(detections), iouType="segm")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    ap, ap50 = (float(v) if v >= 0 else None for v in evaluation.stats[:2])  # -1: undefined
    return {"ap": ap, "ap50": ap50}
