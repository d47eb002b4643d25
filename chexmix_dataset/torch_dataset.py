"""CheXMix rows as torch detection samples, to train your own models without the benchmark harness.

Needs the ``bench`` extra (torch, torchvision); ``import chexmix_dataset`` alone does not import
torch. Example::

    import torch
    from chexmix_dataset import load_chexmix
    from chexmix_dataset.torch_dataset import CheXMixDetectionDataset, collate_detection_batch

    train = CheXMixDetectionDataset(load_chexmix("sample")["train"], image_mode="RGB")
    loader = torch.utils.data.DataLoader(train, batch_size=4, shuffle=True,
                                         collate_fn=collate_detection_batch)
    images, targets = next(iter(loader))   # lists: images differ in size

Each item is ``(image, target)`` at the image's own size (nothing is resized unless a
``transform`` does it), in the form torchvision's detection models (Mask R-CNN, Faster R-CNN)
take in training mode. Pixel axes are (row, column) = (y, x), origin at the top-left corner.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import datasets
import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.ops import masks_to_boxes

from chexmix_dataset.dataset.arrays import IMAGE_MODES, row_image, row_lesion_labels, row_lesion_masks

__all__ = ["CheXMixDetectionDataset", "collate_detection_batch", "detection_target"]

#: the columns an item reads (not the ``mask`` union image, which would be decoded for nothing).
ROW_COLUMNS = ["image", "image_id", "objects", "height", "width"]


def detection_target(masks: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """A torchvision detection target from (N, H, W) uint8 instance masks (1 inside a lesion).

    Returns ``masks`` (N, H, W) uint8, ``boxes`` (N, 4) float32 ``x0, y0, x1, y1`` in px, the
    masks' extents measured at pixel edges (a lesion covering only column 3 spans x 3 to 4, so no
    box is ever empty) and ``labels`` (N,) int64 (all 1, "lesion", when not given). Masks without
    a lesion pixel (e.g. shifted out of the image by augmentation) are dropped with their labels.
    """
    if labels is None:
        labels = torch.ones(len(masks), dtype=torch.int64)
    if len(masks):
        kept = (masks.flatten(1) > 0).any(dim=1)
        masks, labels = masks[kept], labels[kept]
    boxes = masks_to_boxes(masks) if len(masks) else torch.zeros((0, 4))
    # masks_to_boxes gives the last pixel's index; +1 makes boxes span whole pixels (never empty).
    boxes[:, 2:] += 1
    return {"masks": masks, "boxes": boxes, "labels": labels}


class CheXMixDetectionDataset(torch.utils.data.Dataset):
    """One split of :func:`chexmix_dataset.load_chexmix` as torchvision-style detection samples.

    ``dataset[i]`` is ``(image, target)`` for row ``i``, decoded when asked for (nothing is
    cached), at the image's own size H x W px:

    - ``image``: (C, H, W) float32 ``tv_tensors.Image``, grey level / 255 in [0, 1]; C = 1 for
      ``image_mode="L"`` (as stored), 3 for ``"RGB"`` (the grey copied into each channel, for
      backbones made for colour photographs).
    - ``target["boxes"]``: (N, 4) float32 ``tv_tensors.BoundingBoxes``, XYXY px, the lesion
      masks' extents at pixel edges (see :func:`detection_target`); N = 0 for rows without lesions.
    - ``target["masks"]``: (N, H, W) uint8 ``tv_tensors.Mask``, 1 inside the lesion, decoded from
      the row's COCO RLEs.
    - ``target["labels"]``: (N,) int64, the row's ``category`` + 1 (1 = lesion; 0 is background).
    - ``target["image_id"]``: the row's ``image_id`` string.

    ``transform``, if given, is called as ``transform(image, target)`` and returns the pair; a
    ``torchvision.transforms.v2`` transform moves the boxes and masks with the image (e.g.
    ``v2.Compose([v2.Resize(512), v2.RandomHorizontalFlip(), v2.SanitizeBoundingBoxes()])``;
    the last drops lesions that a crop pushed out).
    """

    def __init__(self, split: datasets.Dataset, transform: Callable[[Any, dict], tuple[Any, dict]] | None = None,
                 image_mode: str = "L") -> None:
        if image_mode not in IMAGE_MODES:
            raise ValueError(f"image_mode must be one of {IMAGE_MODES}, got {image_mode!r}")
        missing = sorted(set(ROW_COLUMNS) - set(split.column_names))
        if missing:
            raise ValueError(f"the split lacks the CheXMix column(s) {missing}: pass a split of load_chexmix(...)")
        # Python format, whatever the caller set: items decode the image from its PIL form.
        self.rows = split.select_columns(ROW_COLUMNS).with_format(None)
        self.transform = transform
        self.image_mode = image_mode

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, Any]]:
        row = self.rows[index]
        pixels = row_image(row, self.image_mode)
        pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
        image = tv_tensors.Image(torch.from_numpy(np.ascontiguousarray(pixels)).float().div_(255.0))
        height, width = image.shape[-2:]
        decoded = detection_target(torch.from_numpy(row_lesion_masks(row).astype(np.uint8)),
                                   torch.from_numpy(row_lesion_labels(row)))
        target = {
            "boxes": tv_tensors.BoundingBoxes(decoded["boxes"], format="XYXY", canvas_size=(height, width)),
            "masks": tv_tensors.Mask(decoded["masks"]),
            "labels": decoded["labels"],
            "image_id": row["image_id"],
        }
        if self.transform is not None:
            return self.transform(image, target)
        return image, target


def collate_detection_batch(batch: list[tuple[torch.Tensor, dict]]) -> tuple[list[torch.Tensor], list[dict]]:
    """``collate_fn`` for detection: (list of images, list of targets), as torchvision's detection
    models take them; images stay unstacked because they differ in size."""
    images, targets = zip(*batch)
    return list(images), list(targets)
