"""``chexmix predict`` on real-world CXR files, and models on the Hub (publish-model, hub: weights)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from dicom_cxr import write_cxr_dicom
from PIL import Image

from benchmark import cli as bench_cli
from benchmark.model_files import load_model
from benchmark.predict import model_input
from chexmix_dataset import phantoms
from chexmix_dataset.cli import main
from chexmix_dataset.hub import push as push_mod
from chexmix_dataset.projector import ProjectorOptions

EXIF_ORIENTATION = 0x0112


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A U-Net trained for one epoch on the sample by ``chexmix bench`` (CPU, 64 px)."""
    out = tmp_path_factory.mktemp("bench") / "out"
    small = dict(cache_dir=tmp_path_factory.mktemp("cache"), sample_n_ct=4, sample_n_cxr=12,
                 sample_ct_shape=(64, 64, 24), sample_cxr_size=96, projector=ProjectorOptions(size_px=96))
    real_load = bench_cli.load_config
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bench_cli, "load_config", lambda *args, **options: real_load(*args, **options, **small))
        code = main(["bench", "--config", "sample", "--models", "unet", "--epochs", "1", "--image-size", "64",
                     "--batch-size", "4", "--weights", "none", "--out", str(out)])
    assert code == 0
    (run,) = list((out / "runs").glob("*/unet/seed0"))
    return run


def _cxr(seed: int = 4, size: int = 96) -> np.ndarray:
    return np.asarray(phantoms.cxr_standin(seed, size=size).image, dtype=np.uint8)


def _median_threshold(weights: str, image: np.ndarray) -> float:
    """A threshold that cuts about half of the image: masks worth comparing, whatever was learnt."""
    model, config = load_model(weights)
    prediction = model.predict(model_input(image, int(config["image_size"])))[0]
    return float(prediction.lesion_probability.median())


def _with_orientation(stored: np.ndarray, orientation: int, path: Path, **save) -> None:
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    Image.fromarray(stored).save(path, exif=exif.tobytes(), **save)


def _inputs(folder: Path) -> np.ndarray:
    """Every kind of input a hospital export holds, plus a corrupt file; returns the upright image."""
    folder.mkdir()
    upright = _cxr()[:, :80]  # not square, so a lost rotation shows in the mask's shape
    Image.fromarray(upright).save(folder / "plain.png")
    # Orientation 6 displays the stored pixels turned 90 degrees clockwise: store them turned back.
    _with_orientation(np.rot90(upright, 1), 6, folder / "tagged.png")
    _with_orientation(np.rot90(upright, -1), 8, folder / "phone.jpg", quality=95)
    exposure = (upright.astype(np.uint16) * 13 + 400).astype(np.uint16)
    Image.fromarray(exposure).save(folder / "exposure16.png")  # mode I;16
    write_cxr_dicom(folder / "exposure.dcm", exposure, imager_spacing_mm=(0.2, 0.2))
    write_cxr_dicom(folder / "exposure_mono1.dcm", (8191 - exposure).astype(np.uint16), photometric="MONOCHROME1")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return upright


def _mask(out: Path, name: str) -> np.ndarray:
    return np.asarray(Image.open(out / name / "mask.png"))


def test_predict_on_png_jpeg_exif_16bit_and_dicom(run_dir, tmp_path, capsys):
    upright = _inputs(tmp_path / "xrays")
    threshold = _median_threshold(str(run_dir / "model"), upright)
    out = tmp_path / "pred"
    code = main(["predict", str(tmp_path / "xrays"), "--weights", str(run_dir / "model"), "--out", str(out),
                 "--threshold", f"{threshold:.6f}"])
    captured = capsys.readouterr()
    assert code == 0
    assert "broken.png" in captured.err and "1 skipped" in captured.out
    report = json.loads((out / "predictions.json").read_text())
    assert [s["image"] for s in report["skipped"]] == [str(tmp_path / "xrays" / "broken.png")]
    by_name = {entry["name"]: entry for entry in report["images"]}
    assert set(by_name) == {"plain", "tagged", "phone", "exposure16", "exposure", "exposure_mono1"}
    assert report["architecture"].startswith("unet") and report["threshold"] == pytest.approx(threshold, abs=1e-6)
    plain = _mask(out, "plain")
    assert plain.shape == upright.shape and set(np.unique(plain)) == {0, 255}, "a real, partial mask"
    for name in by_name:
        assert _mask(out, name).shape == upright.shape, f"{name}: mask at the image's displayed size"
        assert (out / name / "overlay.png").is_file()
        instances = json.loads((out / name / "instances.json").read_text())["instances"]
        union = np.zeros(upright.shape, dtype=bool)
        for instance in instances:
            assert 0.0 <= instance["score"] <= 1.0
            from chexmix_dataset.dataset.lesions import decode_rle
            union |= decode_rle(instance["segmentation"])
        assert not (union & (_mask(out, name) == 0)).any(), "instances lie inside the lesion area"
        assert by_name[name]["lesion_area_px"] == int((_mask(out, name) > 0).sum())
    assert np.array_equal(_mask(out, "tagged"), plain), "EXIF orientation applied (lossless PNG)"
    assert np.mean(_mask(out, "phone") != plain) < 0.05, "JPEG: upright, only compression differs"
    assert np.array_equal(_mask(out, "exposure"), _mask(out, "exposure16")), "DICOM = PNG of the same pixels"
    assert np.array_equal(_mask(out, "exposure_mono1"), _mask(out, "exposure16")), "MONOCHROME1 inverted"
    dicom = by_name["exposure"]
    assert dicom["lesion_area_cm2"] == pytest.approx(dicom["lesion_area_px"] * 0.2 * 0.2 / 100)
    assert by_name["plain"]["lesion_area_cm2"] is None


