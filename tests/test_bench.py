"""The benchmark harness: metrics against oracles, augmentation geometry, outputs, resume, bad input."""

from __future__ import annotations

import argparse
import json
import math

import datasets
import numpy as np
import pytest
import torch
from helpers import disc, disc_image_row, tiny_dataset_dict
from PIL import Image

import benchmark.cli as bench_cli
import benchmark.harness as harness
import benchmark.runs as runs
from baselines import LesionModel
from baselines.unet import instances_from_probability
from benchmark.augment import AugmentParams, augment, sample_params
from benchmark.checkpoints import read_checkpoint
from benchmark.data import LesionDataset
from benchmark.evaluate import OVERLAY_IMAGES, evaluate_split
from benchmark.grid import BenchOptions
from benchmark.harness import run_benchmark
from benchmark.metrics import coco_segmentation_ap, dice, iou
from benchmark.train import train_one_epoch
from benchmark.validation import THRESHOLDS
from chexmix_dataset.cli import main
from chexmix_dataset.dataset.features import FEATURES
from chexmix_dataset.dataset.lesions import decode_rle
from chexmix_dataset.errors import ChexmixInputError
from chexmix_dataset.projector import ProjectorOptions

FAST = BenchOptions(epochs=2, image_size=64, batch_size=2, progress=False)


def square(shape: tuple[int, int], top: int, left: int, side: int) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[top:top + side, left:left + side] = True
    return mask


# --- metrics -------------------------------------------------------------------------------

def test_iou_and_dice_of_overlapping_squares_match_hand_counts() -> None:
    truth = square((40, 40), 0, 0, 10)  # 100 px
    predicted = square((40, 40), 5, 0, 10)  # 100 px, 50 shared
    assert iou(predicted, truth) == pytest.approx(50 / 150)
    assert dice(predicted, truth) == pytest.approx(2 * 50 / 200)
    assert iou(truth, truth) == dice(truth, truth) == 1.0
    assert iou(square((40, 40), 20, 20, 5), truth) == 0.0


def test_images_without_ground_truth_follow_the_documented_rule() -> None:
    empty = np.zeros((16, 16), dtype=bool)
    assert iou(empty, empty) == dice(empty, empty) == 1.0
    assert iou(square((16, 16), 0, 0, 2), empty) == dice(square((16, 16), 0, 0, 2), empty) == 0.0


def test_coco_ap_is_one_for_perfect_instances_and_counts_iou_thresholds() -> None:
    truths = [np.stack([square((40, 40), 2, 2, 10), square((40, 40), 20, 20, 10)]), np.stack([square((40, 40), 5, 25, 10)])]
    perfect = [(t, np.array([0.9] * len(t))) for t in truths]
    assert coco_segmentation_ap(truths, perfect) == {"ap": pytest.approx(1.0), "ap50": pytest.approx(1.0)}
    # Every prediction shifted 2 px sideways: IoU 80/120 = 0.67 passes thresholds .50-.65 (4 of 10).
    shifted = [(np.roll(t, 2, axis=2), s) for t, s in perfect]
    assert coco_segmentation_ap(truths, shifted) == {"ap": pytest.approx(0.4), "ap50": pytest.approx(1.0)}
    no_truth = [np.zeros((0, 40, 40), dtype=bool)]
    assert coco_segmentation_ap(no_truth, [(np.zeros((0, 40, 40), bool), np.zeros(0))]) == {"ap": None, "ap50": None}


# --- augmentation and data -----------------------------------------------------------------

def test_augmentation_moves_image_and_mask_together_as_the_affine_map_says() -> None:
    size, centre = 65, 32.0
    markers = [(12, 30), (50, 36)]  # (y, x): one above the centre, one below
    rng = np.random.default_rng(0)
    for _ in range(20):
        drawn = sample_params(rng, size)
        params = AugmentParams(drawn.angle_deg, drawn.scale, drawn.shift_px)  # geometry only
        theta = math.radians(params.angle_deg)  # clockwise on screen (y down)
        centroids_y = []
        for y, x in markers:
            image = torch.zeros(1, size, size)
            image[0, y - 1:y + 2, x - 1:x + 2] = 1.0
            moved_image, moved_mask = augment(image, (image > 0).to(torch.uint8), params)
            dx, dy = x - centre, y - centre
            expected_x = centre + params.scale * (math.cos(theta) * dx - math.sin(theta) * dy) + params.shift_px[0]
            expected_y = centre + params.scale * (math.sin(theta) * dx + math.cos(theta) * dy) + params.shift_px[1]
            mask_y, mask_x = np.argwhere(moved_mask[0].numpy()).mean(axis=0)
            weights = moved_image[0].numpy()
            image_y, image_x = (np.indices(weights.shape) * weights).sum(axis=(1, 2)) / weights.sum()
            assert (mask_x, mask_y) == (pytest.approx(expected_x, abs=1.0), pytest.approx(expected_y, abs=1.0))
            assert (image_x, image_y) == (pytest.approx(mask_x, abs=0.75), pytest.approx(mask_y, abs=0.75))
            centroids_y.append(mask_y)
        assert centroids_y[0] < centroids_y[1]  # never a vertical flip


