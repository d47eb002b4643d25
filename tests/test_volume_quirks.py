"""Real CT file quirks: 16-bit slices, scaled NIfTI, int8, bad spacing/size, slice order, seed geometry."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from dicom_series import write_ct_series
from PIL import Image
from public_layouts import make_ct_folder, write_nifti
from published_loop import published_create_cxr, published_display

from chexmix_dataset.cli import main
from chexmix_dataset.ct.volume import CTVolume, load_ct, to_ras
from chexmix_dataset.errors import ChexmixInputError
from chexmix_dataset.phantoms import chest_phantom
from chexmix_dataset.projector import MAX_SIZE_PX, ProjectorOptions, line_integral_mm, project_volume

pytestmark = pytest.mark.filterwarnings("ignore:Image.Image.getdata:DeprecationWarning")

SPACING = (0.75, 0.75, 2.5)  # (x, y, z) mm


@pytest.fixture(scope="module")
def phantom():
    return chest_phantom(6, shape=(48, 48, 24), lesions=True)


def ras_affine(spacing=SPACING) -> np.ndarray:
    return np.diag([*spacing, 1.0])


def display_slices(volume_ras: np.ndarray) -> list[np.ndarray]:
    """Axial slices as displayed (anterior at the top, patient's right on the left), inferior first."""
    return [np.ascontiguousarray(volume_ras[::-1, ::-1, z].T) for z in range(volume_ras.shape[2])]


def save_slices(folder: Path, slices: list[np.ndarray], suffix: str = ".png") -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, array in enumerate(slices):
        path = folder / f"slice{index}{suffix}"
        Image.fromarray(array).save(path)
        paths.append(str(path))
    return paths


def slice_spacing_args(spacing=SPACING) -> list[str]:
    return ["--slice-spacing", str(spacing[1]), str(spacing[0]), str(spacing[2])]  # row (y), column (x), slice


def project_cli(out: Path, *args: str) -> tuple[np.ndarray, list[dict]]:
    assert main(["project", *args, "--out", str(out), "--size", "96", "--min-area-mm2", "0"]) == 0
    return np.asarray(Image.open(out / "xray.png")), json.loads((out / "instances.json").read_text())["instances"]


# --- 16-bit slice folders --------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_slices_are_read_natively_as_hu_plus_1024(tmp_path, phantom, suffix):
    stored = (phantom.hu.astype(np.int32) + 1024).astype(np.uint16)  # the usual unsigned CT storage
    save_slices(tmp_path / "ct", display_slices(stored), suffix)
    assert Image.open(tmp_path / "ct" / f"slice0{suffix}").mode == "I;16"
    clipped = np.asarray(Image.open(tmp_path / "ct" / f"slice5{suffix}").convert("L"))
    native = np.asarray(Image.open(tmp_path / "ct" / f"slice5{suffix}"))
    assert np.array_equal(clipped, np.minimum(native, 255)) and (clipped == 255).mean() > 0.3  # convert("L") clips

    ct = load_ct(tmp_path / "ct", slice_spacing_mm=(SPACING[1], SPACING[0], SPACING[2]))
    assert ct.voxels.dtype == np.uint16 and np.array_equal(ct.voxels, stored)
    assert ct.is_hounsfield and (ct.value_slope, ct.value_intercept) == (1.0, -1024.0)
    # Physics: the same image as the HU volume itself.
    reference = CTVolume(phantom.hu, SPACING, ras_affine(), None, True, "hu")
    options = ProjectorOptions(size_px=96)
    assert np.array_equal(project_volume(ct, options).image, project_volume(reference, options).image)


def test_16bit_slices_in_seed_mode_are_scaled_over_the_volume(tmp_path, phantom):
    stored = (phantom.hu.astype(np.int32) + 1024).astype(np.uint16)
    save_slices(tmp_path / "ct", display_slices(stored))
    values = stored.astype(np.float64)
    u8 = np.rint((values - values.min()) * (255.0 / (values.max() - values.min()))).astype(np.uint8)
    expected = published_display(published_create_cxr(save_slices(tmp_path / "u8", display_slices(u8))))
    got = project_volume(load_ct(tmp_path / "ct"), ProjectorOptions(mode="seed")).image
    assert np.array_equal(got, expected)


def test_signed_16bit_slices_are_hu_and_the_intercept_can_be_set(tmp_path, phantom):
    save_slices(tmp_path / "signed", display_slices(phantom.hu.astype(np.int16)), ".tif")
    assert Image.open(tmp_path / "signed" / "slice0.tif").mode == "I"  # how Pillow reads signed TIFF
    signed = load_ct(tmp_path / "signed")
    assert signed.voxels.dtype == np.int16 and signed.value_intercept == 0.0
    assert np.array_equal(signed.voxels, phantom.hu)
    offset = (phantom.hu.astype(np.int32) + 2000).astype(np.uint16)
    save_slices(tmp_path / "offset", display_slices(offset))
    assert load_ct(tmp_path / "offset", slice_hu_intercept=-2000).value_intercept == -2000.0


def test_16bit_binary_masks_and_mixed_depths(tmp_path, phantom):
    stored = (phantom.hu.astype(np.int32) + 1024).astype(np.uint16)
    save_slices(tmp_path / "ct", display_slices(stored))
    save_slices(tmp_path / "mask", display_slices(((phantom.labels > 0) * 65535).astype(np.uint16)))
    ct = load_ct(tmp_path / "ct", tmp_path / "mask")
    assert np.array_equal(ct.lesion_labels, (phantom.labels > 0).astype(np.uint8))
    Image.fromarray(np.zeros((48, 48), np.uint8)).save(tmp_path / "ct" / "slice99.png")
    with pytest.raises(ChexmixInputError, match="mixed bit depths"):
        load_ct(tmp_path / "ct")


# --- scaled NIfTI ----------------------------------------------------------------------------

def write_scaled(path: Path, hu: np.ndarray, slope: float, intercept: float, affine: np.ndarray) -> np.ndarray:
    """An int16 NIfTI with scl_slope/scl_inter, written by nibabel; returns the stored integers."""
    stored = np.rint((hu.astype(np.float64) - intercept) / slope).astype(np.int16)
    image = nib.Nifti1Image(stored, affine)
    image.header.set_slope_inter(slope, intercept)
    image.set_data_dtype(np.int16)
    nib.save(image, path)
    return stored


def float_hu_volume(path: Path) -> CTVolume:
    """What CheXMix read before: nibabel's scaled float64 HU."""
    image = nib.load(path)
    data = np.asanyarray(image.dataobj)
    assert data.dtype == np.float64
    voxels, affine = to_ras(data, image.affine)
    return CTVolume(voxels, SPACING, affine, None, True, str(path))


@pytest.mark.parametrize("slope, intercept", [(1.0, -1024.0), (0.37, -1000.3), (2.0, -3.0)])
@pytest.mark.parametrize("mode", ["physics", "seed"])
def test_scaled_nifti_keeps_integers_and_projects_like_its_float_hu(tmp_path, phantom, slope, intercept, mode):
    path = tmp_path / "ct.nii.gz"
    stored = write_scaled(path, phantom.hu, slope, intercept, ras_affine())
    ct = load_ct(path)
    assert ct.voxels.dtype == np.int16 and np.array_equal(ct.voxels, stored)
    assert (ct.value_slope, ct.value_intercept) == pytest.approx((slope, intercept))
    options = ProjectorOptions(mode=mode, size_px=96)
    assert np.array_equal(project_volume(ct, options).image, project_volume(float_hu_volume(path), options).image)


def test_seed_scaling_of_stored_codes_rounds_as_the_float_hu_did(tmp_path):
    # Codes 0, 1, 2 with slope 0.3 and intercept -1024: ideally the middle code scales to 127.5
    # (rint: 128), but in float64 (-1023.7 + 1024) * 255 / 0.6 falls just under the tie (127).
    # Seed mode must give the image it gave when it read float64 HU, not the ideal one.
    codes = np.zeros((24, 24, 24), np.int16)
    codes[:, :, 8:16], codes[:, :, 16:] = 1, 2
    path = tmp_path / "tie.nii.gz"
    assert np.array_equal(write_scaled(path, codes * 0.3 - 1024.0, 0.3, -1024.0, ras_affine()), codes)
    options = ProjectorOptions(mode="seed")
    got = project_volume(load_ct(path), options).image
    assert np.array_equal(got, project_volume(float_hu_volume(path), options).image)
    ideal = project_volume(CTVolume(codes, SPACING, ras_affine(), None, True, "codes"), options).image
    assert not np.array_equal(got, ideal)  # the tie is real: scaling the codes alone would differ


def test_scaled_nifti_peak_memory_within_twice_the_stored_volume(tmp_path):
    shape = (192, 192, 96)
    hu = np.full(shape, -1000.0)
    x, y = np.ogrid[: shape[0], : shape[1]]
    hu[(x - 96) ** 2 + (y - 96) ** 2 < 80 ** 2] = 40.0  # a water-like cylinder along z
    path = tmp_path / "ct.nii.gz"
    stored = write_scaled(path, hu, 1.0, -1024.0, np.diag([1.6, 1.6, 3.0, 1.0]))
    labels = np.zeros(shape, np.uint8)
    labels[60:120, 60:120, 20:60] = 1
    write_nifti(tmp_path / "mask.nii.gz", labels, np.diag([1.6, 1.6, 3.0, 1.0]))
    del hu, labels
    for mode in ("physics", "seed"):
        tracemalloc.start()
        ct = load_ct(path, tmp_path / "mask.nii.gz")
        project_volume(ct, ProjectorOptions(mode=mode, size_px=256))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        del ct
        # The labels (uint8, half the CT) are part of what is read: still within 2x the stored CT.
        assert peak <= 2 * stored.nbytes, f"{mode}: peak {peak / 2**20:.1f} MiB for {stored.nbytes / 2**20:.1f} MiB"


# --- int8, spacing, size ---------------------------------------------------------------------

def _refused(capsys, argv: list[str], out: Path, *fragments: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    assert not out.exists()


def test_int8_ct_is_refused_unless_scaled(tmp_path, capsys):
    data = np.full((24, 24, 24), -100, np.int8)
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "int8.nii.gz")
    _refused(capsys, ["project", str(tmp_path / "int8.nii.gz"), "--out", str(tmp_path / "o")], tmp_path / "o",
             "int8.nii.gz", "int8", "Hounsfield")
    scaled = nib.Nifti1Image(data, np.eye(4))
    scaled.header.set_slope_inter(10.0, 0.0)
    scaled.set_data_dtype(np.int8)
    nib.save(scaled, tmp_path / "int8_scaled.nii.gz")
    ct = load_ct(tmp_path / "int8_scaled.nii.gz")
    assert ct.voxels.dtype == np.int8
    integral = line_integral_mm(ct.voxels, 1.0, 0.02, ct.value_slope, ct.value_intercept)  # no OverflowError
    assert np.allclose(integral, 0.02 * (1 - 1000 / 1000) * 24)
    assert np.allclose(line_integral_mm(data, 1.0, 0.02), 0.02 * 0.9 * 24)  # unscaled int8 as HU: no overflow


@pytest.mark.parametrize("spacing", [["1", "0", "1"], ["1", "1", "-2.5"], ["nan", "1", "1"]])
def test_bad_slice_spacing_is_refused(tmp_path, phantom, capsys, spacing):
    save_slices(tmp_path / "ct", display_slices((phantom.hu + 1024).astype(np.uint16)))
    _refused(capsys, ["project", str(tmp_path / "ct"), "--slice-spacing", *spacing, "--out", str(tmp_path / "o")],
             tmp_path / "o", "slice spacing", "positive")


def test_zero_pixel_spacing_in_dicom_is_refused(tmp_path, phantom, capsys):
    # nibabel itself replaces zero NIfTI pixdims by 1; DICOM text can say 0.
    for path in write_ct_series(tmp_path / "dicom", phantom.hu[:, :, :4], ras_affine()):
        ds = pydicom.dcmread(path)
        ds.PixelSpacing = ["0", "0.75"]
        ds.save_as(path)
    _refused(capsys, ["project", str(tmp_path / "dicom"), "--out", str(tmp_path / "o")], tmp_path / "o",
             "dicom", "voxel size")


@pytest.mark.parametrize("size", ["100000", "4097", "7"])
def test_image_size_outside_8_to_4096_is_refused(tmp_path, capsys, size):
    nib.save(nib.Nifti1Image(np.zeros((24, 24, 24), np.int16), np.eye(4)), tmp_path / "ct.nii.gz")
    _refused(capsys, ["project", str(tmp_path / "ct.nii.gz"), "--size", size, "--out", str(tmp_path / "o")],
             tmp_path / "o", f"8 to {MAX_SIZE_PX} px", size)


# --- slice order -----------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["physics", "seed"])
def test_superior_first_slice_folder_projects_like_inferior_first(tmp_path, phantom, mode):
    grey = np.clip((phantom.hu.astype(np.int32) + 1000) // 8, 0, 255).astype(np.uint8)
    slices, masks = display_slices(grey), display_slices((phantom.labels > 0).astype(np.uint8) * 255)
    save_slices(tmp_path / "inf" / "ct", slices)
    save_slices(tmp_path / "inf" / "mask", masks)
    save_slices(tmp_path / "sup" / "ct", slices[::-1])  # the usual DICOM instance order
    save_slices(tmp_path / "sup" / "mask", masks[::-1])
    common = [*slice_spacing_args(), "--mode", mode]
    expected, expected_instances = project_cli(tmp_path / "o1", str(tmp_path / "inf" / "ct"),
                                               str(tmp_path / "inf" / "mask"), *common)
    got, instances = project_cli(tmp_path / "o2", str(tmp_path / "sup" / "ct"), str(tmp_path / "sup" / "mask"),
                                 *common, "--slice-order", "superior-first")
    assert np.array_equal(got, expected) and instances == expected_instances and instances
    flipped, _ = project_cli(tmp_path / "o3", str(tmp_path / "sup" / "ct"), *common)  # default: inferior-first
    assert not np.array_equal(flipped, expected)
    if mode == "seed":  # and the published loop, fed the files in anatomical order, agrees
        paths = sorted((tmp_path / "sup" / "ct").iterdir(), key=lambda p: -int(p.stem[5:]))
        assert np.array_equal(got, published_display(published_create_cxr([str(p) for p in paths])))


def test_slice_order_is_documented_in_help(capsys):
    with pytest.raises(SystemExit):
        main(["project", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--slice-order {inferior-first,superior-first}" in text and "default" in text


# --- seed mode needs square slices, in the CLI and in the dataset builder ---------------------

def test_seed_mode_refuses_non_square_slices_in_the_cli(tmp_path, phantom, capsys):
    write_nifti(tmp_path / "wide.nii.gz", phantom.hu[:, :40, :], ras_affine())
    _refused(capsys, ["project", str(tmp_path / "wide.nii.gz"), "--mode", "seed", "--out", str(tmp_path / "o")],
             tmp_path / "o", "wide.nii.gz", "square axial slices", "48 x 40")


def test_builder_skips_non_square_cts_in_seed_mode_with_the_reason(tmp_path, capsys, caplog):
    data_dir = tmp_path / "data"
    make_ct_folder(data_dir, [f"case{i}" for i in range(5)])
    image = nib.load(data_dir / "ct" / "case4.nii.gz")
    hu, labels = np.asanyarray(image.dataobj), np.asanyarray(nib.load(data_dir / "mask" / "case4.nii.gz").dataobj)
    write_nifti(data_dir / "ct" / "case4.nii.gz", hu[:, : hu.shape[1] - 6], image.affine)
    write_nifti(data_dir / "mask" / "case4.nii.gz", labels[:, : hu.shape[1] - 6], image.affine)
    argv = ["build", "--config", "ct_projections", "--data-dir", str(data_dir), "--sources", "ct_folder",
            "--cache-dir", str(tmp_path / "cache"), "--mode", "seed"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    out = captured.out
    produced = int(out.split("train:")[1].split(" images")[0]) + int(out.split("test:")[1].split(" images")[0])
    assert produced == 4 and "skipped items: 1" in out and "case4" in out
    reasons = [r.getMessage() for r in caplog.records if "case4" in r.getMessage()]
    assert any("square axial slices" in reason for reason in reasons), reasons


def test_big_endian_gzipped_nifti_reads_the_same_values(tmp_path, phantom):
    header = nib.Nifti1Header(endianness=">")
    nib.save(nib.Nifti1Image(phantom.hu.astype(np.int16), ras_affine(), header=header), tmp_path / "big.nii.gz")
    assert nib.load(tmp_path / "big.nii.gz").header.endianness == ">"
    ct = load_ct(tmp_path / "big.nii.gz")
    assert ct.voxels.dtype.isnative and np.array_equal(ct.voxels, phantom.hu)


def test_stretched_16bit_slices_are_flagged_and_bad_intercepts_refused(tmp_path, phantom, caplog, capsys):
    # A full-range stretch (0..65535), not stored CT values: HU = value - 1024 would be absurd.
    hu = phantom.hu.astype(np.float64)
    stretched = np.rint((hu - hu.min()) / (hu.max() - hu.min()) * 65535).astype(np.uint16)
    save_slices(tmp_path / "ct", display_slices(stretched))
    with caplog.at_level("WARNING"):
        load_ct(tmp_path / "ct")
    assert any("windowed or stretched" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level("WARNING"):
        load_ct(tmp_path / "ct", slice_hu_intercept=-64535)  # max 1000 HU
    assert not any("windowed or stretched" in r.getMessage() for r in caplog.records)
    _refused(capsys, ["project", str(tmp_path / "ct"), "--slice-hu-intercept", "nan", "--out", str(tmp_path / "o")],
             tmp_path / "o", "intercept", "finite")


def test_slice_images_stored_sideways_with_exif_orientation_read_upright(tmp_path):
    """A slice folder whose JPEG-era export stored slices rotated with an Orientation tag."""
    from PIL import Image as PILImage

    from chexmix_dataset.ct.volume import read_slice_folder

    rng = np.random.default_rng(0)
    upright = [rng.integers(0, 255, size=(12, 20), dtype=np.uint8) for _ in range(3)]
    plain, tagged = tmp_path / "plain", tmp_path / "tagged"
    plain.mkdir(), tagged.mkdir()
    for index, image in enumerate(upright):
        PILImage.fromarray(image).save(plain / f"slice{index}.png")
        exif = PILImage.Exif()
        exif[0x0112] = 6  # "rotate 90 CW to display": the stored pixels are the upright ones turned 90 CCW
        PILImage.fromarray(np.rot90(image, 1)).save(tagged / f"slice{index}.png", exif=exif.tobytes())
    assert np.array_equal(read_slice_folder(tagged), read_slice_folder(plain))


# --- .nii.gz decode -----------------------------------------------------------------------

def test_isal_and_zlib_decode_the_same_stored_voxels(tmp_path, monkeypatch):
    import gzip

    from chexmix_dataset.ct import nifti

    assert nifti.gzip_reader is not gzip, "isal is a dependency: the fast inflate must be the one used"
    hu = np.random.default_rng(0).integers(-1024, 2000, size=(40, 30, 20), dtype=np.int16)
    image = nib.Nifti1Image(hu, ras_affine())
    image.header.set_slope_inter(1.0, -1024.0)  # stored + scale, as scanners write them
    path = tmp_path / "ct.nii.gz"
    nib.save(image, str(path))
    fast = nifti.read_nifti_stored(path)
    monkeypatch.setattr(nifti, "gzip_reader", gzip)
    slow = nifti.read_nifti_stored(path)
    assert fast[0].dtype == slow[0].dtype and np.array_equal(fast[0], slow[0])
    assert fast[2:] == slow[2:] == (1.0, -1024.0)
    assert np.array_equal(fast[0], np.asanyarray(nib.load(str(path)).dataobj.get_unscaled()))


def test_a_corrupt_deflate_stream_is_one_clear_line(tmp_path, capsys):
    hu = np.random.default_rng(1).integers(-1024, 2000, size=(64, 64, 32), dtype=np.int16)
    good = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(hu, ras_affine()), str(good))
    data = bytearray(good.read_bytes())
    for offset in range(len(data) // 2, len(data) // 2 + 64):  # damage the middle of the stream
        data[offset] ^= 0xFF
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(bytes(data))
    assert main(["project", str(bad), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.nii.gz" in err[0] and "truncated or corrupt" in err[0]
    assert not (tmp_path / "out").exists()
