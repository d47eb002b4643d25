"""The nibabel-free NIfTI path: header, orientation, components, resampling and outlines,
each against the library it replaces (nibabel, scipy.ndimage) as the oracle."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from chexmix_dataset.ct import nifti
from chexmix_dataset.ct.nifti_header import HEADER_BYTES, plain_header
from chexmix_dataset.ct.orientation import to_ras
from chexmix_dataset.figures.overlay import outline
from chexmix_dataset.phantoms import chest_phantom, write_phantom_nifti
from chexmix_dataset.projector.components import connected_components
from chexmix_dataset.projector.parallel import resample


def nibabel_oracle(path: Path) -> tuple[np.ndarray, np.ndarray, float, float]:
    image = nib.load(str(path))  # on load nibabel moves the scaling from the header to the proxy
    proxy = image.dataobj
    return np.asanyarray(proxy.get_unscaled()), np.asarray(image.affine), float(proxy.slope), float(proxy.inter)


def rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def header_of(path: Path) -> bytes:
    with nifti._open(path) as handle:
        return handle.read(HEADER_BYTES)


def plain_files(folder: Path) -> list[Path]:
    """Headers as converters write them: each dtype, sform and/or qform, oblique, scaled,
    big-endian, with an extension, a singleton 4th axis, .nii and .nii.gz."""
    rng = np.random.default_rng(7)
    files = []
    dtypes = [np.int16, np.uint8, np.int8, np.uint16, np.int32, np.float32, np.float64]
    for k, dtype in enumerate(dtypes):
        data = rng.integers(-100 if np.dtype(dtype).kind != "u" else 0, 100, size=(5, 4, 3)).astype(dtype)
        affine = np.eye(4)
        affine[:3, :3] = rotation(rng) * rng.uniform(0.4, 3.0, size=3)
        affine[:3, 3] = rng.uniform(-200, 200, size=3)
        image = nib.Nifti1Image(data if k % 3 else data[..., None], affine)
        codes = [(1, 1), (0, 1), (2, 0)][k % 3]  # (sform, qform): both, qform only, sform only
        image.header.set_sform(affine, code=codes[0])
        image.header.set_qform(affine, code=codes[1])
        if np.dtype(dtype).kind in "iu":
            image.header.set_slope_inter(*[(1.0, -1024.0), (0.37, -1000.3), (2.0, 0.0)][k % 3])
        if k == 3:
            image.header.extensions.append(nib.nifti1.Nifti1Extension("comment", b"converted by a scanner tool"))
        if k == 4:
            image = nib.Nifti1Image(data, affine, image.header.as_byteswapped(">"))
        path = folder / f"plain{k}.nii{'.gz' if k % 2 else ''}"
        nib.save(image, str(path))
        files.append(path)
    return files


def test_plain_headers_are_read_without_nibabel_exactly_as_nibabel_reads_them(tmp_path):
    for path in plain_files(tmp_path):
        assert plain_header(header_of(path)) is not None, f"{path.name} should take the plain path"
        data, affine, slope, intercept = nifti.read_nifti_stored(path)
        expected = nibabel_oracle(path)
        expected_data = expected[0][..., 0] if expected[0].ndim == 4 else expected[0]
        assert data.dtype == expected_data.dtype.newbyteorder("=") and np.array_equal(data, expected_data), path.name
        np.testing.assert_allclose(affine, expected[1], rtol=0, atol=1e-12, err_msg=path.name)
        assert (slope, intercept) == pytest.approx(expected[2:], rel=0, abs=0), path.name


def edit_header(path: Path, edit, prefix: str = "edited_") -> Path:
    image = nib.load(str(path))
    header = image.header.copy()
    header["vox_offset"] = 352  # a loaded header says 0 (nibabel sets it when saving)
    edit(header)
    out = path.with_name(prefix + path.name)
    # Write the raw header block as is: nibabel would repair these fields when saving an image.
    block = header.binaryblock
    voxels = np.asanyarray(image.dataobj.get_unscaled()).astype(header.get_data_dtype()).tobytes(order="F")
    raw = block + b"\x00" * max(int(header["vox_offset"]) - len(block), 4) + voxels
    out.write_bytes(raw)
    return out


@pytest.mark.parametrize("name, edit", [
    ("qfac 0", lambda h: h["pixdim"].__setitem__(0, 0.0)),
    ("negative voxel size", lambda h: h["pixdim"].__setitem__(2, -h["pixdim"][2])),
    ("unknown sform code", lambda h: h.__setitem__("sform_code", 9)),
    ("no transform at all", lambda h: (h.__setitem__("sform_code", 0), h.__setitem__("qform_code", 0))),
])
def test_other_headers_fall_back_to_nibabel_and_agree_with_it(tmp_path, name, edit):
    image = nib.Nifti1Image(np.arange(60, dtype=np.int16).reshape(5, 4, 3), np.diag([0.7, 0.8, 2.5, 1.0]))
    image.header.set_qform(np.diag([0.7, 0.8, 2.5, 1.0]), code=1)
    nib.save(image, str(tmp_path / "ct.nii"))
    unedited = edit_header(tmp_path / "ct.nii", lambda h: None, prefix="unedited_")
    assert plain_header(unedited.read_bytes()[:HEADER_BYTES]) is not None  # so the edit is what refuses it
    path = edit_header(tmp_path / "ct.nii", edit)
    assert plain_header(path.read_bytes()[:HEADER_BYTES]) is None, name
    data, affine, *scale = nifti.read_nifti_stored(path)
    expected = nibabel_oracle(path)
    assert np.array_equal(data, expected[0]) and tuple(scale) == expected[2:]
    np.testing.assert_allclose(affine, expected[1], rtol=0, atol=1e-12)


def test_a_short_plain_file_is_one_clear_error(tmp_path):
    image = nib.Nifti1Image(np.zeros((8, 8, 8), np.int16), np.eye(4))
    nib.save(image, str(tmp_path / "ct.nii"))
    cut = tmp_path / "cut.nii"
    cut.write_bytes((tmp_path / "ct.nii").read_bytes()[:-100])
    with pytest.raises(nifti.ChexmixInputError, match="truncated or corrupt"):
        nifti.read_nifti_stored(cut)


def signed_permutation_affines(rng: np.random.Generator):
    for order in itertools.permutations(range(3)):
        for signs in itertools.product((-1, 1), repeat=3):
            affine = np.zeros((4, 4))
            for voxel_axis, (world_axis, sign) in enumerate(zip(order, signs)):
                affine[world_axis, voxel_axis] = sign * rng.uniform(0.4, 3.0)
            affine[:3, 3], affine[3, 3] = rng.uniform(-100, 100, 3), 1.0
            yield affine


def test_to_ras_reorders_like_nibabel_as_closest_canonical():
    rng = np.random.default_rng(3)
    data = rng.integers(0, 1000, size=(4, 5, 6)).astype(np.int16)
    affines = list(signed_permutation_affines(rng))
    for _ in range(30):  # oblique scans: tilted gantries, rotated sforms
        oblique = affines[rng.integers(len(affines))].copy()
        oblique[:3, :3] = oblique[:3, :3] @ rotation(rng) if rng.random() < 0.5 else oblique[:3, :3] @ (
            np.eye(3) + rng.normal(scale=0.15, size=(3, 3)))
        affines.append(oblique)
    for affine in affines:
        canonical = nib.as_closest_canonical(nib.Nifti1Image(data, affine))
        got, got_affine = to_ras(data, affine)
        assert np.array_equal(got, np.asanyarray(canonical.dataobj))
        np.testing.assert_allclose(got_affine, canonical.affine, rtol=0, atol=1e-12)


@pytest.mark.parametrize("shape", [(1,), (9,), (6, 11), (1, 1), (5, 7, 9), (14, 3, 25), (2, 3, 2, 6)])
@pytest.mark.parametrize("density", [0.0, 0.15, 0.4, 0.65, 1.0])
def test_connected_components_equal_scipy_label_and_find_objects(shape, density):
    mask = np.random.default_rng(len(shape) * 10 + int(density * 100)).random(shape) < density
    labels, count = ndimage.label(mask, structure=np.ones((3,) * mask.ndim))
    got = connected_components(mask)
    assert got.count == count
    assert np.array_equal(got.labels, labels)
    assert got.boxes == ndimage.find_objects(labels)


@pytest.mark.parametrize("shape_in, shape_out", [((133, 512), (512, 512)), ((133, 512), (300, 512)),
                                                 ((64, 64), (31, 47)), ((7, 5), (20, 3)), ((1, 9), (4, 4))])
def test_resample_equals_scipy_zoom_grid_mode(shape_in, shape_out):
    image = np.random.default_rng(0).random(shape_in).astype(np.float32) * 10
    zoom = (shape_out[0] / shape_in[0], shape_out[1] / shape_in[1])
    expected = ndimage.zoom(image, zoom, order=1, mode="nearest", grid_mode=True)
    got = resample(image, shape_out)
    assert got.shape == expected.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("thickness", [1, 2, 4])
def test_outline_equals_scipy_erosion_band(thickness):
    mask = ndimage.binary_opening(np.random.default_rng(thickness).random((40, 50)) < 0.6)
    mask[0, :10] = True  # a lesion cut by the image border is outlined there
    expected = mask & ~ndimage.binary_erosion(mask, iterations=thickness, border_value=0)
    assert np.array_equal(outline(mask, thickness), expected)


def test_chexmix_project_on_a_plain_ct_imports_neither_nibabel_nor_scipy(tmp_path):
    ct, mask = tmp_path / "ct.nii.gz", tmp_path / "mask.nii.gz"
    write_phantom_nifti(chest_phantom(0, (48, 40, 24)), ct, mask)
    script = (
        "import sys\nfrom chexmix_dataset.cli import main\n"
        f"code = main(['project', {str(ct)!r}, {str(mask)!r}, '--out', {str(tmp_path / 'out')!r}])\n"
        "print(code, sorted({m.split('.')[0] for m in sys.modules} & {'nibabel', 'scipy', 'pydicom', 'torch'}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.split("\n")[-2] == "0 []", done.stdout + done.stderr
    assert (tmp_path / "out" / "instances.json").exists()


@pytest.mark.parametrize("name, edit, expected", [
    ("voxels inside the header", lambda h: h.__setitem__("vox_offset", 200), "truncated or corrupt"),
    ("infinite intercept", lambda h: (h.__setitem__("scl_slope", 2.0), h.__setitem__("scl_inter", np.inf)),
     "truncated or corrupt"),
    ("a header claiming 64 TiB", lambda h: h["dim"].__setitem__(slice(1, 4), 32767), "header needs"),
    ("a header claiming more voxels than the file holds", lambda h: h["dim"].__setitem__(3, 300), "needs"),
])
def test_headers_nibabel_rejects_or_that_lie_are_one_clear_error(tmp_path, name, edit, expected):
    image = nib.Nifti1Image(np.zeros((6, 5, 4), np.int16), np.diag([0.7, 0.8, 2.5, 1.0]))
    nib.save(image, str(tmp_path / "ct.nii"))
    path = edit_header(tmp_path / "ct.nii", edit)
    with pytest.raises(nifti.ChexmixInputError, match=expected):
        nifti.read_nifti_stored(path)


def test_a_gzipped_header_claiming_64_tib_is_refused_before_allocating(tmp_path):
    import gzip

    image = nib.Nifti1Image(np.zeros((6, 5, 4), np.int16), np.diag([0.7, 0.8, 2.5, 1.0]))
    nib.save(image, str(tmp_path / "ct.nii"))
    raw = edit_header(tmp_path / "ct.nii", lambda h: h["dim"].__setitem__(slice(1, 4), 32767)).read_bytes()
    path = tmp_path / "huge.nii.gz"
    path.write_bytes(gzip.compress(raw))
    with pytest.raises(nifti.ChexmixInputError, match="GiB of voxels"):
        nifti.read_nifti_stored(path)


@pytest.mark.parametrize("srow", ["zeros", "rank two", "nan"])
def test_a_mask_with_a_degenerate_affine_is_one_clear_error(tmp_path, srow):
    from chexmix_dataset.ct.volume import load_ct

    ct = nib.Nifti1Image(np.zeros((6, 5, 4), np.int16), np.diag([0.7, 0.8, 2.5, 1.0]))
    nib.save(ct, str(tmp_path / "ct.nii"))
    affine = {"zeros": np.zeros((4, 4)), "rank two": np.diag([0.7, 0.8, 0.0, 1.0]),
              "nan": np.full((4, 4), np.nan)}[srow]
    mask = nib.Nifti1Image(np.zeros((6, 5, 4), np.uint8), None)
    mask.header.set_sform(affine if srow != "nan" else np.eye(4), code=1)
    nib.save(mask, str(tmp_path / "mask.nii"))
    path = tmp_path / "mask.nii"
    if srow == "nan":  # nibabel will not write a NaN sform: set the stored floats directly
        raw = bytearray(path.read_bytes())
        raw[280:328] = np.full(12, np.nan, "<f4").tobytes()
        path.write_bytes(bytes(raw))
    with pytest.raises(nifti.ChexmixInputError, match="lesion mask geometry"):
        load_ct(tmp_path / "ct.nii", path)
