"""Mask R-CNN with a ResNet-FPN backbone (torchvision), two classes: background and lesion.

The paper trains Matterport's Mask R-CNN with a ResNet-101 backbone; ``resnet101`` is the
default variant here. ``resnet50`` (the only backbone with COCO weights,
``MaskRCNN_ResNet50_FPN_Weights.COCO_V1``), ``resnet34`` and ``resnet18`` are selectable
(``--models mask_rcnn:resnet18``); the small ones suit tiny data sets and the CPU tests, where a
ResNet-101 cannot take enough optimizer steps in the time a test may take.

torchvision's transform resizes every image to ``min_size`` px; it is pinned to the benchmark's
``--image-size`` so that the network sees the images at the size the harness prepared.

Two recipes:

- Pretrained (``--weights imagenet|coco``): torchvision's choices (frozen batch norm, three
  trainable ResNet stages, its heads), Adam at 1e-4.
- From scratch (``--weights none``): batch statistics of 2-8 images are too noisy for batch norm,
  so every normalisation is GroupNorm (32 groups, or fewer for narrow layers): ResNet stages, FPN,
  a two-convolution RPN head and the four-convolution mask head (torchvision's "v2" heads); the
  box head stays torchvision's two fully connected layers, which need no normalisation (its
  convolutional "v2" box head costs over 200 GFLOP per batch of four and gained nothing here).
  All five stages train; AdamW at 3e-4 (weight decay 1e-4, none on norms and biases); the
  harness adds a linear warm-up, cosine decay and gradient clipping (:mod:`benchmark.train`).

Anchors follow the image size, not COCO's 800 px: one size per FPN level, 1/32 to 1/2 of the
image side (16-256 px at 512 px, 4-64 px at 128 px), aspect ratios 1:2, 1:1 and 2:1. A lesion
covering a third of a lung (a lung is about 0.4 x 0.6 of a frontal CXR) spans about a quarter
of the side, inside the range; the smallest lesions of the sample (a few px) meet 1/32.
No anchor is smaller than its level's stride (4-64 px for P2-P6), which only matters below
128 px: smaller anchors leave gaps between the grid points, a lesion of a pixel or two inside
a gap overlaps no anchor at all, and torchvision's low-quality matching then makes *every*
anchor a match of that lesion (all tie at IoU 0), so the RPN box loss jumps (on the sample at
64 px: loss_rpn_box_reg 1-4 per step instead of 0.03-0.1).
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import ResNet50_Weights, ResNet101_Weights, resnet
from torchvision.models.detection import MaskRCNN, MaskRCNN_ResNet50_FPN_Weights
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN, resnet_fpn_backbone
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.rpn import RPNHead
from torchvision.ops import FrozenBatchNorm2d

from baselines.base import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    WEIGHT_CHOICES,
    LesionModel,
    LesionPrediction,
    adamw,
    check_weights,
    downloading,
)
from chexmix_dataset.errors import ChexmixInputError

NAME = "mask_rcnn"
DEFAULT_VARIANT = "resnet101"
VARIANTS = ("resnet101", "resnet50", "resnet34", "resnet18")
IMAGENET_WEIGHTS = {"resnet101": ResNet101_Weights.IMAGENET1K_V1, "resnet50": ResNet50_Weights.IMAGENET1K_V1,
                    "resnet34": resnet.ResNet34_Weights.IMAGENET1K_V1, "resnet18": resnet.ResNet18_Weights.IMAGENET1K_V1}
NUM_CLASSES = 2  # background, lesion
COCO_NUM_CLASSES = 91
#: instances scoring at least this much form the predicted lesion area, unless the harness
#: chose another threshold on a validation part of the training split.
SCORE_THRESHOLD = 0.5
#: a pixel belongs to an instance where its (pasted) mask probability exceeds this.
MASK_THRESHOLD = 0.5
#: anchor side per FPN level (P2-P6) as a fraction of the image side.
ANCHOR_FRACTIONS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2)
#: px between anchor centres on FPN levels P2-P6 of a ResNet-FPN; the smallest anchor side per level.
FPN_STRIDES = (4, 8, 16, 32, 64)
ASPECT_RATIOS = (0.5, 1.0, 2.0)
SCRATCH_LR = 3e-4
#: region sampling for images holding a few lesions each: torchvision's 512 regions per image
#: (256 anchors for the RPN) are mostly background here, and the mask head's cost grows with them.
SMALL_DATA_SAMPLING = {"box_batch_size_per_image": 64, "rpn_batch_size_per_image": 128}
FPN_CHANNELS = 256
BOX_REPRESENTATION = 1024  # torchvision's width of the box head's two fully connected layers
#: the ResNet-18/34 variants (for tiny data sets and CPU runs) get a narrower FPN and heads.
SMALL_VARIANTS = ("resnet18", "resnet34")
SMALL_FPN_CHANNELS = 128
PRETRAINED_LR = 1e-4
#: the COCO Mask R-CNN weights date from before torchvision's frozen batch norm used an epsilon
#: (its default became 1e-5 with pytorch/vision#2933); they predict as published only with 0.
COCO_FROZEN_NORM_EPS = 0.0


def frozen_norm_eps(model: nn.Module, eps: float) -> None:
    """Set the epsilon of every frozen batch norm in ``model`` (what torchvision's private
    ``overwrite_eps`` does when it loads these weights)."""
    for module in model.modules():
        if isinstance(module, FrozenBatchNorm2d):
            module.eps = eps


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with 32 groups of channels (as in Wu & He 2018), fewer for narrow layers."""
    return nn.GroupNorm(min(32, channels // 4), channels)


class MaskRCNNLesions(LesionModel):
    """Mask R-CNN on grayscale X-rays; see :mod:`baselines.base` for the interface.

    ``threshold`` is the instance score from which instances form the lesion area.
    """

    threshold_kind = "instance score"

    def __init__(self, detector: MaskRCNN, variant: str, lr: float, threshold: float = SCORE_THRESHOLD) -> None:
        super().__init__()
        self.detector = detector
        self.architecture = f"{NAME}:{variant}"
        self.lr = lr
        self.threshold = threshold

    def training_losses(self, images: torch.Tensor, targets: list[dict[str, torch.Tensor]]
                        ) -> dict[str, torch.Tensor]:
        return self.detector(list(images.expand(-1, 3, -1, -1)), targets)

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> list[LesionPrediction]:
        with self.evaluating():
            outputs = self.detector(list(images.expand(-1, 3, -1, -1)))
        predictions = []
        for output in outputs:
            instances, scores = output["masks"][:, 0].float(), output["scores"].float()
            # The lesion probability is the pixel-wise maximum of the confident instances.
            confident = instances[scores >= self.threshold]
            lesion = confident.amax(dim=0) if len(confident) else instances.new_zeros(instances.shape[-2:])
            predictions.append(LesionPrediction(lesion, instances, scores, MASK_THRESHOLD))
        return predictions

    def confident_instances(self, prediction: LesionPrediction) -> torch.Tensor:
        return prediction.scores >= self.threshold

    def lesion_area(self, prediction: LesionPrediction, threshold: float) -> torch.Tensor:
        instances = prediction.instance_probabilities[prediction.scores >= threshold]
        if not len(instances):
            return torch.zeros(prediction.instance_probabilities.shape[-2:], dtype=torch.bool,
                               device=prediction.scores.device)
        return (instances > MASK_THRESHOLD).any(dim=0)

    def make_optimizer(self) -> torch.optim.Optimizer:
        # Adam-type, not torchvision's SGD recipe: with batches of a few images, SGD at detection
        # learning rates diverged within a few steps from scratch; AdamW with warm-up does not.
        return adamw(self, self.lr)


def anchor_generator(image_size: int) -> AnchorGenerator:
    """Anchors for ``image_size`` px images, one size (px) per FPN level, never below the level's
    stride so that the anchors of every level tile the image (see the module docstring)."""
    sizes = tuple((max(stride, round(fraction * image_size)),)
                  for fraction, stride in zip(ANCHOR_FRACTIONS, FPN_STRIDES))
    return AnchorGenerator(sizes, (ASPECT_RATIOS,) * len(sizes))


def scratch_detector(variant: str, image_size: int) -> MaskRCNN:
    """A randomly initialised Mask R-CNN normalised by GroupNorm throughout (no pretrained structure)."""
    body = getattr(resnet, variant)(weights=None, norm_layer=group_norm)
    channels = SMALL_FPN_CHANNELS if variant in SMALL_VARIANTS else FPN_CHANNELS
    stage_channels = [body.inplanes // 8 * 2**i for i in range(4)]  # inplanes: the last stage's width
    backbone = BackboneWithFPN(body, {f"layer{k}": str(k - 1) for k in range(1, 5)}, stage_channels, channels,
                               norm_layer=group_norm)  # every stage trains
    anchors = anchor_generator(image_size)
    return MaskRCNN(
        backbone,
        min_size=image_size,
        max_size=image_size,
        image_mean=list(IMAGENET_MEAN),
        image_std=list(IMAGENET_STD),
        rpn_anchor_generator=anchors,
        rpn_head=RPNHead(channels, anchors.num_anchors_per_location()[0], conv_depth=2),
        mask_head=MaskRCNNHeads(channels, [channels] * 4, 1, norm_layer=group_norm),
        box_predictor=FastRCNNPredictor(BOX_REPRESENTATION, NUM_CLASSES),
        mask_predictor=MaskRCNNPredictor(channels, channels, NUM_CLASSES),
        **SMALL_DATA_SAMPLING,
    )


def pretrained_detector(variant: str, image_size: int, weights: str, download: bool) -> MaskRCNN:
    """torchvision's Mask R-CNN structure for ImageNet or COCO weights (fetched when ``download``)."""
    backbone_weights = IMAGENET_WEIGHTS[variant] if weights == "imagenet" and download else None
    with downloading(f"ImageNet weights for {variant}"):
        backbone = resnet_fpn_backbone(backbone_name=variant, weights=backbone_weights,
                                       norm_layer=FrozenBatchNorm2d, trainable_layers=3)
    detector = MaskRCNN(
        backbone,
        num_classes=COCO_NUM_CLASSES if weights == "coco" else NUM_CLASSES,
        min_size=image_size,
        max_size=image_size,
        image_mean=list(IMAGENET_MEAN),
        image_std=list(IMAGENET_STD),
        # COCO's anchors belong to the COCO weights; ImageNet runs get anchors for lesions.
        **({} if weights == "coco" else {"rpn_anchor_generator": anchor_generator(image_size)}),
    )
    if weights == "coco":
        if download:
            with downloading("COCO weights for Mask R-CNN ResNet-50-FPN"):
                state = MaskRCNN_ResNet50_FPN_Weights.COCO_V1.get_state_dict(progress=True, check_hash=True)
            detector.load_state_dict(state)
        frozen_norm_eps(detector, COCO_FROZEN_NORM_EPS)
        box_features = detector.roi_heads.box_predictor.cls_score.in_features
        detector.roi_heads.box_predictor = FastRCNNPredictor(box_features, NUM_CLASSES)
        detector.roi_heads.mask_predictor = MaskRCNNPredictor(256, 256, NUM_CLASSES)
    return detector


def build(variant: str | None, *, image_size: int, weights: str, download: bool = True) -> MaskRCNNLesions:
    """A two-class Mask R-CNN for ``image_size`` px square inputs.

    Args:
        variant: ResNet depth of the FPN backbone, "resnet101" (default), "resnet50", "resnet34"
            or "resnet18".
        image_size: side of the (square) input images in px.
        weights: "imagenet" (backbone), "coco" (whole detector, ResNet-50 only) or "none" (the
            from-scratch recipe of the module docstring).
        download: False builds the same network without fetching weights (to load a checkpoint).
    """
    variant = variant or DEFAULT_VARIANT
    if variant not in VARIANTS:
        raise ChexmixInputError(f"unknown Mask R-CNN backbone {variant!r}; choose one of {', '.join(VARIANTS)}")
    check_weights(weights, WEIGHT_CHOICES, f"{NAME}:{variant}")
    if weights == "coco" and variant != "resnet50":
        raise ChexmixInputError(
            f"--weights coco exists only for the ResNet-50-FPN Mask R-CNN (COCO_V1), not {variant}; "
            "use --models mask_rcnn:resnet50 or --weights imagenet"
        )
    if weights == "none":
        return MaskRCNNLesions(scratch_detector(variant, image_size), variant, SCRATCH_LR)
    return MaskRCNNLesions(pretrained_detector(variant, image_size, weights, download), variant, PRETRAINED_LR)
