"""Mask R-CNN with a ResNet-FPN backbone (torchvision), two classes: background and lesion.

The paper trains Matterport's Mask R-CNN with a ResNet-101 backbone; ``resnet101`` is the
default variant here and ``resnet50`` is selectable (``--models mask_rcnn:resnet50``), the only
backbone for which COCO weights exist (``MaskRCNN_ResNet50_FPN_Weights.COCO_V1``).

torchvision's transform resizes every image to ``min_size`` px; it is pinned to the benchmark's
``--image-size`` so that the network sees the images at the size the harness prepared.
Pretrained runs keep torchvision's choices (frozen batch norm, three trainable ResNet stages);
runs from scratch train every stage with ordinary batch norm.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import ResNet50_Weights, ResNet101_Weights
from torchvision.models.detection import MaskRCNN, MaskRCNN_ResNet50_FPN_Weights
from torchvision.models.detection._utils import overwrite_eps
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor
from torchvision.ops import FrozenBatchNorm2d

from chexmix_dataset.errors import ChexmixInputError

from .base import (IMAGENET_MEAN, IMAGENET_STD, WEIGHT_CHOICES, LesionModel, LesionPrediction, check_weights,
                   downloading)

NAME = "mask_rcnn"
DEFAULT_VARIANT = "resnet101"
IMAGENET_WEIGHTS = {"resnet101": ResNet101_Weights.IMAGENET1K_V1, "resnet50": ResNet50_Weights.IMAGENET1K_V1}
NUM_CLASSES = 2  # background, lesion
COCO_NUM_CLASSES = 91
#: instances scoring at least this much form the predicted lesion area (IoU, Dice).
SCORE_THRESHOLD = 0.5


class MaskRCNNLesions(LesionModel):
    """Mask R-CNN on grayscale X-rays; see :mod:`baselines.base` for the interface."""

    def __init__(self, detector: MaskRCNN, variant: str, score_threshold: float = SCORE_THRESHOLD) -> None:
        super().__init__()
        self.detector = detector
        self.architecture = f"{NAME}:{variant}"
        self.score_threshold = score_threshold

    def training_losses(self, images: torch.Tensor, targets: list[dict[str, torch.Tensor]]
                        ) -> dict[str, torch.Tensor]:
        return self.detector(list(images.expand(-1, 3, -1, -1)), targets)

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> list[LesionPrediction]:
        was_training = self.training
        self.eval()
        outputs = self.detector(list(images.expand(-1, 3, -1, -1)))
        self.train(was_training)
        predictions = []
        for image, output in zip(images, outputs):
            instance_probabilities = output["masks"][:, 0].float()
            scores = output["scores"].float()
            confident = instance_probabilities[scores >= self.score_threshold]
            lesion_probability = (confident.amax(dim=0) if len(confident)
                                  else image.new_zeros(image.shape[-2:], dtype=torch.float32))
            predictions.append(LesionPrediction(lesion_probability, instance_probabilities, scores))
        return predictions

    def make_optimizer(self) -> torch.optim.Optimizer:
        # Adam, not torchvision's SGD recipe: from scratch (batch norm, batches of a few images)
        # SGD at detection learning rates diverges within a few steps; Adam does not.
        return torch.optim.Adam([p for p in self.parameters() if p.requires_grad], lr=1e-4)


def build(variant: str | None, *, image_size: int, weights: str, download: bool = True) -> MaskRCNNLesions:
    """A two-class Mask R-CNN for ``image_size`` px square inputs.

    Args:
        variant: ResNet depth of the FPN backbone, "resnet101" (default) or "resnet50".
        image_size: side of the (square) input images in px.
        weights: "imagenet" (backbone), "coco" (whole detector, ResNet-50 only) or "none".
        download: False builds the same network without fetching weights (to load a checkpoint).
    """
    variant = variant or DEFAULT_VARIANT
    if variant not in IMAGENET_WEIGHTS:
        raise ChexmixInputError(f"unknown Mask R-CNN backbone {variant!r}; choose one of {', '.join(IMAGENET_WEIGHTS)}")
    check_weights(weights, WEIGHT_CHOICES, f"{NAME}:{variant}")
    if weights == "coco" and variant != "resnet50":
        raise ChexmixInputError(
            f"--weights coco exists only for the ResNet-50-FPN Mask R-CNN (COCO_V1), not {variant}; "
            "use --models mask_rcnn:resnet50 or --weights imagenet"
        )
    pretrained = weights != "none"
    backbone_weights = IMAGENET_WEIGHTS[variant] if weights == "imagenet" and download else None
    with downloading(f"ImageNet weights for {variant}"):
        backbone = resnet_fpn_backbone(
            backbone_name=variant,
            weights=backbone_weights,
            norm_layer=FrozenBatchNorm2d if pretrained else nn.BatchNorm2d,
            trainable_layers=3 if pretrained else 5,
        )
    detector = MaskRCNN(
        backbone,
        num_classes=COCO_NUM_CLASSES if weights == "coco" else NUM_CLASSES,
        min_size=image_size,
        max_size=image_size,
        image_mean=list(IMAGENET_MEAN),
        image_std=list(IMAGENET_STD),
    )
    if weights == "coco":
        if download:
            with downloading("COCO weights for Mask R-CNN ResNet-50-FPN"):
                state = MaskRCNN_ResNet50_FPN_Weights.COCO_V1.get_state_dict(progress=True, check_hash=True)
            detector.load_state_dict(state)
        overwrite_eps(detector, 0.0)  # as torchvision does for these weights
        box_features = detector.roi_heads.box_predictor.cls_score.in_features
        detector.roi_heads.box_predictor = FastRCNNPredictor(box_features, NUM_CLASSES)
        detector.roi_heads.mask_predictor = MaskRCNNPredictor(256, 256, NUM_CLASSES)
    return MaskRCNNLesions(detector, variant)
