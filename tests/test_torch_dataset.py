"""The torch wrapper for users' own code: targets against pycocotools and analytic phantoms, and
a torchvision Mask R-CNN that trains on its DataLoader batches (rows without lesions included)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
from torchvision.transforms import v2

import chexmix_dataset
from chexmix_dataset.dataset.builder import load_chexmix
from chexmix_dataset.dataset.features import FEATURES
from chexmix_dataset.dataset.lesions import LesionInstance
from chexmix_dataset.dataset.rows import make_row
from chexmix_dataset.projector import ProjectorOptions
from chexmix_dataset.torch_dataset import CheXMixDetectionDataset, collate_detection_batch

REPO = Path(__file__).resolve().parents[1]
SMALL_SAMPLE = dict(sample_n_ct=4, sample_n_cxr=8, sample_ct_shape=(64, 64, 24), sample_cxr_size=96,
                    projector=ProjectorOptions(size_px=96))
# A non-square phantom: height 40, width 72 px, one lesion on rows 5..14 and columns 30..49.
PHANTOM_HW = (40, 72)
RECTANGLE = (slice(5, 15), slice(30, 50))


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> datasets.DatasetDict:
    return load_chexmix("sample", cache_dir=tmp_path_factory.mktemp("cache"), **SMALL_SAMPLE)


def phantom_rows() -> datasets.Dataset:
    """A row with one rectangular lesion on a non-square image, and a row without lesions."""
    image = np.full(PHANTOM_HW, 40, dtype=np.uint8)
    lesion = np.zeros(PHANTOM_HW, dtype=bool)
    lesion[RECTANGLE] = True
    image[lesion] = 220
    common = dict(source="cxr", origin="test/phantom", license="CC0-1.0")
    rows = [make_row(image, [LesionInstance(mask=lesion, lesion_type="consolidation")], image_id="rect",
                     patient_id="p0", **common),
            make_row(np.full(PHANTOM_HW, 90, dtype=np.uint8), [], image_id="empty", patient_id="p1", **common)]
    return datasets.Dataset.from_list(rows, features=FEATURES)


def extents(mask: np.ndarray) -> list[float]:
    """A mask's x0, y0, x1, y1 at pixel edges (px), from its nonzero pixels."""
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


@pytest.mark.parametrize("split", ["train", "test"])
def test_items_match_the_rows_decoded_by_pycocotools(sample, split: str) -> None:
    rows = sample[split]
    dataset = CheXMixDetectionDataset(rows)
    assert len(dataset) == len(rows)
    n_lesions = 0
    for index, row in enumerate(rows):
        image, target = dataset[index]
        height, width = row["height"], row["width"]
        grey = np.asarray(row["image"], dtype=np.float32) / 255.0
        assert image.dtype == torch.float32 and image.shape == (1, height, width)
        np.testing.assert_allclose(image[0].numpy(), grey, atol=1e-7)
        expected = [mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")})
                    for rle in row["objects"]["segmentation"]]
        n = len(expected)
        n_lesions += n
        assert target["masks"].dtype == torch.uint8 and target["masks"].shape == (n, height, width)
        for mask, truth in zip(target["masks"].numpy(), expected):
            np.testing.assert_array_equal(mask, truth)
        assert target["boxes"].dtype == torch.float32 and target["boxes"].shape == (n, 4)
        assert target["boxes"].tolist() == [extents(truth) for truth in expected]
        # The row's own COCO boxes (x, y, w, h) are the same boxes.
        assert target["boxes"].tolist() == [[x, y, x + w, y + h] for x, y, w, h in row["objects"]["bbox"]]
        assert target["labels"].dtype == torch.int64 and target["labels"].tolist() == [1] * n
        assert target["image_id"] == row["image_id"]
    assert n_lesions > 0


