"""A CheXMix row (see :mod:`.features`) as numpy arrays: its image, lesion instance masks and labels.

This is the one place that decodes a row for model training; :mod:`chexmix_dataset.torch_dataset`
and the benchmark's :mod:`benchmark.data` build on it. Arrays are at the image's own size: axes
(row, column) = (y, x) in px, origin at the top-left corner.
"""

from __future__ import annotations

import numpy as np

from chexmix_dataset.dataset.lesions import decode_rle

IMAGE_MODES = ("L", "RGB")


def row_image(row: dict, mode: str = "L") -> np.ndarray:
    """The row's image as uint8 grey levels: (H, W) for ``mode="L"``, (H, W, 3) for ``"RGB"``
    (the grey level copied into each channel, for models made for colour photographs)."""
    if mode not in IMAGE_MODES:
        raise ValueError(f"image mode must be one of {IMAGE_MODES}, got {mode!r}")
    return np.array(row["image"].convert(mode), dtype=np.uint8)  # a writable copy, not PIL's buffer


def row_lesion_masks(row: dict) -> np.ndarray:
    """(N, H, W) bool lesion instances of a row (its ``objects`` RLEs), at the image's own size (px)."""
    height, width = int(row["height"]), int(row["width"])
    masks = [decode_rle(rle) for rle in row["objects"]["segmentation"]]
    for mask in masks:
        if mask.shape != (height, width):
            raise ValueError(f"row {row.get('image_id', '?')!r}: a lesion mask is {mask.shape[0]} x "
                             f"{mask.shape[1]} px but the image is {height} x {width} px")
    return np.stack(masks) if masks else np.zeros((0, height, width), dtype=bool)


def row_lesion_labels(row: dict) -> np.ndarray:
    """(N,) int64 class labels of a row's lesions: its ``category`` + 1, so 0 stays background
    (torchvision's convention, and the COCO export's ``category_id``)."""
    return np.asarray(row["objects"]["category"], dtype=np.int64).reshape(-1) + 1