def test_intensity_augmentation_leaves_masks_alone_and_stays_in_range() -> None:
    image = torch.linspace(0, 1, 64 * 64).reshape(1, 64, 64)
    masks = torch.from_numpy(disc((64, 64), (20, 20), 6))[None].to(torch.uint8)
    out_image, out_masks = augment(image, masks, AugmentParams(brightness=1.2, contrast=0.8))
    assert torch.equal(out_masks, masks)
    mean = image.mean()
    torch.testing.assert_close(out_image, (((image - mean) * 0.8 + mean) * 1.2).clamp(0, 1))


def test_dataset_targets_match_the_rows_and_augmentation_is_reproducible() -> None:
    split = tiny_dataset_dict(n_train=2, n_test=1, size=64)["train"]
    plain = LesionDataset(split, image_size=32)
    image, target = plain[1]
    row = split[1]
    expected = np.asarray(row["image"].resize((32, 32), Image.BILINEAR), dtype=np.float32) / 255
    assert image.shape == (1, 32, 32)
    assert np.abs(image[0].numpy() - expected).max() < 0.05
    assert len(target["masks"]) == len(row["objects"]["id"]) == len(target["boxes"])
    for mask, box in zip(target["masks"], target["boxes"]):
        ys, xs = np.nonzero(mask.numpy())
        assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    augmented = LesionDataset(split, image_size=32, augment=True, seed=3)
    again = LesionDataset(split, image_size=32, augment=True, seed=3)
    assert torch.equal(augmented[(4, 1)][0], again[(4, 1)][0])
    assert not torch.equal(augmented[(4, 1)][0], augmented[(5, 1)][0])


class BrightPixelOracle(LesionModel):
    """Predicts the tiny discs exactly: lesions are the bright pixels, one instance per disc."""

    architecture = "oracle"

    def predict(self, images):
        return [instances_from_probability((image[0] > 0.5).float()) for image in images]


def test_evaluation_scores_an_exact_model_perfectly_and_keeps_only_the_overlay_areas() -> None:
    lesions = [0, 1, 0, 2, 1, 0, 3, 1, 2, 0]  # per test row; 6 rows with lesions, 4 without
    rows = [disc_image_row(200 + i, 64, n_lesions=n) for i, n in enumerate(lesions)]
    split = datasets.Dataset.from_list(rows, features=FEATURES)
    evaluation = evaluate_split(BrightPixelOracle(), split, 64, torch.device("cpu"), batch_size=3, progress=False)
    scores = evaluation.scores
    assert [p["image_id"] for p in scores["per_image"]] == split["image_id"]
    assert [p["patient_id"] for p in scores["per_image"]] == split["patient_id"]
    assert [p["has_lesion"] for p in scores["per_image"]] == [n > 0 for n in lesions]
    assert all(p["iou"] == p["dice"] == 1.0 for p in scores["per_image"])
    truth_px = [int(np.asarray(row["mask"]).astype(bool).sum()) for row in split]
    assert [p["intersection_px"] for p in scores["per_image"]] == truth_px
    assert [p["union_px"] for p in scores["per_image"]] == truth_px
    assert scores["pooled_iou"] == scores["iou_lesion_mean"] == 1.0 and scores["iou_ci"] == [1.0, 1.0]
    assert scores["lesion_free_fraction"] == pytest.approx(0.4) and scores["test_patients"] == 5
    assert scores["ap"] == pytest.approx(1.0) and scores["ap50"] == pytest.approx(1.0)
    # Only the areas the overlay shows are kept: the first four rows with lesions.
    shown = [i for i, n in enumerate(lesions) if n][:OVERLAY_IMAGES]
    assert sorted(evaluation.lesion_areas) == shown
    for index in shown:
        truth = np.any([decode_rle(rle) for rle in split[index]["objects"]["segmentation"]], axis=0)
        assert np.array_equal(evaluation.lesion_areas[index], truth)


