"""Lesion instances on a 2D image and their COCO encodings (RLE, bbox, area)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pycocotools import mask as mask_utils


@dataclass(frozen=True)
class LesionInstance:
    """One lesion on a 2D image.

    Attributes:
        mask: (height, width) bool array, True inside the lesion.
        lesion_type: e.g. "ground_glass", "consolidation", "infection" or "lesion".
    """

    mask: np.ndarray
    lesion_type: str


def encode_rle(mask: np.ndarray) -> dict:
    """COCO compressed RLE of a 2D binary mask: {"size": [h, w], "counts": str}."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def decode_rle(rle: dict) -> np.ndarray:
    """Inverse of :func:`encode_rle`: a (h, w) bool array."""
    counts = rle["counts"]
    coco_rle = {"size": list(rle["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    return mask_utils.decode(coco_rle).astype(bool)


def coco_object(instance: LesionInstance, object_id: int) -> dict:
    """The row-level description of one lesion: id, COCO xywh bbox, area, RLE, category, type."""
    rle = encode_rle(instance.mask)
    coco_rle = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    x, y, w, h = (float(v) for v in mask_utils.toBbox(coco_rle))
    return {
        "id": int(object_id),
        "bbox": [x, y, w, h],
        "area": float(mask_utils.area(coco_rle)),
        "segmentation": rle,
        "category": 0,
        "lesion_type": instance.lesion_type,
    }


def union_mask(instances: list[LesionInstance], shape: tuple[int, int]) -> np.ndarray:
    """Union of instance masks as a (h, w) uint8 image, 0 background, 255 lesion."""
    union = np.zeros(shape, dtype=bool)
    for instance in instances:
        union |= instance.mask
    return union.astype(np.uint8) * 255
