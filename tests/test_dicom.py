"""DICOM CT series as CT input: the same projection as the equivalent NIfTI, and clean refusals."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from dicom_series import write_ct_series
from PIL import Image

from chexmix_dataset.cli import main
from chexmix_dataset.ct.volume import load_ct
from chexmix_dataset.phantoms import chest_phantom

SHAPE = (40, 40, 24)


@pytest.fixture(scope="module")
def phantom_nifti(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nifti")
    phantom = chest_phantom(4, shape=SHAPE, lesions=True)
    affine = phantom.affine.copy()
    affine[:3, :3] = np.diag([0.75, 0.75, 2.5])  # exact in decimal: DICOM stores positions as text
    affine[:3, 3] = [-15.0, -20.25, 100.0]
    nib.save(nib.Nifti1Image(phantom.hu.astype(np.int16), affine), folder / "ct.nii.gz")
    nib.save(nib.Nifti1Image(phantom.labels, affine), folder / "mask.nii.gz")
    return phantom.hu.astype(np.int16), phantom.labels, affine, folder


def _project(tmp_path: Path, name: str, *args: str) -> tuple[np.ndarray, dict]:
    out = tmp_path / name
    assert main(["project", *args, "--out", str(out), "--size", "96", "--min-area-mm2", "0"]) == 0
    meta = json.loads((out / "instances.json").read_text())
    return np.asarray(Image.open(out / "xray.png")), {k: v for k, v in meta.items() if k not in ("ct", "mask")}


@pytest.mark.parametrize("orientation", [
    ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),    # head first supine: the usual axial CT
    ((-1.0, 0.0, 0.0), (0.0, -1.0, 0.0)),  # feet first prone: rows and columns run the other way
])
@pytest.mark.parametrize("mode", ["physics", "seed"])
def test_dicom_series_projects_like_the_equivalent_nifti(tmp_path, phantom_nifti, orientation, mode):
    hu, labels, affine, folder = phantom_nifti
    files = write_ct_series(tmp_path / "dicom", hu, affine, row_cosine=orientation[0], column_cosine=orientation[1])
    # The fixture is what scanners write: HU + 1024 stored, superior slice first, names shuffled.
    first = pydicom.dcmread(files[0])
    assert (first.InstanceNumber, float(first.RescaleIntercept), first.pixel_array.dtype) == (1, -1024.0, np.int16)
    assert float(first.ImagePositionPatient[2]) == max(float(pydicom.dcmread(f).ImagePositionPatient[2]) for f in files)
    assert sorted(p.name for p in files) != [p.name for p in files]

    expected_image, expected_meta = _project(tmp_path, "nifti", str(folder / "ct.nii.gz"), str(folder / "mask.nii.gz"),
                                             "--mode", mode)
    got_image, got_meta = _project(tmp_path, "dicom_out", str(tmp_path / "dicom"), str(folder / "mask.nii.gz"),
                                   "--mode", mode)
    assert np.array_equal(got_image, expected_image)
    assert got_meta == expected_meta and len(got_meta["instances"]) > 0


def test_dicom_volume_keeps_stored_integers_and_ras_geometry(tmp_path, phantom_nifti):
    hu, _, affine, _ = phantom_nifti
    write_ct_series(tmp_path / "dicom", hu, affine, signed=False)  # uint16 storage, as many scanners
    ct = load_ct(tmp_path / "dicom")
    assert ct.voxels.dtype == np.uint16 and (ct.value_slope, ct.value_intercept) == (1.0, -1024.0)
    assert np.array_equal(ct.voxels.astype(np.int32) - 1024, hu)
    assert np.allclose(ct.affine, affine, atol=1e-6) and ct.spacing_mm == (0.75, 0.75, 2.5)


def test_dicom_mask_series_on_the_ct_grid(tmp_path, phantom_nifti):
    hu, labels, affine, _ = phantom_nifti
    write_ct_series(tmp_path / "ct", hu, affine)
    write_ct_series(tmp_path / "mask", labels.astype(np.int16), affine, intercept=0.0, modality="SEG",
                    sop_class="1.2.840.10008.5.1.4.1.1.7", seed=1)  # secondary capture labels
    ct = load_ct(tmp_path / "ct", tmp_path / "mask")
    assert np.array_equal(ct.lesion_labels, labels)


def _refused(capsys, tmp_path: Path, *fragments: str, mask: Path | None = None) -> None:
    argv = ["project", str(tmp_path / "dicom"), *([str(mask)] if mask else []), "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    assert not (tmp_path / "o").exists()


def _edit(path: Path, **changes) -> None:
    ds = pydicom.dcmread(path)
    for keyword, value in changes.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    ds.save_as(path)


@pytest.fixture
def series(tmp_path, phantom_nifti) -> list[Path]:
    hu, _, affine, _ = phantom_nifti
    return write_ct_series(tmp_path / "dicom", hu[:, :, :8], affine)


def test_mixed_series_are_refused(tmp_path, series, capsys):
    _edit(series[3], SeriesInstanceUID=pydicom.uid.generate_uid())
    _refused(capsys, tmp_path, "dicom", "2 DICOM series", "(7 slices)", "(1 slices)")


def test_missing_position_is_refused(tmp_path, series, capsys):
    _edit(series[2], ImagePositionPatient=None)
    _refused(capsys, tmp_path, series[2].name, "no ImagePositionPatient")


def test_missing_slice_is_uneven_spacing(tmp_path, series, capsys):
    series[4].unlink()  # superior-first: a slice in the middle
    _refused(capsys, tmp_path, "uneven slice spacing", "5 mm", "2.5 mm")


def test_duplicate_slice_is_refused(tmp_path, series, capsys):
    ds = pydicom.dcmread(series[1])
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(series[1].with_name("copy.dcm"))
    _refused(capsys, tmp_path, "same position")


def test_mixed_orientations_are_refused(tmp_path, series, capsys):
    _edit(series[5], ImageOrientationPatient=[1, 0, 0, 0, 0, -1])
    _refused(capsys, tmp_path, series[5].name, "mixed orientations")


def test_mixed_sizes_are_refused(tmp_path, series, capsys):
    ds = pydicom.dcmread(series[0])
    ds.Rows = 20
    ds.PixelData = np.zeros((20, 40), "<i2").tobytes()
    ds.save_as(series[0])
    _refused(capsys, tmp_path, series[0].name, "mixed sizes")


def test_non_ct_slice_is_refused(tmp_path, series, capsys):
    _edit(series[0], Modality="SR", SOPClassUID="1.2.840.10008.5.1.4.1.1.88.11")
    _refused(capsys, tmp_path, series[0].name, "not a CT image")


def test_slice_image_mask_cannot_be_matched_to_a_dicom_ct(tmp_path, series, capsys):
    masks = tmp_path / "mask_slices"
    masks.mkdir()
    for k in range(8):
        Image.fromarray(np.zeros((40, 40), np.uint8)).save(masks / f"m{k}.png")
    _refused(capsys, tmp_path, "mask_slices", "no geometry", "NIfTI", mask=masks)


def test_per_slice_rescale_intercepts_give_the_same_hu(tmp_path, series, phantom_nifti):
    ds = pydicom.dcmread(series[2])
    ds.PixelData = (ds.pixel_array.astype(np.int32) - 24).astype("<i2").tobytes()  # HU + 1000 stored
    ds.RescaleIntercept = "-1000"
    ds.save_as(series[2])
    hu, _, affine, _ = phantom_nifti
    ct = load_ct(tmp_path / "dicom")
    assert ct.voxels.dtype == np.float32 and (ct.value_slope, ct.value_intercept) == (1.0, 0.0)
    assert np.array_equal(ct.voxels, hu[:, :, :8].astype(np.float32))
