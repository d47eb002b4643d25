"""The small interface every lesion segmentation baseline offers the benchmark harness.

A model takes a batch of grayscale chest X-rays as a float tensor (B, 1, H, W) with values in
[0, 1] (rows run head to feet, columns the image's left to right, in px) and

- ``training_losses(images, targets)`` returns a dict of scalar losses whose sum is minimised;
- ``predict(images)`` returns one :class:`LesionPrediction` per image, at the input size (px);
- ``make_optimizer()`` returns the optimizer with the model's own learning rate and decay;
- ``threshold`` (what it cuts: ``threshold_kind``) decides the predicted lesion area, and
  ``lesion_area(prediction, t)`` gives that area for any other threshold ``t``, so that the
  harness can choose ``threshold`` on a validation part of the training split.

Targets follow torchvision's detection convention, one dict per image: ``masks`` (N, H, W)
uint8 lesion instances, ``boxes`` (N, 4) float xyxy px, ``labels`` (N,) int64 (all 1, "lesion").

Grayscale input is replicated to three channels and normalised with the ImageNet mean and
standard deviation, so that ImageNet (or COCO) weights keep their pretrained first convolution.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from chexmix_dataset.errors import ChexmixInputError, first_line

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
WEIGHT_CHOICES = ("imagenet", "coco", "none")


@dataclass(frozen=True)
class LesionPrediction:
    """Lesions predicted on one image, all at the model's input size (H, W) in px.

    Attributes:
        lesion_probability: (H, W) float in [0, 1]; the predicted lesion area is ``> mask_threshold``.
        instance_probabilities: (N, H, W) float in [0, 1], one soft mask per lesion instance; the
            instance is ``> mask_threshold``.
        scores: (N,) float in [0, 1], the confidence of each instance (ranks them for COCO AP).
        mask_threshold: the cut of both probabilities (kept with them so that resizing to the
            image's own size before cutting gives the same area as the model's own cut).
    """

    lesion_probability: torch.Tensor
    instance_probabilities: torch.Tensor
    scores: torch.Tensor
    mask_threshold: float = 0.5


class LesionModel(nn.Module):
    """Base class of the baselines; see the module docstring for the contract."""

    #: identifies the trained weights: a checkpoint only loads into the same architecture.
    architecture: str = ""
    #: what ``threshold`` cuts, e.g. "instance score" or "lesion probability".
    threshold_kind: str = ""
    #: the operating threshold ``predict`` applies (0.5 until the harness chooses one).
    threshold: float = 0.5

    def training_losses(self, images: torch.Tensor, targets: list[dict[str, torch.Tensor]]
                        ) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> list[LesionPrediction]:
        raise NotImplementedError

    def lesion_area(self, prediction: LesionPrediction, threshold: float) -> torch.Tensor:
        """(H, W) bool lesion area of ``prediction`` (from ``predict``) had ``threshold`` been used."""
        raise NotImplementedError

    def confident_instances(self, prediction: LesionPrediction) -> torch.Tensor:
        """(N,) bool: the instances of ``prediction`` that make up its lesion area (all, unless a
        model also returns instances below its threshold, as Mask R-CNN does for COCO AP)."""
        return torch.ones(len(prediction.scores), dtype=torch.bool, device=prediction.scores.device)

    def make_optimizer(self) -> torch.optim.Optimizer:
        raise NotImplementedError

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[None]:
        """Eval mode inside the block (batch norm uses its running statistics, detectors return
        detections); the previous mode comes back afterwards, also when the block raises."""
        was_training = self.training
        self.eval()
        try:
            yield
        finally:
            self.train(was_training)


def adamw(model: nn.Module, lr: float, weight_decay: float = 1e-4) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; no weight decay on norms and biases (1-d tensors),
    which decay would pull towards zero scale instead of regularising."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW([{"params": [p for p in trainable if p.ndim > 1], "weight_decay": weight_decay},
                              {"params": [p for p in trainable if p.ndim <= 1], "weight_decay": 0.0}], lr=lr)


def to_normalised_rgb(images: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) grayscale in [0, 1] -> (B, 3, H, W), ImageNet-normalised."""
    mean = images.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = images.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (images.expand(-1, 3, -1, -1) - mean) / std


@contextlib.contextmanager
def downloading(what: str) -> Iterator[None]:
    """Turn a failed pretrained-weight download into one clear line for the user."""
    try:
        yield
    except OSError as exc:  # URLError, HF hub's LocalEntryNotFoundError, socket errors
        detail = first_line(exc)
        raise ChexmixInputError(
            f"cannot download {what} (offline?): {detail}; use --weights none to train from "
            "scratch, or --weights PATH with a local chexmix checkpoint"
        ) from None


def check_weights(weights: str, allowed: tuple[str, ...], model_name: str) -> None:
    if weights not in allowed:
        raise ChexmixInputError(
            f"--weights {weights} is not available for {model_name}; choose one of {', '.join(allowed)}"
        )
