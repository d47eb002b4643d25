"""The baselines: construction, training steps that learn, predictions, weight errors offline."""

from __future__ import annotations

import urllib.error

import numpy as np
import pytest
import segmentation_models_pytorch.encoders as smp_encoders
import torch
from helpers import disc
from torchvision.ops import FrozenBatchNorm2d

from baselines import LesionPrediction, available_models, build_model
from baselines.base import IMAGENET_MEAN, IMAGENET_STD, to_normalised_rgb
from baselines.unet import instances_from_probability
from chexmix_dataset.errors import ChexmixInputError
from chexmix_dataset.torch_dataset import detection_target

SIZE = 64


def one_lesion_batch() -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    lesion = disc((SIZE, SIZE), (24, 40), 7)
    image = torch.full((1, 1, SIZE, SIZE), 0.25)
    image[0, 0][torch.from_numpy(lesion)] = 0.8
    return image, [detection_target(torch.from_numpy(lesion)[None].to(torch.uint8))]


def check_prediction(model, images: torch.Tensor) -> None:
    (prediction,) = model.predict(images)
    assert prediction.lesion_probability.shape == (SIZE, SIZE)
    assert prediction.instance_probabilities.shape[1:] == (SIZE, SIZE)
    assert len(prediction.scores) == len(prediction.instance_probabilities)
    for values in (prediction.lesion_probability, prediction.instance_probabilities, prediction.scores):
        assert torch.all((values >= 0) & (values <= 1))


