"""Lesion segmentation baselines for the CheXMix benchmark.

Every module of this package that defines ``build(variant, *, image_size, weights, download)``
is a model; ``--models NAME[:VARIANT]`` picks it by module name, so a third model is one new
file. See :mod:`baselines.base` for the interface the harness uses.
"""

from __future__ import annotations

import importlib
import pkgutil

from baselines.base import LesionModel, LesionPrediction
from chexmix_dataset.errors import ChexmixInputError

__all__ = ["LesionModel", "LesionPrediction", "available_models", "build_model", "parse_model_spec"]

_NOT_MODELS = {"base"}


def available_models() -> list[str]:
    """Names of the model modules in this package, e.g. ["mask_rcnn", "unet"]."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__)
                  if not m.name.startswith("_") and m.name not in _NOT_MODELS)


def parse_model_spec(spec: str) -> tuple[str, str | None]:
    """"mask_rcnn:resnet50" -> ("mask_rcnn", "resnet50"); "unet" -> ("unet", None)."""
    name, _, variant = spec.strip().partition(":")
    if name not in available_models():
        raise ChexmixInputError(f"unknown model {spec!r}; choose from {', '.join(available_models())}")
    return name, variant or None


def build_model(spec: str, *, image_size: int, weights: str, download: bool = True) -> LesionModel:
    """Build the model named by ``spec`` ("NAME[:VARIANT]") for square inputs of ``image_size`` px.

    ``weights`` is "imagenet", "coco" or "none"; with ``download=False`` the network has the
    pretrained structure (frozen layers, norm type) but random values, ready for a checkpoint.
    """
    name, variant = parse_model_spec(spec)
    module = importlib.import_module(f"{__name__}.{name}")
    return module.build(variant, image_size=image_size, weights=weights, download=download)