class DivergedModel(LesionModel):
    architecture = "diverged"

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(()))

    def training_losses(self, images, targets):
        return {"loss": self.weight * float("nan")}


def test_a_non_finite_training_loss_is_a_clear_input_error() -> None:
    model = DivergedModel()
    batches = [(torch.zeros(1, 1, 8, 8), [{"masks": torch.zeros(0, 8, 8, dtype=torch.uint8)}])]
    with pytest.raises(ChexmixInputError, match="training loss became nan.*learning rate"):
        train_one_epoch(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.amp.GradScaler("cpu", enabled=False),
                        batches, torch.device("cpu"), description="cell unet seed 0 epoch 1/1", progress=False)
    assert model.weight.item() == 1.0  # refused before the optimizer step touched the weights


# --- harness outputs -----------------------------------------------------------------------

def test_results_files_figures_and_numbers_agree(tmp_path) -> None:
    results = run_benchmark(tiny_dataset_dict(), ["unet"], FAST, tmp_path, training_dataset="Tiny discs",
                            config="tiny", split="60/40", augment=True)
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk == json.loads(json.dumps(results))
    (run,) = on_disk["runs"]
    assert {k: run[k] for k in ("config", "split", "seed", "model", "epochs", "augment")} == {
        "config": "tiny", "split": "60/40", "seed": 0, "model": "unet", "epochs": 2, "augment": True}
    assert torch.__version__.startswith(on_disk["versions"]["torch"])
    assert {"torchvision", "segmentation-models-pytorch", "pycocotools", "python"} <= set(on_disk["versions"])
    assert len(run["train_loss"]) == 2 and len(run["per_image"]) == 4
    assert run["iou_mean"] == pytest.approx(np.mean([p["iou"] for p in run["per_image"]]))
    assert run["dice_std"] == pytest.approx(np.std([p["dice"] for p in run["per_image"]]))
    assert {p["patient_id"] for p in run["per_image"]} == set(tiny_dataset_dict()["test"]["patient_id"])
    low, high = run["iou_ci"]
    assert low <= run["iou_mean"] <= high
    table = (tmp_path / "results.md").read_text()
    assert "| Training dataset | Split | Aug | Model | IoU [95% CI] | Dice [95% CI] | AP50 |" in table
    assert f"| Tiny discs | 60/40 | y | unet | {run['iou_mean']:.3f} [{low:.3f}, {high:.3f}] |" in table
    assert "no lesion is predicted" in table  # the empty-ground-truth rule is stated
    assert "resamples test *patients*" in table and "One seed per row" in table
    for name in ("overlays_tiny-discs-tiny-60-40-aug.png", "loss_curves.png", "iou_by_config.png"):
        with Image.open(tmp_path / "figures" / name) as figure:
            assert figure.format == "PNG" and figure.width > 200
    assert not list(tmp_path.rglob("*.partial"))


def test_a_run_killed_mid_epoch_resumes_from_its_last_checkpoint_and_matches(tmp_path, monkeypatch) -> None:
    data = tiny_dataset_dict()
    straight = run_benchmark(data, ["unet"], FAST, tmp_path / "straight")

    real_epoch = runs.train_one_epoch
    epochs_started = []

    def killed_after_one_step_of_epoch_two(model, optimizer, scaler, loader, device, **kwargs):
        epochs_started.append(1)
        if len(epochs_started) < 2:
            return real_epoch(model, optimizer, scaler, loader, device, **kwargs)

        def dying_loader():
            for step, batch in enumerate(loader):
                if step == 1:
                    raise KeyboardInterrupt  # as if killed, after one optimizer step of epoch 2
                yield batch
        return real_epoch(model, optimizer, scaler, dying_loader(), device, **kwargs)

    monkeypatch.setattr(runs, "train_one_epoch", killed_after_one_step_of_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(data, ["unet"], FAST, tmp_path / "killed")
    run_dir = tmp_path / "killed" / "runs" / "custom-custom-aug" / "unet" / "seed0"
    assert sorted(p.name for p in run_dir.glob("*.pt")) == ["best.pt", "last.pt"]
    assert read_checkpoint(run_dir / "last.pt")["epoch"] == 1
    assert not (tmp_path / "killed" / "results.json").exists()

    epochs_started.clear()
    monkeypatch.setattr(runs, "train_one_epoch",
                        lambda *a, **k: epochs_started.append(1) or real_epoch(*a, **k))
    resumed = run_benchmark(data, ["unet"], BenchOptions(**{**FAST.__dict__, "weights": "last"}), tmp_path / "killed")
    assert len(epochs_started) == 1  # only epoch 2 was trained again
    (a,), (b,) = straight["runs"], resumed["runs"]
    assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-5)
    assert [p["iou"] for p in b["per_image"]] == pytest.approx([p["iou"] for p in a["per_image"]], abs=1e-6)
    assert sorted(p.name for p in run_dir.glob("*.pt")) == ["best.pt", "last.pt"]  # one of each, not per epoch
    assert read_checkpoint(run_dir / "last.pt")["epoch"] == 2


