"""Training-side harness rules: schedule, AMP scaler across devices, the validation part and its
threshold, last/best checkpoints with settings, images decoded once."""

from __future__ import annotations

import math
import re

import datasets
import numpy as np
import pytest
import torch
from helpers import disc_image_row, tiny_dataset_dict

import benchmark.data as bench_data
from baselines import LesionModel, LesionPrediction, build_model
from benchmark.checkpoints import estimated_sizes_mb, read_checkpoint
from benchmark.data import LesionDataset, make_loader
from benchmark.grid import BenchOptions
from benchmark.harness import run_benchmark
from benchmark.train import load_scaler_state, lr_factor
from benchmark.validation import THRESHOLDS, best_threshold, split_validation, validation_ious
from chexmix_dataset.dataset.features import FEATURES
from chexmix_dataset.errors import ChexmixInputError

FAST = BenchOptions(epochs=2, image_size=64, batch_size=2, progress=False)


def test_learning_rate_warms_up_linearly_then_follows_a_cosine_to_zero() -> None:
    total = 200  # warm-up: 10 % = 20 steps
    assert lr_factor(0, total) == pytest.approx(0.01)
    assert lr_factor(10, total) == pytest.approx(0.01 + 0.99 * 10 / 20)
    assert lr_factor(20, total) == pytest.approx(1.0)
    assert lr_factor(20 + 90, total) == pytest.approx(0.5)  # half way through the cosine
    assert lr_factor(200, total) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(1, 3) == pytest.approx(1.0)  # tiny runs: one warm-up step
    assert lr_factor(500, 100_000) == pytest.approx(1.0)  # warm-up capped at 500 steps


def test_scaler_state_of_a_cpu_run_resumes_under_amp_and_the_reverse() -> None:
    cpu_run = torch.amp.GradScaler("cpu", enabled=False)
    amp_run = torch.amp.GradScaler("cpu", enabled=True, init_scale=1024.0)  # stands in for a CUDA scaler
    assert cpu_run.state_dict() == {}  # what a CPU run saves
    load_scaler_state(amp_run, cpu_run.state_dict())  # torch itself raises on this empty state
    assert amp_run.get_scale() == 1024.0
    saved = torch.amp.GradScaler("cpu", enabled=True, init_scale=256.0).state_dict()
    load_scaler_state(amp_run, saved)
    assert amp_run.get_scale() == 256.0
    load_scaler_state(cpu_run, saved)  # an AMP run resumed on the CPU: nothing to restore
    assert not cpu_run.is_enabled()


def rows(count: int, size: int = 64) -> datasets.Dataset:
    return datasets.Dataset.from_list([disc_image_row(i, size, n_lesions=1 + i % 2) for i in range(count)],
                                      features=FEATURES)


def test_validation_part_is_patient_level_and_small_splits_fall_back() -> None:
    train = rows(14)  # patients hold two images each
    parts = split_validation(train)
    patients = train["patient_id"]
    assert sorted(parts.train + parts.validation) == list(range(14))
    assert not {patients[i] for i in parts.train} & {patients[i] for i in parts.validation}
    assert 2 <= len(parts.validation) <= 4 and parts.rule.startswith("validation")
    assert split_validation(train) == parts  # the same part for every model and seed
    small = split_validation(rows(9))
    assert small.train == list(range(9)) and small.validation == []
    assert small.rule.startswith("default 0.5")


class HalfSureOracle(LesionModel):
    """Probability 0.7 on the bright lesion discs, 0.3 elsewhere: right for thresholds in [0.3, 0.7)."""

    architecture = "oracle"

    def predict(self, images):
        return [LesionPrediction(torch.where(image[0] > 0.5, 0.7, 0.3), torch.zeros(0, *image.shape[-2:]),
                                 torch.zeros(0)) for image in images]

    def lesion_area(self, prediction, threshold):
        return prediction.lesion_probability > threshold


def test_threshold_is_chosen_where_validation_iou_is_best_ties_nearest_one_half() -> None:
    loader = make_loader(LesionDataset(rows(3), 64), 2, shuffle=False, seed=0, workers=0)
    ious = validation_ious(HalfSureOracle(), loader, torch.device("cpu"))
    for threshold, value in zip(THRESHOLDS, ious):
        if 0.3 <= threshold < 0.7:
            assert value == pytest.approx(1.0)
        elif threshold >= 0.7:
            assert value == 0.0
        else:  # everything predicted: IoU is the lesion fraction of the image
            assert 0.0 < value < 0.2
    assert best_threshold(ious) == (0.5, pytest.approx(1.0))
    assert best_threshold([0.0] * 8 + [0.4, 0.3, 0.4] + [0.0] * 8) == (0.45, 0.4)  # tie: 0.45 and 0.55


def test_images_are_decoded_and_resized_once_per_dataset(monkeypatch) -> None:
    calls = []
    real = bench_data.resize_row
    monkeypatch.setattr(bench_data, "resize_row", lambda row, size: calls.append(1) or real(row, size))
    dataset = LesionDataset(rows(3), 32, augment=True, seed=1)
    first = [dataset[(0, i)][0] for i in range(3)]
    for epoch in range(1, 4):
        for i in range(3):
            dataset[(epoch, i)]
    assert len(calls) == 3
    image, target = LesionDataset(rows(3), 32)[2]
    assert image.dtype == torch.float32 and target["masks"].shape[1:] == (32, 32)
    assert set(torch.unique(target["masks"]).tolist()) == {0, 1}
    assert not torch.equal(first[0], dataset[(5, 0)][0])  # augmentation still draws per epoch


