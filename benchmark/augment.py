"""Training augmentation for chest X-rays, applied identically to the image and its lesion masks.

The usual set for CXRs: a small rotation (up to 10 degrees either way), scaling (0.9-1.1), a
small shift (up to 5 % of the side) and brightness/contrast changes (0.8-1.2). No flips: a
vertical flip puts the diaphragm on top, and a horizontal flip would put the heart on the wrong
side. Geometry is one affine map about the image centre, resampled bilinearly for the image and
by nearest neighbour for the masks, so masks stay binary and aligned with the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

MAX_ROTATION_DEG = 10.0
SCALE_RANGE = (0.9, 1.1)
MAX_SHIFT_FRACTION = 0.05
INTENSITY_RANGE = (0.8, 1.2)


@dataclass(frozen=True)
class AugmentParams:
    """One draw of the augmentation.

    Attributes:
        angle_deg: rotation about the image centre, degrees, clockwise on screen (x right, y down).
        scale: isotropic zoom factor about the image centre.
        shift_px: (dx, dy) translation in px, x to the right, y down.
        brightness: multiplies intensities.
        contrast: stretches intensities about the image mean.
    """

    angle_deg: float = 0.0
    scale: float = 1.0
    shift_px: tuple[float, float] = (0.0, 0.0)
    brightness: float = 1.0
    contrast: float = 1.0


def sample_params(rng: np.random.Generator, image_size: int) -> AugmentParams:
    """Draw parameters for a ``image_size`` px square image."""
    max_shift = MAX_SHIFT_FRACTION * image_size
    return AugmentParams(
        angle_deg=float(rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG)),
        scale=float(rng.uniform(*SCALE_RANGE)),
        shift_px=(float(rng.uniform(-max_shift, max_shift)), float(rng.uniform(-max_shift, max_shift))),
        brightness=float(rng.uniform(*INTENSITY_RANGE)),
        contrast=float(rng.uniform(*INTENSITY_RANGE)),
    )


def augment(image: torch.Tensor, masks: torch.Tensor, params: AugmentParams) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply ``params`` to a (1, H, W) float image in [0, 1] and its (N, H, W) uint8 masks."""
    geometry = dict(angle=params.angle_deg, translate=list(params.shift_px), scale=params.scale, shear=[0.0, 0.0])
    image = TF.affine(image, interpolation=InterpolationMode.BILINEAR, **geometry)
    if len(masks):
        masks = TF.affine(masks, interpolation=InterpolationMode.NEAREST, **geometry)
    mean = image.mean()
    image = ((image - mean) * params.contrast + mean) * params.brightness
    return image.clamp(0.0, 1.0), masks
