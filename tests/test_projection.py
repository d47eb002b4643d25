"""The projector against independent expectations: the published loop, physics, geometry."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image
from published_loop import published_create_cxr, published_display
from scipy import ndimage

from chexmix_dataset.ct.volume import CTVolume, load_ct
from chexmix_dataset.errors import ChexmixInputError
from chexmix_dataset.phantoms import chest_phantom
from chexmix_dataset.projector import (
    MU_WATER_60KEV_PER_MM,
    ProjectorOptions,
    _seed_display,
    lesion_box,
    line_integral_mm,
    project_volume,
    seed_projection,
)

# The oracle keeps the published code's Image.getdata, which Pillow plans to remove.
pytestmark = pytest.mark.filterwarnings("ignore:Image.Image.getdata:DeprecationWarning")


def write_slices(folder: Path, slices: list[np.ndarray]) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, array in enumerate(slices):
        path = folder / f"slice{index}.png"  # natural order matters: slice2 before slice10
        Image.fromarray(array).save(path)
        paths.append(str(path))
    return paths


def ras_volume(hu: np.ndarray, spacing=(0.7, 0.7, 2.5), labels: np.ndarray | None = None) -> CTVolume:
    return CTVolume(voxels=hu, spacing_mm=spacing, affine=np.diag([*spacing, 1.0]), lesion_labels=labels,
                    is_hounsfield=True, path="memory")


# --- seed mode: identical to the published loop --------------------------------------------------

def _moving_structure_slices(rows: int, cols: int, n: int = 12) -> list[np.ndarray]:
    rng = np.random.default_rng(rows * cols)
    slices = []
    for z in range(n):
        array = rng.integers(0, 60, size=(rows, cols), dtype=np.uint8)
        array[rows // 4: rows // 2, z % cols: z % cols + 5] = 250  # structure that moves with z
        slices.append(array)
    return slices


def test_seed_mode_equals_published_loop_on_slice_folder(tmp_path):
    paths = write_slices(tmp_path / "slices", _moving_structure_slices(24, 24))
    expected = published_display(published_create_cxr(paths))
    ct = load_ct(tmp_path / "slices")
    got = project_volume(ct, ProjectorOptions(mode="seed")).image
    assert np.array_equal(got, expected)


def test_seed_display_truncates_and_stretches_bicubic_as_main_py():
    # Sums whose scaled values sit just under an integer: rounding and truncation disagree.
    xray = np.array([[0.0, 99.9, 199.9, 255.0], [10.0, 54.99, 254.9, 1.0]] * 20)
    image = _seed_display(xray)
    assert image.shape == (300, 4)
    truncated = np.array(xray / xray.max() * 255.0, dtype=np.uint8)
    assert not np.array_equal(truncated, np.rint(xray / xray.max() * 255.0).astype(np.uint8))
    bicubic = np.asarray(Image.fromarray(truncated).resize((4, 300), Image.Resampling.BICUBIC))
    bilinear = np.asarray(Image.fromarray(truncated).resize((4, 300), Image.Resampling.BILINEAR))
    assert np.array_equal(image, bicubic) and not np.array_equal(image, bilinear)
    assert np.array_equal(image, published_display(xray))  # main.py's default filter is bicubic


def test_seed_loop_on_wide_slices_equals_published_loop(tmp_path):
    # The vectorised loop reproduces the published scrambling of wide slices ...
    slices = _moving_structure_slices(20, 28)
    expected = published_display(published_create_cxr(write_slices(tmp_path / "slices", slices)))
    assert np.array_equal(seed_projection(np.stack(slices, axis=-1)), expected)


@pytest.mark.parametrize("rows, cols, words", [(20, 28, "wider than tall"), (28, 20, "taller than wide")])
def test_seed_mode_refuses_non_square_slices(tmp_path, rows, cols, words):
    # ... but project_volume refuses it: the image would not match the (true) lesion masks.
    write_slices(tmp_path / "slices", _moving_structure_slices(rows, cols))
    ct = load_ct(tmp_path / "slices")
    with pytest.raises(ChexmixInputError, match=words) as error:
        project_volume(ct, ProjectorOptions(mode="seed"))
    assert str(tmp_path / "slices") in str(error.value)
    assert max(project_volume(ct, ProjectorOptions(size_px=64)).image.shape) == 64  # physics mode takes it


def test_seed_mode_equals_published_loop_on_phantom_nifti(tmp_path):
    phantom = chest_phantom(3, shape=(40, 40, 24))
    path = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(phantom.hu, phantom.affine), path)
    # The slices the published tool would have read: whole-volume min-max 8-bit, anterior at
    # the top of each slice, patient's right on its left, inferior slice first.
    hu = phantom.hu.astype(np.float64)
    u8 = np.rint((hu - hu.min()) * (255.0 / (hu.max() - hu.min()))).astype(np.uint8)
    slices = [u8[::-1, ::-1, z].T.copy() for z in range(u8.shape[2])]
    expected = published_display(published_create_cxr(write_slices(tmp_path / "slices", slices)))

    got = project_volume(load_ct(path), ProjectorOptions(mode="seed")).image
    assert np.array_equal(got, expected)


# --- physics mode ------------------------------------------------------------------------------

def test_water_slab_line_integral_is_mu_water_times_thickness():
    dy = 0.8
    hu = np.full((20, 100, 10), -1000, dtype=np.int16)
    hu[:, 20:70, :] = 0  # 50 voxels of water: 40 mm
    integral = line_integral_mm(hu, dy, MU_WATER_60KEV_PER_MM)
    expected = MU_WATER_60KEV_PER_MM * 50 * dy
    assert np.max(np.abs(integral / expected - 1)) < 1e-5

    projection = project_volume(ras_volume(hu, spacing=(1.0, dy, 1.0)), ProjectorOptions(size_px=40))
    assert np.max(np.abs(projection.line_integral / expected - 1)) < 1e-5


def test_air_below_minus_1000_does_not_attenuate():
    hu = np.full((4, 30, 4), -2048, dtype=np.int16)  # outside the scanner's field of view
    assert np.allclose(line_integral_mm(hu, 1.0, MU_WATER_60KEV_PER_MM), 0.0)
    as_float = line_integral_mm(hu.astype(np.float32), 1.0, MU_WATER_60KEV_PER_MM)
    assert np.allclose(as_float, 0.0)


def test_dense_sphere_right_superior_anterior_appears_top_left():
    shape = (60, 50, 40)  # deliberately unequal axes: a transposition cannot hide
    hu = np.full(shape, -1000, dtype=np.int16)
    x, y, z = np.ogrid[: shape[0], : shape[1], : shape[2]]
    # High x = patient's right, high y = anterior, high z = superior (RAS+).
    hu[(x - 48) ** 2 + (y - 40) ** 2 + (z - 32) ** 2 <= 36] = 1000
    image = project_volume(ras_volume(hu, spacing=(1.0, 1.0, 1.0)), ProjectorOptions(size_px=60)).image
    rows, cols = np.nonzero(image > 128)
    assert rows.mean() < image.shape[0] / 2, "superior must be at the top"
    assert cols.mean() < image.shape[1] / 2, "patient's right must be on the image's left"


def test_square_pixels_at_requested_size():
    hu = np.zeros((100, 80, 30), dtype=np.int16)  # 70 mm wide, 75 mm tall
    projection = project_volume(ras_volume(hu, spacing=(0.7, 0.7, 2.5)), ProjectorOptions(size_px=300))
    height, width = projection.image.shape
    assert max(height, width) == 300
    assert projection.pixel_spacing_mm[0] == projection.pixel_spacing_mm[1]
    assert abs(width / height - 70 / 75) < 0.01


def _reoriented_nifti(data_ras: np.ndarray, affine_ras: np.ndarray, flip: tuple[int, ...], perm: tuple[int, ...]):
    """The same image stored in another voxel order: flipped then permuted axes, affine to match."""
    data, affine = data_ras, affine_ras.copy()
    for axis in flip:
        data = np.flip(data, axis)
        flip_matrix = np.eye(4)
        flip_matrix[axis, axis] = -1
        flip_matrix[axis, 3] = data.shape[axis] - 1
        affine = affine @ flip_matrix
    data = np.transpose(data, perm)
    permutation = np.eye(4)[list(perm) + [3]].T
    return np.ascontiguousarray(data), affine @ permutation


@pytest.mark.parametrize("flip, perm", [((0,), (0, 1, 2)), ((1, 2), (2, 0, 1)), ((), (1, 0, 2))])
def test_projection_does_not_depend_on_storage_order(tmp_path, flip, perm):
    phantom = chest_phantom(5, shape=(48, 48, 24), lesions=True)
    reference_ct = tmp_path / "ras.nii.gz"
    reference_mask = tmp_path / "ras_mask.nii.gz"
    nib.save(nib.Nifti1Image(phantom.hu, phantom.affine), reference_ct)
    nib.save(nib.Nifti1Image(phantom.labels, phantom.affine), reference_mask)
    ct, affine = _reoriented_nifti(phantom.hu, phantom.affine, flip, perm)
    mask, _ = _reoriented_nifti(phantom.labels, phantom.affine, flip, perm)
    nib.save(nib.Nifti1Image(ct, affine), tmp_path / "other.nii.gz")
    nib.save(nib.Nifti1Image(mask, affine), tmp_path / "other_mask.nii.gz")

    for mode in ("physics", "seed"):
        expected = project_volume(load_ct(reference_ct, reference_mask), ProjectorOptions(mode=mode, size_px=96))
        got = project_volume(load_ct(tmp_path / "other.nii.gz", tmp_path / "other_mask.nii.gz"),
                             ProjectorOptions(mode=mode, size_px=96))
        assert np.array_equal(got.image, expected.image)
        assert len(got.instances) == len(expected.instances) > 0
        for a, b in zip(got.instances, expected.instances):
            assert np.array_equal(a.mask, b.mask)


# --- lesions -------------------------------------------------------------------------------------

def test_lesion_path_length_threshold():
    hu = np.zeros((40, 40, 40), dtype=np.int16)
    labels = np.zeros(hu.shape, dtype=np.uint8)
    labels[5:15, 10:13, 5:15] = 1  # 3 voxels (3 mm) deep along anterior-posterior
    labels[25:35, 20:21, 25:35] = 1  # 1 voxel (1 mm) deep
    ct = ras_volume(hu, spacing=(1.0, 1.0, 1.0), labels=labels)

    default = project_volume(ct, ProjectorOptions(size_px=40, min_area_mm2=1))
    assert len(default.instances) == 2  # default threshold: one voxel
    assert sorted(int(i.mask.sum()) for i in default.instances) == [100, 100]

    thick_only = project_volume(ct, ProjectorOptions(size_px=40, min_lesion_mm=2.0, min_area_mm2=1))
    assert len(thick_only.instances) == 1
    rows, cols = np.nonzero(thick_only.instances[0].mask)
    # x 5..14 -> columns 25..34 (right on the left); z 5..14 -> rows 25..34 (superior on top)
    assert (cols.min(), cols.max(), rows.min(), rows.max()) == (25, 34, 25, 34)


def test_instances_are_3d_components_and_may_overlap():
    hu = np.zeros((30, 30, 30), dtype=np.int16)
    labels = np.zeros(hu.shape, dtype=np.uint8)
    labels[10:20, 2:6, 10:20] = 1  # posterior lesion
    labels[12:22, 20:25, 12:22] = 1  # anterior lesion, behind the first on the X-ray
    labels[2:5, 10:14, 2:5] = 2  # a consolidation elsewhere
    projection = project_volume(ras_volume(hu, spacing=(1.0, 1.0, 1.0), labels=labels),
                                ProjectorOptions(size_px=30, min_area_mm2=1))
    assert len(projection.instances) == 3
    assert sorted(i.lesion_type for i in projection.instances) == ["consolidation", "ground_glass", "ground_glass"]
    ground_glass = [i.mask for i in projection.instances if i.lesion_type == "ground_glass"]
    assert (ground_glass[0] & ground_glass[1]).sum() == 8 * 8


@pytest.mark.parametrize("layout", ["C", "F", "transposed", "flipped"])
def test_lesion_box_is_the_bounding_box_of_the_nonzero_voxels_in_any_layout(layout):
    rng = np.random.default_rng(7)
    for trial in range(12):
        labels = np.zeros((23, 17, 11), dtype=np.uint8)
        if trial:  # trial 0: no lesion at all
            for _ in range(trial % 3 + 1):
                corner = rng.integers(0, labels.shape)
                size = rng.integers(1, 6, size=3)
                labels[tuple(slice(c, c + s) for c, s in zip(corner, size))] = rng.integers(1, 4)
        view = {"C": labels, "F": np.asfortranarray(labels),
                "transposed": np.ascontiguousarray(labels.transpose(1, 2, 0)).transpose(2, 0, 1),
                "flipped": np.ascontiguousarray(labels[::-1, :, ::-1])[::-1, :, ::-1]}[layout]
        assert layout != "flipped" or min(view.strides) < 0
        assert np.array_equal(view, labels)
        hits = np.nonzero(labels)
        expected = None if not trial else tuple(slice(int(h.min()), int(h.max()) + 1) for h in hits)
        assert lesion_box(view) == expected


def test_instance_count_equals_separate_3d_lesions_in_phantoms():
    for seed in range(4):
        phantom = chest_phantom(seed, shape=(64, 64, 28), lesions=True)
        _, count = ndimage.label(phantom.labels > 0, structure=np.ones((3, 3, 3)))
        assert count == phantom.lesion_count
        ct = CTVolume(phantom.hu, phantom.spacing_mm, phantom.affine, phantom.labels, True, "phantom")
        projection = project_volume(ct, ProjectorOptions(size_px=256, min_area_mm2=0))
        assert len(projection.instances) == phantom.lesion_count


def test_small_projected_lesions_are_dropped():
    hu = np.zeros((30, 30, 30), dtype=np.int16)
    labels = np.zeros(hu.shape, dtype=np.uint8)
    labels[3:5, 5:9, 3:5] = 1  # 2 x 2 mm on the X-ray
    labels[15:25, 5:9, 15:25] = 1  # 10 x 10 mm
    ct = ras_volume(hu, spacing=(1.0, 1.0, 1.0), labels=labels)
    assert len(project_volume(ct, ProjectorOptions(size_px=30, min_area_mm2=5)).instances) == 1
    assert len(project_volume(ct, ProjectorOptions(size_px=30, min_area_mm2=1)).instances) == 2


def test_memory_stays_within_twice_the_volume():
    shape = (256, 256, 150)
    hu = np.full(shape, -1000, dtype=np.int16)
    hu[20:236, 20:236, :] = 40
    labels = np.zeros(shape, dtype=np.uint8)
    labels[30:220, 30:220, 10:140] = (np.indices((190, 190, 130)).sum(axis=0) % 37 == 0)  # many voxels
    ct = ras_volume(hu, spacing=(1.4, 1.4, 2.5), labels=labels)
    tracemalloc.start()
    project_volume(ct, ProjectorOptions(size_px=256))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak <= 2 * hu.nbytes, f"peak extra memory {peak / 2**20:.0f} MiB for a {hu.nbytes / 2**20:.0f} MiB volume"


@pytest.mark.parametrize("layout", ["C", "F", "y slowest"])
@pytest.mark.parametrize("kind", ["int16", "float32 scaled"])
def test_projection_does_not_depend_on_how_the_volume_is_chunked(monkeypatch, layout, kind):
    from chexmix_dataset.projector import chunks

    hu = chest_phantom(1, shape=(96, 80, 60)).hu
    volume = {"C": hu, "F": np.asfortranarray(hu), "y slowest": hu.transpose(1, 0, 2).copy().transpose(1, 0, 2)}[layout]
    scale = 1.0 if kind == "int16" else 0.5
    if kind != "int16":
        volume = (volume / scale).astype(np.float32)
    images = {}
    for chunk_voxels in (1 << 18, 1 << 14):  # one or two chunks, then many
        monkeypatch.setattr(chunks, "CHUNK_VOXELS", chunk_voxels)
        images[chunk_voxels] = line_integral_mm(volume, 0.7, 0.0206, scale, 0.0)
    if kind == "int16" or layout != "y slowest":  # exact sums, or each element summed in one chunk
        assert np.array_equal(images[1 << 18], images[1 << 14])
    expected = (np.maximum(volume.astype(np.float64) * scale, -1000.0).sum(axis=1) + 1000.0 * 80) * 0.0206 / 1000 * 0.7
    for image in images.values():
        np.testing.assert_allclose(image, expected, rtol=1e-12)


@pytest.mark.parametrize("sums", ["float32 (BLAS)", "int32"])
@pytest.mark.parametrize("dtype, offset", [("int16", 0.0), ("uint16", -1024.0), (">i2", -1000.0), ("int8", 0.0)])
def test_integer_sums_clip_at_minus_1000_hu_on_either_path(monkeypatch, sums, dtype, offset):
    from chexmix_dataset.projector import parallel

    if sums == "int32":  # the path of volumes whose sums could exceed float32's exact integers
        monkeypatch.setattr(parallel, "FLOAT32_EXACT_INTEGERS", 0)
    info = np.iinfo(np.dtype(dtype))
    stored = np.random.default_rng(3).integers(info.min, info.max, size=(9, 40, 7), endpoint=True).astype(dtype)
    got = line_integral_mm(stored, 0.7, 0.0206, 1.0, offset)
    hu = np.maximum(stored.astype(np.float64) + offset, -1000.0)
    np.testing.assert_allclose(got, (hu.sum(axis=1) + 1000.0 * 40) * 0.0206 / 1000 * 0.7, rtol=1e-12)


def _seed_sums_in_float64(ct: CTVolume) -> np.ndarray:
    """The 8-bit slices' AP sums straight from the published scaling, float64 per voxel."""
    values = ct.voxels.astype(np.float64) * ct.value_slope + ct.value_intercept
    low, high = values.min(), values.max()
    return np.rint((values - low) * (255.0 / (high - low))).astype(np.uint8).sum(axis=1, dtype=np.int64)