def test_best_and_last_checkpoints_record_threshold_and_settings(tmp_path) -> None:
    data = tiny_dataset_dict(n_train=12, n_test=3)
    results = run_benchmark(data, ["unet"], FAST, tmp_path, split="60/40")
    (run,) = results["runs"]
    assert run["validation_images"] >= 2 and run["train_images"] + run["validation_images"] == 12
    assert run["threshold"] in THRESHOLDS and run["threshold_kind"] == "lesion probability"
    assert len(run["validation_iou"]) == 2
    assert run["best_epoch"] == int(np.argmax(run["validation_iou"])) + 1
    assert max(run["validation_iou_by_threshold"].values()) == pytest.approx(max(run["validation_iou"]))
    run_dir = tmp_path / "runs" / "custom-60-40-aug" / "unet" / "seed0"
    last, best = read_checkpoint(run_dir / "last.pt"), read_checkpoint(run_dir / "best.pt")
    assert last["epoch"] == 2 and {"optimizer", "scaler", "scheduler", "history"} <= set(last)
    assert best["epoch"] == run["best_epoch"] and best["threshold"] == run["threshold"]
    assert "optimizer" not in best  # weights only
    settings = {"image_size": 64, "batch_size": 2, "epochs": 2, "augment": True, "split": "60/40", "seed": 0}
    assert settings.items() <= last["settings"].items() and best["settings"] == last["settings"]

    # (Augmentation, split and seed name the run's folder, so they cannot differ within one.)
    for changed, message in (({"image_size": 96}, "image_size 64 (now 96)"), ({"batch_size": 4}, "batch_size 2 (now 4)"),
                             ({"epochs": 3}, "epochs 2 (now 3)")):
        options = BenchOptions(**{**FAST.__dict__, **changed, "weights": "last"})
        with pytest.raises(ChexmixInputError, match=r"cannot resume this run with other settings.*" + re.escape(message)):
            run_benchmark(data, ["unet"], options, tmp_path, split="60/40")
    assert math.isfinite(run["iou_mean"])


def test_plan_states_checkpoint_sizes_that_match_the_files_written(tmp_path, capsys) -> None:
    data = tiny_dataset_dict(n_train=4, n_test=2)
    run_benchmark(data, ["unet"], BenchOptions(epochs=1, image_size=64, progress=True, device="cpu"), tmp_path)
    printed = capsys.readouterr().out
    assert printed.startswith("plan: 1 cell(s) x 1 model(s) x 1 seed(s) = 1 run(s); 1 epoch(s) each at 64 px, "
                              "batch 2, on cpu")
    last_mb, best_mb = estimated_sizes_mb(build_model("unet", image_size=64, weights="none"))
    assert f"checkpoints of unet: last.pt about {last_mb:,.0f} MB (with optimizer state) + best.pt and " \
           f"model/model.safetensors about {best_mb:,.0f} MB each, per run" in printed
    run_dir = tmp_path / "runs" / "custom-custom-aug" / "unet" / "seed0"
    assert (run_dir / "last.pt").stat().st_size / 1e6 == pytest.approx(last_mb, rel=0.02)
    assert (run_dir / "best.pt").stat().st_size / 1e6 == pytest.approx(best_mb, rel=0.02)
    assert (run_dir / "model" / "model.safetensors").stat().st_size / 1e6 == pytest.approx(best_mb, rel=0.02)


def test_validation_part_keeps_the_cells_mix_of_cxrs_and_projections() -> None:
    # A small Mixed cell: 3 real CXRs and 12 CT projections, one image per patient, plus one
    # patient with both (a Radiopaedia case): the training part must keep CXRs in proportion.
    rows_ = [disc_image_row(i, 64, n_lesions=1, source="cxr") for i in range(3)]
    rows_ += [disc_image_row(i, 64, n_lesions=1, source="ct_projection") for i in range(3, 15)]
    rows_ += [disc_image_row(15, 64, n_lesions=1, source="cxr"), disc_image_row(16, 64, n_lesions=1, source="ct_projection")]
    for k, row in enumerate(rows_):
        row["patient_id"] = "both" if k >= 15 else f"patient-{k:03d}"
    train = datasets.Dataset.from_list(rows_, features=FEATURES)
    parts = split_validation(train)
    sources, patients = train["source"], train["patient_id"]
    assert sorted(parts.train + parts.validation) == list(range(len(train)))
    assert not {patients[i] for i in parts.train} & {patients[i] for i in parts.validation}
    fit_cxrs = sum(sources[i] == "cxr" for i in parts.train if patients[i] != "both")
    held_cxrs = sum(sources[i] == "cxr" for i in parts.validation if patients[i] != "both")
    fit_ct = sum(sources[i] == "ct_projection" for i in parts.train if patients[i] != "both")
    held_ct = sum(sources[i] == "ct_projection" for i in parts.validation if patients[i] != "both")
    # Each group is split 80/20 on its own (patient_split's rounding): 3 CXRs -> 2 + 1, 12 -> 10 + 2.
    assert (fit_cxrs, held_cxrs) == (2, 1) and (fit_ct, held_ct) == (10, 2)
    assert "per source" in parts.rule
