"""U-Net with a ResNet encoder (segmentation-models-pytorch) predicting one binary lesion mask.

ResNet-18 is the default encoder, as in the U-Net baseline the paper compares with; "resnet34"
and "resnet50" are selectable (``--models unet:resnet34``). The input side must be a multiple of
32 px (five downsamplings).

Lesion instances, which COCO AP needs, are the connected components of the thresholded
probability map, each scored by its mean probability. ``threshold`` (a lesion probability, 0.5
unless the harness chose one on a validation part of the training split) makes the cut.

Recipe (the same with or without ImageNet weights, as smp's U-Net uses batch norm and trains
well with it at batch sizes of a few images): BCE plus soft Dice, AdamW at 1e-3 (weight decay
1e-4, none on norms and biases), with the harness's warm-up, cosine decay and gradient clipping.
"""

from __future__ import annotations

import numpy as np
import segmentation_models_pytorch as smp
import torch
from scipy import ndimage
from torch.nn import functional as F

from baselines.base import LesionModel, LesionPrediction, adamw, check_weights, downloading, to_normalised_rgb
from chexmix_dataset.errors import ChexmixInputError

NAME = "unet"
DEFAULT_VARIANT = "resnet18"
VARIANTS = ("resnet18", "resnet34", "resnet50")
MASK_THRESHOLD = 0.5
MAX_INSTANCES = 100
LR = 1e-3


class UNetLesions(LesionModel):
    """Binary lesion U-Net; see :mod:`baselines.base` for the interface."""

    threshold_kind = "lesion probability"

    def __init__(self, network: smp.Unet, variant: str, threshold: float = MASK_THRESHOLD) -> None:
        super().__init__()
        self.network = network
        self.architecture = f"{NAME}:{variant}"
        self.threshold = threshold

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) lesion logits for (B, 1, H, W) images in [0, 1]."""
        return self.network(to_normalised_rgb(images))

    def training_losses(self, images: torch.Tensor, targets: list[dict[str, torch.Tensor]]
                        ) -> dict[str, torch.Tensor]:
        lesion = torch.stack([t["masks"].amax(dim=0) if len(t["masks"]) else
                              images.new_zeros(images.shape[-2:]) for t in targets]).float()[:, None]
        logits = self.logits(images).float()
        probability = logits.sigmoid()
        # Soft Dice over the whole batch: lesions are small, so plain BCE alone favours "no lesion".
        overlap = (probability * lesion).sum()
        soft_dice = 1 - (2 * overlap + 1) / (probability.sum() + lesion.sum() + 1)
        return {"loss_bce": F.binary_cross_entropy_with_logits(logits, lesion), "loss_dice": soft_dice}

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> list[LesionPrediction]:
        with self.evaluating():
            probabilities = self.logits(images).float().sigmoid()[:, 0]
        return [instances_from_probability(p, self.threshold) for p in probabilities]

    def lesion_area(self, prediction: LesionPrediction, threshold: float) -> torch.Tensor:
        return prediction.lesion_probability > threshold

    def make_optimizer(self) -> torch.optim.Optimizer:
        return adamw(self, LR)


def instances_from_probability(probability: torch.Tensor, threshold: float = MASK_THRESHOLD,
                               max_instances: int = MAX_INSTANCES) -> LesionPrediction:
    """Connected components (8-connected) of ``probability > threshold`` as scored instances.

    Each component is scored by its mean probability; the ``max_instances`` best are kept
    (COCO AP looks at no more than 100 detections per image). The prediction carries
    ``threshold`` as its mask threshold.
    """
    probability_np = probability.float().cpu().numpy()
    labels, count = ndimage.label(probability_np > threshold, structure=np.ones((3, 3)))
    component_ids = np.arange(1, count + 1)
    scores = np.asarray(ndimage.mean(probability_np, labels, component_ids), dtype=np.float32).reshape(-1)
    best = component_ids[np.argsort(-scores, kind="stable")[:max_instances]]
    labels_t = torch.from_numpy(labels).to(probability.device)
    components = torch.from_numpy(best).to(probability.device)[:, None, None] == labels_t
    return LesionPrediction(probability, probability * components,
                            torch.from_numpy(scores[best - 1]).to(probability.device), threshold)


def build(variant: str | None, *, image_size: int, weights: str, download: bool = True) -> UNetLesions:
    """A ResNet-encoder U-Net for ``image_size`` px square inputs (a multiple of 32).

    Args:
        variant: encoder, "resnet18" (default), "resnet34" or "resnet50".
        image_size: side of the (square) input images in px.
        weights: "imagenet" (encoder) or "none".
        download: False builds the same network without fetching weights (to load a checkpoint).
    """
    variant = variant or DEFAULT_VARIANT
    if variant not in VARIANTS:
        raise ChexmixInputError(f"unknown U-Net encoder {variant!r}; choose one of {', '.join(VARIANTS)}")
    check_weights(weights, ("imagenet", "none"), f"{NAME}:{variant}")
    if image_size % 32:
        raise ChexmixInputError(f"--image-size {image_size} must be a multiple of 32 px for the U-Net")
    with downloading(f"ImageNet weights for the {variant} encoder"):
        network = smp.Unet(variant, encoder_weights="imagenet" if weights == "imagenet" and download else None,
                           in_channels=3, classes=1)
    return UNetLesions(network, variant)