@pytest.mark.parametrize("spec, steps", [("unet", 6), ("mask_rcnn:resnet50", 4)])
def test_training_steps_overfit_one_image_and_predict_in_range(spec: str, steps: int) -> None:
    torch.manual_seed(0)
    model = build_model(spec, image_size=SIZE, weights="none").train()
    optimizer = model.make_optimizer()
    images, targets = one_lesion_batch()
    losses = []
    for _ in range(steps):
        loss = sum(model.training_losses(images, targets).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.8 * losses[0], losses
    check_prediction(model, images)
    assert model.training, "predict must leave the model in the mode it found it in"


def test_mask_rcnn_resnet101_follows_image_size_and_has_two_classes() -> None:
    model = build_model("mask_rcnn", image_size=96, weights="none")
    assert model.architecture == "mask_rcnn:resnet101"
    assert len(model.detector.backbone.body.layer3) == 23  # ResNet-101: 3, 4, 23, 3 blocks
    assert model.detector.transform.min_size == (96,) and model.detector.transform.max_size == 96
    assert model.detector.roi_heads.box_predictor.cls_score.out_features == 2
    assert model.detector.roi_heads.mask_predictor.mask_fcn_logits.out_channels == 2


def test_mask_rcnn_from_scratch_is_group_normalised_with_anchors_for_the_image_size() -> None:
    for spec, width in (("mask_rcnn", 256), ("mask_rcnn:resnet18", 128)):
        model = build_model(spec, image_size=128, weights="none")
        kinds = {type(m) for m in model.modules()}
        assert torch.nn.GroupNorm in kinds
        assert not kinds & {torch.nn.BatchNorm2d, FrozenBatchNorm2d}  # batches of 2-8 images: no batch norm
        assert all(p.requires_grad for p in model.parameters())  # every stage trains from scratch
        assert model.detector.backbone.out_channels == width
        generator = model.detector.rpn.anchor_generator
        assert generator.sizes == ((4,), (8,), (16,), (32,), (64,))  # 1/32 .. 1/2 of 128 px
        assert generator.aspect_ratios[0] == (0.5, 1.0, 2.0)
    pretrained = build_model("mask_rcnn:resnet50", image_size=512, weights="imagenet", download=False)
    assert any(isinstance(m, FrozenBatchNorm2d) for m in pretrained.modules())
    assert pretrained.detector.rpn.anchor_generator.sizes[0] == (16,)


def every_pixel_box_overlaps_an_anchor(generator, model, size: int) -> torch.Tensor:
    """(size - 2, size - 2) bool: whether the 1 x 1 px box of each pixel overlaps any anchor of
    ``generator`` on ``model``'s FPN levels for a ``size`` px image. The last two rows and
    columns are left out: torchvision centres anchors on the top-left corners of the stride
    cells, so at every image size they reach only to 2 px short of the bottom-right edge."""
    from torchvision.models.detection.image_list import ImageList
    from torchvision.ops import box_iou

    images = torch.zeros(1, 3, size, size)
    with torch.no_grad():
        features = list(model.detector.backbone(images).values())
    (anchors,) = generator(ImageList(images, [(size, size)]), features)
    y, x = torch.meshgrid(torch.arange(size - 2), torch.arange(size - 2), indexing="ij")
    pixels = torch.stack([x, y, x + 1, y + 1], dim=-1).reshape(-1, 4).float()
    return (box_iou(pixels, anchors).amax(dim=1) > 0).reshape(size - 2, size - 2)


def test_mask_rcnn_anchors_tile_small_images_so_every_lesion_pixel_meets_an_anchor() -> None:
    # A lesion overlapping no anchor makes torchvision's low-quality matching mark every anchor
    # (all tied at IoU 0) as its match; 1/32 of a 64 px side (2 px) on a 4 px grid leaves such gaps.
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    model = build_model("mask_rcnn:resnet18", image_size=SIZE, weights="none")
    generator = model.detector.rpn.anchor_generator
    assert generator.sizes == ((4,), (8,), (16,), (32,), (64,))  # each level's stride, not 1/32..1/2 of 64 px
    assert bool(every_pixel_box_overlaps_an_anchor(generator, model, SIZE).all())
    too_small = AnchorGenerator(tuple((round(SIZE * f),) for f in (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2)),
                                generator.aspect_ratios)
    assert not bool(every_pixel_box_overlaps_an_anchor(too_small, model, SIZE).all())


def test_mask_rcnn_coco_structure_has_frozen_norms_without_epsilon() -> None:
    # The COCO weights predict as published only with epsilon 0 in every frozen batch norm;
    # ImageNet backbones keep torchvision's default. ResNet-50: stem + 16 blocks x 3 + 4 downsamples.
    def frozen_eps(model) -> list[float]:
        return [m.eps for m in model.modules() if isinstance(m, FrozenBatchNorm2d)]

    coco = frozen_eps(build_model("mask_rcnn:resnet50", image_size=SIZE, weights="coco", download=False))
    imagenet = frozen_eps(build_model("mask_rcnn:resnet50", image_size=SIZE, weights="imagenet", download=False))
    assert len(coco) == len(imagenet) == 53
    assert set(coco) == {0.0}
    assert set(imagenet) == {1e-5}


def test_mask_rcnn_lesion_area_follows_the_score_threshold() -> None:
    model = build_model("mask_rcnn:resnet18", image_size=SIZE, weights="none")
    instances = torch.zeros(2, 8, 8)
    instances[0, :2, :2] = 0.9
    instances[1, 4:, 4:] = 0.7
    prediction = LesionPrediction(instances.amax(0), instances, torch.tensor([0.8, 0.3]), 0.5)
    assert model.lesion_area(prediction, 0.5).sum() == 4  # only the instance scoring 0.8
    assert model.lesion_area(prediction, 0.2).sum() == 4 + 16
    assert model.lesion_area(prediction, 0.9).sum() == 0


def test_models_are_found_by_module_name() -> None:
    assert {"mask_rcnn", "unet"} <= set(available_models())
    assert "base" not in available_models()
    with pytest.raises(ChexmixInputError, match="unknown model 'segformer'"):
        build_model("segformer", image_size=SIZE, weights="none")
    with pytest.raises(ChexmixInputError, match="unknown Mask R-CNN backbone"):
        build_model("mask_rcnn:resnet152", image_size=SIZE, weights="none")


def test_weight_choices_that_do_not_exist_are_refused() -> None:
    with pytest.raises(ChexmixInputError, match="only for the ResNet-50-FPN"):
        build_model("mask_rcnn", image_size=SIZE, weights="coco")
    with pytest.raises(ChexmixInputError, match="coco is not available for unet"):
        build_model("unet", image_size=SIZE, weights="coco")
    with pytest.raises(ChexmixInputError, match="multiple of 32"):
        build_model("unet", image_size=100, weights="none")


def test_offline_downloads_name_the_alternatives(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    # torchvision fetches through torch.hub; an empty hub folder so that no cached weights answer.
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch-hub"))
    monkeypatch.setattr(smp_encoders, "hf_hub_download", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    for spec, weights in (("mask_rcnn:resnet50", "imagenet"), ("mask_rcnn:resnet50", "coco"), ("unet", "imagenet")):
        with pytest.raises(ChexmixInputError, match=r"cannot download .*--weights none.*--weights PATH"):
            build_model(spec, image_size=SIZE, weights=weights)


def test_grayscale_is_replicated_and_imagenet_normalised() -> None:
    images = torch.rand(2, 1, 8, 8)
    rgb = to_normalised_rgb(images)
    assert rgb.shape == (2, 3, 8, 8)
    for channel in range(3):
        expected = (images[:, 0] - IMAGENET_MEAN[channel]) / IMAGENET_STD[channel]
        torch.testing.assert_close(rgb[:, channel], expected)


def test_unet_instances_are_connected_components_scored_by_mean_probability() -> None:
    probability = torch.zeros(20, 20)
    probability[2:5, 2:6] = 0.9  # 12 px at 0.9
    probability[10:14, 10:12] = 0.6  # 8 px, 4 of them at 0.8: mean 0.7
    probability[10:12, 10:12] = 0.8
    prediction = instances_from_probability(probability)
    assert prediction.scores.tolist() == pytest.approx([0.9, 0.7])
    areas = (prediction.instance_probabilities > 0.5).sum(dim=(1, 2)).tolist()
    assert areas == [12, 8]
    assert torch.equal(prediction.lesion_probability, probability)


@pytest.mark.parametrize("spec", ["unet", "mask_rcnn:resnet18"])
def test_evaluating_restores_the_mode_also_when_the_block_raises(spec: str) -> None:
    model = build_model(spec, image_size=64, weights="none")
    for mode in (True, False):
        model.train(mode)
        with pytest.raises(RuntimeError, match="inside"):
            with model.evaluating():
                assert not model.training and not any(m.training for m in model.modules())
                raise RuntimeError("inside")
        assert model.training is mode and all(m.training is mode for m in model.modules())