def test_runs_resumed_before_their_first_checkpoint_start_from_the_initial_checkpoint(tmp_path, monkeypatch) -> None:
    data = tiny_dataset_dict()
    run_benchmark(data, ["unet"], BenchOptions(epochs=1, image_size=64, progress=False), tmp_path / "first")
    (checkpoint,) = (tmp_path / "first" / "runs").rglob("last.pt")
    from_checkpoint = BenchOptions(**{**FAST.__dict__, "weights": str(checkpoint)})
    straight = run_benchmark(data, ["unet"], from_checkpoint, tmp_path / "straight")
    assert json.loads((tmp_path / "straight" / "runs" / "init.json").read_text()) == {"weights": str(checkpoint)}
    assert straight["runs"][0]["initial_weights"] == straight["options"]["initial_weights"] == str(checkpoint)

    real_epoch = runs.train_one_epoch

    def killed_at_once(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runs, "train_one_epoch", killed_at_once)
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(data, ["unet"], from_checkpoint, tmp_path / "killed")
    assert not list((tmp_path / "killed" / "runs").rglob("*.pt"))  # nothing to resume from but init.json
    monkeypatch.setattr(runs, "train_one_epoch", real_epoch)
    resumed = run_benchmark(data, ["unet"], BenchOptions(**{**FAST.__dict__, "weights": "last"}), tmp_path / "killed")
    (a,), (b,) = straight["runs"], resumed["runs"]
    assert b["initial_weights"] == str(checkpoint) and b["weights"] == "last"
    assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-5)


# --- command line: bad input ---------------------------------------------------------------

@pytest.fixture
def tiny_configs(monkeypatch):
    """The CLI with a stand-in for the builder: every config is the tiny disc dataset."""
    loaded = []

    def load_config(config, data_dir, split, **options):
        loaded.append((config, split, options))
        return tiny_dataset_dict(), []

    monkeypatch.setattr(bench_cli, "load_config", load_config)
    return loaded


def bench(tmp_path, *extra: str) -> int:
    return main(["bench", "--image-size", "64", "--epochs", "1", "--out", str(tmp_path / "out"), *extra])


@pytest.mark.parametrize("arguments, message", [
    (["--config", "xrays_mixed"], "unknown --config 'xrays_mixed'"),
    (["--config", "sample", "--models", "unet,deeplab"], "unknown model 'deeplab'"),
    (["--config", "sample", "--split", "100/0"], "--split '100/0' must be"),
    (["--config", "sample", "--weights", "last"], "--weights last found no earlier run"),
    (["--config", "sample", "--models", "mask_rcnn", "--weights", "coco"], "only for the ResNet-50-FPN"),
    (["--config", "sample", "--weights", "missing.pt"], "checkpoint file does not exist"),
    (["--config", "sample", "--workers", "-1"], "--workers must be 0 or more, got -1"),
    (["--config", "sample", "--epochs", "0"], "--epochs must be at least 1"),
    (["--paper", "--split", "80/20"], "drop --split"),
    (["--paper", "--no-aug"], "drop --aug/--no-aug"),
    (["--sweep", "ct-fraction=0,1", "--paper"], "--paper and --sweep are separate experiments"),
    (["--sweep", "ct-fraction=0,1", "--config", "xrays_only"], "--config xrays_only cannot"),
    (["--sweep", "ct-fraction=0,1.5"], "value '1.5' must be a fraction in [0, 1]"),
    (["--sweep", "ct-fraction=0,a"], "value 'a' must be a fraction"),
    (["--sweep", "ct-fraction=0.5,1/2"], "names a fraction twice"),
    (["--sweep", "seeds=0,1"], "must be ct-fraction=F1,F2,..."),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, tiny_configs, arguments, message) -> None:
    assert bench(tmp_path, *arguments) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()
    assert not tiny_configs  # refused before any data was loaded


def test_corrupt_init_json_is_refused_when_resuming(tmp_path, capsys, tiny_configs) -> None:
    record = tmp_path / "out" / "runs" / "init.json"
    record.parent.mkdir(parents=True)
    record.write_text('{"weights": "imag')  # cut off mid-write by another tool
    assert bench(tmp_path, "--config", "sample", "--weights", "last") == 2
    err = capsys.readouterr().err
    assert f"{record}: is not the record of a benchmark's initial weights" in err
    assert err.count("\n") == 1 and "Traceback" not in err and not tiny_configs


@pytest.mark.parametrize("split, label", [("70:30", "70/30"), ("0.8", "80/20"), (" 60 / 40 ", "60/40")])
def test_split_spellings_of_the_builder_are_accepted(tmp_path, tiny_configs, monkeypatch, split, label) -> None:
    ran = []
    monkeypatch.setattr(harness, "run_grid", lambda cells, models, options, out, **_: ran.extend(cells) or {"runs": []})
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "results.md").write_text("stand-in\n")
    assert bench(tmp_path, "--config", "mixed", "--split", split, "--no-aug") == 0
    assert [(c.config, c.split, c.augment) for c in ran] == [("mixed", label, False)]
    assert tiny_configs == [("mixed", label, {})]