def test_analytic_phantom_and_a_row_without_lesions() -> None:
    dataset = CheXMixDetectionDataset(phantom_rows(), image_mode="RGB")
    image, target = dataset[0]
    height, width = PHANTOM_HW
    assert image.shape == (3, height, width)
    expected_grey = np.full(PHANTOM_HW, 40 / 255, dtype=np.float32)
    expected_grey[RECTANGLE] = 220 / 255
    for channel in image:
        np.testing.assert_allclose(channel.numpy(), expected_grey, atol=1e-7)
    assert target["boxes"].tolist() == [[30.0, 5.0, 50.0, 15.0]]  # columns 30..49, rows 5..14
    assert int(target["masks"].sum()) == 10 * 20 and target["masks"][0][RECTANGLE].all()
    assert target["labels"].tolist() == [1]

    image, target = dataset[1]
    assert image.shape == (3, height, width) and target["image_id"] == "empty"
    assert target["boxes"].shape == (0, 4) and target["boxes"].dtype == torch.float32
    assert target["masks"].shape == (0, height, width) and target["masks"].dtype == torch.uint8
    assert target["labels"].shape == (0,) and target["labels"].dtype == torch.int64


def test_a_torchvision_v2_transform_moves_boxes_and_masks_with_the_image() -> None:
    plain = CheXMixDetectionDataset(phantom_rows())
    flipped = CheXMixDetectionDataset(phantom_rows(), transform=v2.RandomHorizontalFlip(p=1.0))
    image, target = plain[0]
    flipped_image, flipped_target = flipped[0]
    torch.testing.assert_close(flipped_image, image.flip(-1))
    np.testing.assert_array_equal(flipped_target["masks"].numpy(), target["masks"].flip(-1).numpy())
    width = PHANTOM_HW[1]
    assert flipped_target["boxes"].tolist() == [[width - 50.0, 5.0, width - 30.0, 15.0]]
    assert flipped_target["boxes"].tolist() == [extents(mask) for mask in flipped_target["masks"].numpy()]
    assert flipped_target["image_id"] == "rect"


def test_mask_rcnn_trains_on_a_loader_batch_with_a_row_without_lesions(sample) -> None:
    rows = datasets.concatenate_datasets([sample["train"].select(range(2)), phantom_rows()])
    loader = torch.utils.data.DataLoader(CheXMixDetectionDataset(rows, image_mode="RGB"), batch_size=len(rows),
                                         collate_fn=collate_detection_batch)
    images, targets = next(iter(loader))
    assert isinstance(images, list) and len(images) == len(targets) == 4
    assert [len(t["boxes"]) for t in targets][2:] == [1, 0]
    torch.manual_seed(0)
    backbone = resnet_fpn_backbone(backbone_name="resnet18", weights=None, trainable_layers=5)
    model = MaskRCNN(backbone, num_classes=2, min_size=64, max_size=96)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    losses = model(images, targets)
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"}
    assert all(math.isfinite(float(loss.detach())) for loss in losses.values()), losses
    before = [p.detach().clone() for p in model.parameters()]
    optimizer.zero_grad()
    sum(losses.values()).backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    optimizer.step()
    changed = sum(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
    assert changed > 0


def test_wrapper_refuses_a_split_without_chexmix_columns_and_a_bad_mode() -> None:
    with pytest.raises(ValueError, match="image_mode"):
        CheXMixDetectionDataset(phantom_rows(), image_mode="RGBA")
    with pytest.raises(ValueError, match=r"\['objects'\]"):
        CheXMixDetectionDataset(phantom_rows().remove_columns("objects"))


def test_the_package_exports_the_wrapper_lazily_and_imports_without_torch() -> None:
    assert chexmix_dataset.CheXMixDetectionDataset is CheXMixDetectionDataset
    assert chexmix_dataset.collate_detection_batch is collate_detection_batch
    script = ("import sys, chexmix_dataset, chexmix_dataset.dataset.arrays, chexmix_dataset.dataset.builder\n"
              "assert 'torch' not in sys.modules, 'torch imported'\n"
              "chexmix_dataset.CheXMixDetectionDataset\n"
              "assert 'torch' in sys.modules\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr

