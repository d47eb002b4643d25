"""`chexmix project` end to end, and every bad input it must refuse cleanly."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from chexmix_dataset.cli import main
from chexmix_dataset.dataset.lesions import decode_rle
from chexmix_dataset.phantoms import chest_phantom, write_phantom_nifti


@pytest.fixture(scope="module")
def phantom_files(tmp_path_factory) -> tuple[Path, Path, int]:
    folder = tmp_path_factory.mktemp("phantom")
    phantom = chest_phantom(2, shape=(96, 96, 40), lesions=True)
    write_phantom_nifti(phantom, folder / "ct.nii.gz", folder / "mask.nii.gz")
    return folder / "ct.nii.gz", folder / "mask.nii.gz", phantom.lesion_count


def test_project_writes_xray_mask_instances_and_overlay(tmp_path, phantom_files, capsys):
    ct, mask, lesion_count = phantom_files
    out = tmp_path / "out"
    assert main(["project", str(ct), str(mask), "--out", str(out), "--size", "200", "--min-area-mm2", "0"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["instances.json", "mask.png", "overlay.png", "xray.png"]
    xray = np.asarray(Image.open(out / "xray.png"))
    union = np.asarray(Image.open(out / "mask.png"))
    assert xray.dtype == np.uint8 and max(xray.shape) == 200
    assert set(np.unique(union)) <= {0, 255}
    meta = json.loads((out / "instances.json").read_text())
    assert (meta["height"], meta["width"]) == xray.shape
    assert len(meta["instances"]) == lesion_count
    decoded = np.zeros(xray.shape, dtype=bool)
    for instance in meta["instances"]:
        lesion = decode_rle(instance["segmentation"])
        assert instance["area"] == lesion.sum() > 0
        x, y, w, h = instance["bbox"]
        rows, cols = np.nonzero(lesion)
        assert (cols.min(), rows.min(), cols.max() + 1 - x, rows.max() + 1 - y) == (x, y, w, h)
        assert instance["lesion_type"] in ("ground_glass", "consolidation")
        decoded |= lesion
    assert np.array_equal(decoded, union > 0)
    overlay = np.asarray(Image.open(out / "overlay.png"))
    assert overlay.shape[:2] == xray.shape and overlay.ndim == 3
    assert f"{lesion_count} lesion" in capsys.readouterr().out


def test_project_seed_mode_and_slice_folders(tmp_path):
    rng = np.random.default_rng(0)
    ct_dir, mask_dir = tmp_path / "ct", tmp_path / "mask"
    ct_dir.mkdir()
    mask_dir.mkdir()
    for z in range(12):
        Image.fromarray(rng.integers(0, 200, (32, 32), dtype=np.uint8)).save(ct_dir / f"img{z}.png")
        lesion = np.zeros((32, 32), dtype=np.uint8)
        if 3 <= z < 9:
            lesion[10:20, 8:16] = 255
        Image.fromarray(lesion).save(mask_dir / f"img{z}.png")
    out = tmp_path / "out"
    assert main(["project", str(ct_dir), str(mask_dir), "--out", str(out), "--mode", "seed"]) == 0
    meta = json.loads((out / "instances.json").read_text())
    assert (meta["height"], meta["width"]) == (300, 32)  # stretched to 300 rows, as published
    assert len(meta["instances"]) == 1


def test_empty_mask_gives_no_instances(tmp_path, phantom_files):
    ct, _, _ = phantom_files
    image = nib.load(ct)
    nib.save(nib.Nifti1Image(np.zeros(image.shape, np.uint8), image.affine), tmp_path / "empty.nii.gz")
    assert main(["project", str(ct), str(tmp_path / "empty.nii.gz"), "--out", str(tmp_path / "out")]) == 0
    assert json.loads((tmp_path / "out" / "instances.json").read_text())["instances"] == []
    assert not np.asarray(Image.open(tmp_path / "out" / "mask.png")).any()


# --- bad input: one line on stderr, exit code 2, nothing written -----------------------------------

def _expect_refusal(capsys, argv: list[str], out: Path, *fragments: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err
    assert not out.exists()
    leftovers = [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]
    assert leftovers == []


def test_missing_ct(tmp_path, capsys):
    missing = tmp_path / "nope.nii.gz"
    _expect_refusal(capsys, ["project", str(missing), "--out", str(tmp_path / "o")], tmp_path / "o",
                    "nope.nii.gz", "does not exist")


def test_truncated_nifti(tmp_path, phantom_files, capsys):
    ct, _, _ = phantom_files
    data = Path(ct).read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(data[: len(data) // 2])
    _expect_refusal(capsys, ["project", str(tmp_path / "cut.nii.gz"), "--out", str(tmp_path / "o")],
                    tmp_path / "o", "cut.nii.gz", "truncated or corrupt")


def test_not_a_nifti(tmp_path, capsys):
    (tmp_path / "junk.nii.gz").write_bytes(gzip.compress(b"this is not a volume" * 10))
    _expect_refusal(capsys, ["project", str(tmp_path / "junk.nii.gz"), "--out", str(tmp_path / "o")],
                    tmp_path / "o", "junk.nii.gz")


def test_volume_not_3d(tmp_path, capsys):
    nib.save(nib.Nifti1Image(np.zeros((8, 8), np.int16), np.eye(4)), tmp_path / "flat.nii.gz")
    _expect_refusal(capsys, ["project", str(tmp_path / "flat.nii.gz"), "--out", str(tmp_path / "o")],
                    tmp_path / "o", "flat.nii.gz", "3D")


def test_mask_shape_mismatch(tmp_path, phantom_files, capsys):
    ct, _, _ = phantom_files
    nib.save(nib.Nifti1Image(np.zeros((10, 10, 10), np.uint8), nib.load(ct).affine), tmp_path / "m.nii.gz")
    _expect_refusal(capsys, ["project", str(ct), str(tmp_path / "m.nii.gz"), "--out", str(tmp_path / "o")],
                    tmp_path / "o", "m.nii.gz", "(10, 10, 10)", "(96, 96, 40)")


def test_mask_affine_mismatch(tmp_path, phantom_files, capsys):
    ct, _, _ = phantom_files
    image = nib.load(ct)
    affine = image.affine.copy()
    affine[0, 3] += 0.01  # 10 micrometres: beyond the 1e-3 mm tolerance
    nib.save(nib.Nifti1Image(np.zeros(image.shape, np.uint8), affine), tmp_path / "m.nii.gz")
    _expect_refusal(capsys, ["project", str(ct), str(tmp_path / "m.nii.gz"), "--out", str(tmp_path / "o")],
                    tmp_path / "o", "m.nii.gz", "affine")


def test_nan_voxels(tmp_path, capsys):
    data = np.zeros((8, 8, 8), np.float32)
    data[1, 2, 3] = np.nan
    data[2, 2, 2] = np.inf
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "nan.nii.gz")
    _expect_refusal(capsys, ["project", str(tmp_path / "nan.nii.gz"), "--out", str(tmp_path / "o")],
                    tmp_path / "o", "nan.nii.gz", "2 NaN or infinite")


def test_empty_slice_folder(tmp_path, capsys):
    (tmp_path / "slices").mkdir()
    _expect_refusal(capsys, ["project", str(tmp_path / "slices"), "--out", str(tmp_path / "o")],
                    tmp_path / "o", "slices", "no slice images")


def test_slices_of_mixed_sizes(tmp_path, capsys):
    folder = tmp_path / "slices"
    folder.mkdir()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(folder / "s1.png")
    Image.fromarray(np.zeros((16, 20), np.uint8)).save(folder / "s2.png")
    _expect_refusal(capsys, ["project", str(folder), "--out", str(tmp_path / "o")], tmp_path / "o",
                    "s2.png", "mixed sizes")


def test_unwritable_output_folder(tmp_path, phantom_files, capsys):
    ct, mask, _ = phantom_files
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder is needed")
    out = blocker / "out"
    assert main(["project", str(ct), str(mask), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and str(blocker) in err
    assert blocker.read_text() == "a file where a folder is needed"


def test_existing_output_is_replaced_whole_only_on_success(tmp_path, phantom_files, capsys):
    ct, mask, _ = phantom_files
    out = tmp_path / "out"
    assert main(["project", str(ct), str(mask), "--out", str(out), "--size", "64"]) == 0
    previous = (out / "xray.png").read_bytes()
    bad_mask = tmp_path / "bad.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((3, 3, 3), np.uint8), np.eye(4)), bad_mask)
    assert main(["project", str(ct), str(bad_mask), "--out", str(out)]) == 2
    assert (out / "xray.png").read_bytes() == previous
    assert main(["project", str(ct), str(mask), "--out", str(out), "--size", "96"]) == 0
    assert (out / "xray.png").read_bytes() != previous
    assert sorted(p.name for p in out.iterdir()) == ["instances.json", "mask.png", "overlay.png", "xray.png"]


def test_a_folder_of_other_files_is_never_replaced(tmp_path, phantom_files, capsys):
    ct, mask, _ = phantom_files
    out = tmp_path / "home"
    out.mkdir()
    (out / "thesis.tex").write_text("irreplaceable")
    assert main(["project", str(ct), str(mask), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "thesis.tex" in err and str(out) in err
    assert [p.name for p in out.iterdir()] == ["thesis.tex"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