def test_split_leaving_test_empty_is_refused(tmp_path, capsys, monkeypatch) -> None:
    data = tiny_dataset_dict()
    empty = datasets.DatasetDict({"train": data["train"], "test": data["test"].select([])})
    monkeypatch.setattr(bench_cli, "load_config", lambda *a, **k: (empty, []))
    assert bench(tmp_path, "--config", "mixed", "--split", "90/10") == 2
    assert "leaves the test split empty" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_checkpoint_of_another_architecture_is_refused(tmp_path, capsys, tiny_configs) -> None:
    run_benchmark(tiny_dataset_dict(), ["unet"], BenchOptions(epochs=1, image_size=64, progress=False), tmp_path / "first")
    (checkpoint,) = (tmp_path / "first" / "runs").rglob("last.pt")
    assert bench(tmp_path, "--config", "sample", "--models", "mask_rcnn:resnet50", "--weights", str(checkpoint)) == 2
    err = capsys.readouterr().err
    assert f"{checkpoint}: checkpoint holds a unet:resnet18 model, not mask_rcnn:resnet50" in err
    assert not (tmp_path / "out").exists()


def test_paper_grid_on_the_sample_uses_its_xrays_only_counterpart(tmp_path, tiny_configs, monkeypatch) -> None:
    ran = []
    monkeypatch.setattr(harness, "run_grid", lambda cells, models, options, out, **_: ran.extend(cells) or {"runs": []})
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "results.md").write_text("stand-in\n")
    assert bench(tmp_path, "--paper", "--config", "sample") == 0
    grid = [(c.training_dataset, c.split, c.augment) for c in ran]
    assert grid == [("X-rays only", "60/40", True), ("Mixed", "60/40", True), ("X-rays only", "80/20", True),
                    ("Mixed", "80/20", True), ("X-rays only", "80/20", False), ("Mixed", "80/20", False)]
    assert ("sample", "80/20", {"ct_fraction": 0}) in tiny_configs and ("sample", "80/20", {}) in tiny_configs
    assert len(tiny_configs) == 4  # the two 80/20 cells of each dataset share one load
    assert ran[2].dataset is ran[4].dataset and ran[3].dataset is ran[5].dataset


def test_sweep_plans_one_cell_per_fraction_on_the_same_split(tmp_path, tiny_configs, monkeypatch) -> None:
    ran = []
    monkeypatch.setattr(harness, "run_grid", lambda cells, models, options, out, **_: ran.extend(cells) or {"runs": []})
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "results.md").write_text("stand-in\n")
    assert bench(tmp_path, "--sweep", "ct-fraction=0, 0.5,5/6,1", "--split", "80/20") == 0
    assert [(c.config, c.split, c.augment, c.ct_fraction) for c in ran] == [
        ("mixed", "80/20", True, 0.0), ("mixed", "80/20", True, 0.5), ("mixed", "80/20", True, 5 / 6),
        ("mixed", "80/20", True, 1.0)]
    assert tiny_configs == [("mixed", "80/20", {"ct_fraction": f}) for f in (0.0, 0.5, 5 / 6, 1.0)]
    assert len({c.slug for c in ran}) == 4  # every fraction trains in its own run folder