@pytest.mark.parametrize("float32_form", ["used where exact", "never used"])
def test_seed_sums_equal_the_published_scaling_for_every_calibration(monkeypatch, float32_form):
    from chexmix_dataset.projector import seed

    if float32_form == "never used":
        monkeypatch.setattr(seed, "_float32_form", lambda *args: None)
    used = []
    original = seed._float32_form
    monkeypatch.setattr(seed, "_float32_form", lambda *args: used.append(original(*args)) or used[-1])
    phantom = chest_phantom(2, shape=(64, 64, 30))
    rng = np.random.default_rng(5)
    # An odd range of stored codes has no 8-bit value exactly half-way; an even one (the
    # phantom's 1768) has several, which float64 rounds to either side.
    odd_range = np.minimum(phantom.hu, phantom.hu.max() - 1)
    for slope, intercept in [(1.0, 0.0), (1.0, -1024.0), (0.37, -1000.3), (2.0, 3.0), (0.5, -3024.0),
                             *[(float(rng.uniform(0.1, 3)), float(rng.uniform(-2000, 0))) for _ in range(8)]]:
        for stored in (phantom.hu, odd_range, np.clip(odd_range + 1024, 0, None).astype(np.uint16)):
            ct = CTVolume(stored, phantom.spacing_mm, phantom.affine, None, True, "p",
                          value_slope=slope, value_intercept=intercept)
            assert np.array_equal(seed._seed_column_sums(ct), _seed_sums_in_float64(ct)), (slope, intercept)
    if float32_form == "never used":
        assert all(form is None for form in used)
    else:  # the fast form is taken where it is exact, and refused where float32 would differ
        assert sum(form is not None for form in used) >= len(used) // 2 and None in used


@pytest.mark.parametrize("dtype", [np.int16, np.uint8])
def test_seed_projects_a_constant_volume(dtype):
    ct = CTVolume(np.full((32, 32, 20), 100, dtype), (1.0, 1.0, 2.0), np.diag([1.0, 1.0, 2.0, 1.0]), None,
                  dtype != np.uint8, "constant")
    image = project_volume(ct, ProjectorOptions(mode="seed")).image
    # HU are min-max scaled to 8 bits: one value gives 0 everywhere. 8-bit slices are summed as
    # read, and the published display stretches the uniform sums to 255.
    assert image.shape[1] == 32 and np.all(image == (0 if dtype == np.int16 else 255))
