"""Turning an image and its lesion instances into one CheXMix row (see :mod:`.features`)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from chexmix_dataset.dataset.lesions import LesionInstance, coco_object, union_mask


def make_row(
    image: np.ndarray,
    instances: list[LesionInstance],
    *,
    image_id: str,
    source: str,
    origin: str,
    patient_id: str,
    license: str,
    view_deg: float | None = None,
    lung_mask: np.ndarray | None = None,
) -> dict:
    """One dataset row from a (height, width) uint8 image and its lesions.

    ``view_deg``: for CT projections, the patient's turn about the superior-inferior axis in
    degrees (:mod:`.views`); None for real CXRs, whose pose is not known. ``lung_mask``: (height,
    width) bool lungs from the source, or None.
    """
    if image.ndim != 2 or image.dtype != np.uint8:
        raise ValueError(f"image must be a 2D uint8 array, got {image.dtype} {image.shape}")
    height, width = image.shape
    if lung_mask is not None and lung_mask.shape != image.shape:
        raise ValueError(f"lung mask is {lung_mask.shape}, image {image.shape}")
    objects = [coco_object(instance, object_id=i) for i, instance in enumerate(instances)]
    return {
        "image": Image.fromarray(image, mode="L"),
        "image_id": image_id,
        "source": source,
        "origin": origin,
        "patient_id": patient_id,
        "license": license,
        "view_deg": view_deg,
        "width": width,
        "height": height,
        "objects": {key: [obj[key] for obj in objects] for key in
                    ("id", "bbox", "area", "segmentation", "category", "lesion_type")},
        "mask": Image.fromarray(union_mask(instances, (height, width)), mode="L"),
        "lung_mask": None if lung_mask is None else Image.fromarray(lung_mask.astype(np.uint8) * 255),
    }