def test_predict_refuses_models_it_cannot_use(run_dir, tmp_path, capsys):
    image = tmp_path / "x.png"
    Image.fromarray(_cxr()).save(image)
    broken = tmp_path / "broken_model"
    broken.mkdir()
    config = json.loads((run_dir / "model" / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**config, "architecture": "unet:resnet999"}))
    (broken / "model.safetensors").write_bytes((run_dir / "model" / "model.safetensors").read_bytes())
    missing = tmp_path / "no_model"
    missing.mkdir()
    for weights, fragment in ((broken, "cannot rebuild"), (missing, "lacks model.safetensors"),
                              (tmp_path / "x.png", "must be a folder")):
        code = main(["predict", str(image), "--weights", str(weights), "--out", str(tmp_path / "out")])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and fragment in err[0], err
        assert not (tmp_path / "out").exists()


def test_hub_weights_offline_name_the_local_alternative(tmp_path, capsys, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    image = tmp_path / "x.png"
    Image.fromarray(_cxr()).save(image)
    code = main(["predict", str(image), "--weights", "hub:chexmix-test/no-such-model", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "hub:chexmix-test/no-such-model" in err[0] and "--weights DIR" in err[0]


def test_publish_model_tree_loads_back_and_predicts_the_same(run_dir, tmp_path, capsys, monkeypatch):
    tree = tmp_path / "hub-tree"
    assert main(["publish-model", str(run_dir), "--repo-id", "chexmix-test/unet-sample",
                 "--local-dir", str(tree)]) == 0
    assert sorted(p.name for p in tree.iterdir()) == ["README.md", "config.json", "model.safetensors",
                                                      "test_overlay.png"]
    card = (tree / "README.md").read_text()
    header = card.split("---")[1]
    import yaml
    metadata = yaml.safe_load(header)
    assert "not-for-clinical-use" in metadata["tags"] and metadata["pipeline_tag"] == "image-segmentation"
    assert "not for clinical use" in card.lower() and "hub:chexmix-test/unet-sample" in card
    assert "CC0-1.0" in card, "the training data's licences are listed"
    # The same loading code reads the tree as a folder and as a Hub snapshot.
    import huggingface_hub
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo_id, **_: str(tree))
    image = tmp_path / "in"
    image.mkdir()
    Image.fromarray(_cxr()).save(image / "a.png")
    threshold = f"{_median_threshold(str(tree), _cxr()):.6f}"
    masks = {}
    for label, weights in (("run", str(run_dir / "model")), ("tree", str(tree)),
                           ("hub", "hub:chexmix-test/unet-sample")):
        out = tmp_path / f"pred-{label}"
        assert main(["predict", str(image), "--weights", weights, "--out", str(out), "--threshold", threshold]) == 0
        masks[label] = _mask(out, "a")
    assert np.array_equal(masks["run"], masks["tree"]) and np.array_equal(masks["run"], masks["hub"])
    assert masks["run"].any()


def test_publish_model_pushes_one_commit(run_dir, capsys, monkeypatch):
    from test_publish import FakeHub

    hub = FakeHub()
    monkeypatch.setattr(push_mod, "HfApi", hub)
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    assert main(["publish-model", str(run_dir), "--repo-id", "chexmix-test/unet-sample"]) == 0
    assert "4 file(s) in one commit" in capsys.readouterr().out
    assert len(hub.commits) == 1


def test_bench_starts_from_a_model_folder_or_a_hub_model(run_dir, tmp_path, monkeypatch):
    import huggingface_hub

    from benchmark.harness import initial_weights
    from benchmark.model_files import load_model

    model, _ = load_model(str(run_dir / "model"))
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo_id, **_: str(run_dir / "model"))
    for weights in (str(run_dir / "model"), "hub:chexmix-test/unet-sample"):
        initial = initial_weights(weights, tmp_path)
        assert initial.checkpoint["architecture"] == model.architecture
        assert initial.structure == "none"
        for name, tensor in model.state_dict().items():
            assert torch.equal(initial.checkpoint["model"][name], tensor.cpu())


def test_output_names_stay_unique_when_an_input_stem_looks_like_a_copy(run_dir, tmp_path, capsys):
    from benchmark.predict import unique_names

    assert unique_names([Path("x/a-2.png"), Path("x/a.png"), Path("y/a.jpg")]) == ["a-2", "a", "a-3"]
    assert unique_names([Path("a.png"), Path("b/a.png"), Path("c/a.png")]) == ["a", "a-2", "a-3"]
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a-2.png", "a.png", "a.jpg"):
        Image.fromarray(_cxr()).save(folder / name)
    out = tmp_path / "out"
    assert main(["predict", str(folder), "--weights", str(run_dir / "model"), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["a", "a-2", "a-3"]


def test_publish_model_reads_a_corrupt_config_before_any_hub_call(run_dir, tmp_path, capsys, monkeypatch):
    import shutil

    from benchmark import publish_model

    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    (copy / "model" / "config.json").write_text("{ not json", encoding="utf-8")
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    monkeypatch.setattr(publish_model, "open_hub_repo",
                        lambda *a, **k: pytest.fail("the Hub repository was created before config.json was read"))
    assert main(["publish-model", str(copy), "--repo-id", "chexmix-test/unet-sample"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "config.json" in err[0]
