"""The training loop learns: each model overfits four sample images, and Mask R-CNN from scratch
finds lesions on the sample benchmark (the classic checks that a loop and its recipe can learn).

Mask R-CNN runs as its ResNet-18-FPN variant here: the paper's ResNet-101-FPN (the default for
real runs) cannot take enough optimizer steps on a CPU in the time a test may take.
"""

from __future__ import annotations

import json

import datasets
import pytest
import torch

from baselines import build_model
from benchmark.data import LesionDataset, collate
from benchmark.evaluate import evaluate_split
from benchmark.train import make_scaler, make_scheduler, train_step
from chexmix_dataset.builder import load_chexmix
from chexmix_dataset.cli import main

SIZE = 128
#: four stand-in CXRs of the sample's X-rays-only training split, each with 1-4 lesions.
OVERFIT_ROWS = [0, 3, 7, 10]


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on a CPU shared with other jobs, two threads oversubscribe it (measured
    4-10x slower steps on the 2-core CI machine)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def hf_cache(tmp_path_factory) -> str:
    cache = str(tmp_path_factory.mktemp("hf-cache"))
    previous, datasets.config.HF_DATASETS_CACHE = datasets.config.HF_DATASETS_CACHE, cache
    yield cache
    datasets.config.HF_DATASETS_CACHE = previous


@pytest.fixture(scope="module")
def four_sample_images(hf_cache) -> datasets.Dataset:
    rows = load_chexmix("sample", split="60/40", seed=0, ct_fraction=0)["train"].select(OVERFIT_ROWS)
    assert all(len(objects["id"]) for objects in rows["objects"])  # every image has lesions to learn
    return rows


@pytest.mark.parametrize("spec, steps", [("mask_rcnn:resnet18", 70), ("unet", 60)])
def test_each_model_overfits_four_sample_images(four_sample_images, spec: str, steps: int) -> None:
    torch.manual_seed(0)
    model = build_model(spec, image_size=SIZE, weights="none")
    images, targets = collate([LesionDataset(four_sample_images, SIZE)[i] for i in range(len(four_sample_images))])
    optimizer = model.make_optimizer()
    scheduler = make_scheduler(optimizer, steps)
    scaler = make_scaler(torch.device("cpu"))
    model.train()
    losses = [train_step(model, optimizer, scaler, scheduler, images, targets) for _ in range(steps)]
    print(f"{spec}: loss every 10 steps {[round(v, 3) for v in losses[::10]]} ... {losses[-1]:.3f}")
    assert losses[-1] < 0.5 * losses[0]
    # Scored as the benchmark scores a test split: at the images' own size, the default threshold.
    scores = evaluate_split(model, four_sample_images, SIZE, torch.device("cpu"), batch_size=4,
                            progress=False).scores
    print(f"{spec}: IoU per image {[round(p['iou'], 3) for p in scores['per_image']]}")
    assert scores["iou_mean"] >= 0.7, scores["per_image"]


def test_mask_rcnn_from_scratch_finds_lesions_on_the_sample_benchmark(hf_cache, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    assert main(["bench", "--config", "sample", "--image-size", str(SIZE), "--epochs", "12", "--batch-size", "4",
                 "--models", "mask_rcnn:resnet18", "--weights", "none", "--device", "cpu", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("plan: 1 cell(s) x 1 model(s) x 1 seed(s) = 1 run(s); 12 epoch(s) each at 128 px")
    assert "checkpoints of mask_rcnn:resnet18: last.pt about" in printed
    (run,) = json.loads((out / "results.json").read_text())["runs"]
    print(f"train loss per epoch {[round(v, 3) for v in run['train_loss']]}, validation IoU "
          f"{[round(v, 3) for v in run['validation_iou']]}, threshold {run['threshold']} (epoch {run['best_epoch']}), "
          f"test IoU {run['iou_mean']:.3f}")
    assert run["threshold_kind"] == "instance score" and run["threshold_rule"].startswith("validation")
    assert run["train_loss"][-1] < 0.6 * run["train_loss"][0]
    assert run["iou_mean"] > 0.0