def test_help_states_every_default(capsys) -> None:
    parser = argparse.ArgumentParser(prog="chexmix bench")
    bench_cli.add_arguments(parser)
    options = [action for action in parser._actions if action.dest != "help"]
    assert all("default:" in action.help or "(required)" in action.help for action in options), \
        [action.dest for action in options if "default:" not in action.help]
    for action in options:
        if action.default not in (None, False) and "%(default)" not in action.help:
            assert f"default: {action.default}" in action.help  # a default written out matches the real one
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    shown = capsys.readouterr().out
    assert "(default: 30)" in shown and "(default: 512)" in shown and "(default: mask_rcnn,unet)" in shown


# --- end to end ----------------------------------------------------------------------------

def test_chexmix_bench_on_the_sample_config_end_to_end(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    out = tmp_path / "out"
    assert main(["bench", "--config", "sample", "--image-size", "128", "--epochs", "1", "--models", "unet",
                 "--device", "cpu", "--out", str(out)]) == 0
    shown = capsys.readouterr().out
    # The sample trains on 2 CXR patients (both kept) + CT projections, and is tested on CXRs.
    assert "| sample † | 60/40 | y | unet |" in shown
    assert "† Warning: sample (60/40, aug y, unet) chose its threshold on CT projections only" in shown
    from chexmix_dataset.dataset.builder import load_chexmix

    sample = load_chexmix("sample", split="60/40", seed=0)
    (run,) = json.loads((out / "results.json").read_text())["runs"]
    assert [p["image_id"] for p in run["per_image"]] == sample["test"]["image_id"]
    assert run["train_images"] + run["validation_images"] == len(sample["train"]) and run["device"] == "cpu"
    assert run["validation_images"] >= 1 and run["threshold_rule"].startswith("validation")
    assert run["threshold"] in THRESHOLDS and run["threshold_kind"] == "lesion probability"
    assert all(0.0 <= p["iou"] <= 1.0 and 0.0 <= p["dice"] <= 1.0 for p in run["per_image"])
    assert (out / "figures" / "overlays_sample-60-40-aug.png").is_file()


def test_ct_fraction_sweep_on_the_sample_draws_the_replacement_curve(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    real_load = bench_cli.load_config
    # The real builder and mix, on a smaller sample (fewer and smaller phantoms) to stay fast.
    small = {"sample_n_ct": 8, "sample_n_cxr": 10, "sample_ct_shape": (64, 64, 24), "sample_cxr_size": 96,
             "projector": ProjectorOptions(size_px=96)}
    monkeypatch.setattr(bench_cli, "load_config", lambda *args, **options: real_load(*args, **options, **small))
    out = tmp_path / "out"
    assert main(["bench", "--config", "sample", "--sweep", "ct-fraction=0,1", "--image-size", "64", "--epochs", "1",
                 "--models", "unet", "--device", "cpu", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    zero, one = results["runs"]
    assert (zero["ct_fraction"], one["ct_fraction"]) == (0.0, 1.0)
    assert zero["train_ct_projections"] == 0 and one["train_ct_projections"] == one["train_images"]
    assert [p["image_id"] for p in zero["per_image"]] == [p["image_id"] for p in one["per_image"]]
    (comparison,) = results["comparisons"]
    assert comparison["paired"] and comparison["a"]["ct_fraction"] == 1.0 and comparison["b"]["ct_fraction"] == 0.0
    expected = np.mean([a["iou"] - b["iou"] for a, b in zip(one["per_image"], zero["per_image"])])
    assert comparison["difference_value"] == pytest.approx(expected)
    assert "## Replacement curve (CT fraction sweep)" in printed
    assert "CT fraction 1 vs CT fraction 0 (60/40, aug y, unet): ΔIoU" in printed
    with Image.open(out / "figures" / "replacement_curve.png") as figure:
        assert figure.format == "PNG" and figure.width > 300


@pytest.mark.parametrize("out", ["foreign", "."])
def test_bench_out_is_refused_when_it_is_not_a_benchmark_folder(tmp_path, capsys, monkeypatch, out) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "thesis.tex").write_text("mine")
    code = main(["bench", "--config", "sample", "--image-size", "64", "--epochs", "1", "--out", out])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert (tmp_path / "foreign" / "thesis.tex").read_text() == "mine"
    assert not (tmp_path / "foreign" / "runs").exists() and not (tmp_path / "runs").exists()
