"""Synthetic chest phantoms: determinism, anatomy in HU, lesion bookkeeping, files and CLI."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from chexmix_dataset.cli import main
from chexmix_dataset.ct.volume import load_ct
from chexmix_dataset.dataset.lesions import coco_object
from chexmix_dataset.errors import ChexmixInputError
from chexmix_dataset.phantoms import (
    FIELD_OF_VIEW_MM,
    LESION_HU,
    chest_phantom,
    cxr_standin,
    write_phantom_nifti,
    write_phantoms,
)

SMALL = (64, 64, 40)
TINY = (48, 48, 32)
FULL_26 = np.ones((3, 3, 3), dtype=bool)


@pytest.fixture(scope="module")
def phantom():
    return chest_phantom(3, (96, 96, 48), lesions=True)


def test_same_seed_same_phantom_other_seed_differs():
    first, again, other = chest_phantom(11, SMALL), chest_phantom(11, SMALL), chest_phantom(12, SMALL)
    np.testing.assert_array_equal(first.hu, again.hu)
    np.testing.assert_array_equal(first.labels, again.labels)
    assert first.lesion_count == again.lesion_count
    assert not np.array_equal(first.hu, other.hu)


def test_layout_spacing_and_affine(phantom):
    assert phantom.hu.dtype == np.int16 and phantom.labels.dtype == np.uint8
    assert phantom.hu.shape == phantom.labels.shape == phantom.lung_mask.shape == (96, 96, 48)
    expected_spacing = np.array(FIELD_OF_VIEW_MM) / np.array((96, 96, 48))
    np.testing.assert_allclose(phantom.spacing_mm, expected_spacing)
    np.testing.assert_allclose(np.diag(phantom.affine)[:3], expected_spacing)
    np.testing.assert_allclose(phantom.affine[:3, :3], np.diag(expected_spacing))
    assert nib.aff2axcodes(phantom.affine) == ("R", "A", "S")
    assert phantom.patient_id == "phantom-0003"
    assert phantom.lesion_types == {1: "ground_glass", 2: "consolidation"}
    assert set(np.unique(phantom.labels)) <= {0, 1, 2}


def test_hounsfield_units_per_structure(phantom):
    hu = phantom.hu.astype(float)
    parenchyma = phantom.lung_mask & (phantom.labels == 0)
    assert abs(np.median(hu[parenchyma]) + 850) < 40
    # The corners of the field of view are outside the body: air.
    assert abs(np.median(hu[:4, :4, :]) + 1000) < 40
    for label, (lo, hi) in LESION_HU.items():
        lesion_hu = hu[phantom.labels == label]
        assert lesion_hu.size == 0 or (lesion_hu.min() >= lo and lesion_hu.max() <= hi)
    assert np.all(phantom.lung_mask[phantom.labels > 0]), "lesion voxels outside the lungs"
    # Bone (> 250 HU) sits mostly in the posterior half; its lateral centre of mass is midline.
    bone = np.argwhere(phantom.hu > 250)
    assert len(bone) > 0.005 * phantom.hu.size
    assert abs(bone[:, 0].mean() - 47.5) < 6
    assert np.mean(bone[:, 1] < 48) > 0.5


def test_anatomy_is_in_ras_order(phantom):
    """Right lung larger (heart on the left); right diaphragm dome higher than the left."""
    lung = phantom.lung_mask
    nx = lung.shape[0]
    right, left = lung[nx // 2:], lung[: nx // 2]  # axis 0 increases towards the patient's right
    assert right.sum() > 1.05 * left.sum()
    lowest_right = np.nonzero(right.any(axis=(0, 1)))[0].min()
    lowest_left = np.nonzero(left.any(axis=(0, 1)))[0].min()
    top_right = np.nonzero(right[:, :, lowest_right:].sum(axis=(0, 1)) > 0.5 * right.sum(axis=(0, 1)).max())[0][0]
    top_left = np.nonzero(left[:, :, lowest_left:].sum(axis=(0, 1)) > 0.5 * left.sum(axis=(0, 1)).max())[0][0]
    assert lowest_right + top_right > lowest_left + top_left


@pytest.mark.parametrize("seed", range(8))
def test_lesion_count_is_the_number_of_26_connected_lesions(seed):
    result = chest_phantom(seed, SMALL, lesions=True if seed % 2 else None)
    components, count = ndimage.label(result.labels > 0, structure=FULL_26)
    assert count == result.lesion_count
    for index in range(1, count + 1):
        assert len(np.unique(result.labels[components == index])) == 1, "one lesion, one type"


def test_lesion_free_fraction_and_forcing():
    counts = [chest_phantom(seed, TINY).lesion_count for seed in range(30)]
    lesion_free = sum(count == 0 for count in counts)
    assert 0 < lesion_free < 30
    assert max(counts) <= 6 and max(counts) >= 2
    assert chest_phantom(7, TINY, lesions=False).labels.max() == 0
    assert all(chest_phantom(seed, TINY, lesions=True).lesion_count >= 1 for seed in range(5))


def test_too_small_shape_is_input_error():
    with pytest.raises(ChexmixInputError):
        chest_phantom(0, (8, 8, 8))


def test_nifti_round_trip(tmp_path, phantom):
    ct_path, mask_path = tmp_path / "ct.nii.gz", tmp_path / "mask.nii.gz"
    write_phantom_nifti(phantom, ct_path, mask_path)
    ct_image, mask_image = nib.load(ct_path), nib.load(mask_path)
    assert ct_image.get_data_dtype() == np.int16 and mask_image.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(np.asanyarray(ct_image.dataobj), phantom.hu)
    np.testing.assert_array_equal(np.asanyarray(mask_image.dataobj), phantom.labels)
    for image in (ct_image, mask_image):
        np.testing.assert_allclose(image.affine, phantom.affine, atol=1e-5)
        assert nib.aff2axcodes(image.affine) == ("R", "A", "S")
        assert int(image.header["qform_code"]) == 1 and int(image.header["sform_code"]) == 1
    volume = load_ct(ct_path, mask_path)
    np.testing.assert_array_equal(volume.voxels, phantom.hu)
    np.testing.assert_array_equal(volume.lesion_labels, phantom.labels)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct.nii.gz", "mask.nii.gz"]


def test_cli_writes_phantoms(tmp_path, capsys):
    out = tmp_path / "phantoms"
    code = main(["phantom", "--out", str(out), "--n", "2", "--seed", "5", "--shape", *map(str, TINY)])
    assert code == 0
    names = ["phantom_0000.nii.gz", "phantom_0001.nii.gz"]
    assert sorted(p.name for p in (out / "ct").iterdir()) == names
    assert sorted(p.name for p in (out / "mask").iterdir()) == names
    second = load_ct(out / "ct" / names[1], out / "mask" / names[1])
    expected = chest_phantom(6, TINY)
    np.testing.assert_array_equal(second.voxels, expected.hu)
    np.testing.assert_array_equal(second.lesion_labels, expected.labels)
    assert str(out / "ct" / names[1]) in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == ["phantoms"], "temporary folders left behind"


def test_phantom_output_is_replaced_only_by_the_same_seed_and_shape(tmp_path, capsys):
    out = tmp_path / "p"
    pairs = write_phantoms(out, 2, seed=2, shape=TINY)
    assert pairs == [(out / "ct" / f"phantom_{i:04d}.nii.gz", out / "mask" / f"phantom_{i:04d}.nii.gz") for i in (0, 1)]
    assert json.loads((out / "phantoms.json").read_text()) == {"seed": 2, "n": 2, "shape": list(TINY)}
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()  # the progress bar of the first write
    # Another seed or shape would mix two sets of phantoms: refused, nothing changes.
    for args in (["--seed", "3"], ["--seed", "2", "--shape", "24", "24", "26"]):
        shape = args[3:] or list(map(str, TINY))
        code = main(["phantom", "--out", str(out), "--n", "1", *args[:2], "--shape", *shape])
        err = capsys.readouterr().err
        assert code == 2 and "seed 2" in err and err.count("\n") == 1
        assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    # The same seed and shape replaces the folder whole (here with fewer phantoms).
    write_phantoms(out, 1, seed=2, shape=TINY)
    assert sorted(p.name for p in (out / "ct").iterdir()) == ["phantom_0000.nii.gz"]
    assert (out / "ct" / "phantom_0000.nii.gz").read_bytes() == before[Path("ct/phantom_0000.nii.gz")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]


def test_phantom_refuses_foreign_files_and_phantoms_of_unknown_seed(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(ChexmixInputError, match="keep.txt"):
        write_phantoms(tmp_path, 1, seed=2, shape=TINY)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
    older = tmp_path / "older"
    write_phantoms(older, 1, seed=0, shape=TINY)
    (older / "phantoms.json").unlink()  # as an earlier CheXMix wrote them
    with pytest.raises(ChexmixInputError, match="seed and shape unknown"):
        write_phantoms(older, 1, seed=0, shape=TINY)


def test_failed_run_leaves_no_output(tmp_path, monkeypatch):
    # write_phantoms looks chest_phantom up in its own module, so that is where it is replaced.
    import chexmix_dataset.phantoms.files as phantom_files

    real = phantom_files.chest_phantom

    def fail_on_second(seed, shape, lesions=None):
        if seed == 1:
            raise RuntimeError("disk on fire")
        return real(seed, shape, lesions)

    monkeypatch.setattr(phantom_files, "chest_phantom", fail_on_second)
    with pytest.raises(RuntimeError):
        write_phantoms(tmp_path / "out", 2, seed=0, shape=TINY)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "extra",
    [["--n", "0"], ["--shape", "8", "8", "8"], ["--out-is-under-a-file"]],
)
def test_cli_bad_input_exit_code_2(tmp_path, capsys, extra):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    out = blocker / "out" if extra == ["--out-is-under-a-file"] else tmp_path / "out"
    args = [] if extra == ["--out-is-under-a-file"] else extra
    code = main(["phantom", "--out", str(out), "--shape", *map(str, TINY), *args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("chexmix phantom: error:") and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_cxr_standins():
    types, lesion_free, contrasts = set(), 0, []
    for seed in range(10):
        standin = cxr_standin(seed, size=256)
        assert standin.image.dtype == np.uint8 and standin.image.shape == (256, 256)
        assert standin.patient_id == f"standin-{seed:04d}"
        assert len(standin.instances) <= 4
        lesion_free += not standin.instances
        taken = np.zeros((256, 256), dtype=bool)
        for index, instance in enumerate(standin.instances):
            assert instance.mask.shape == (256, 256) and instance.mask.dtype == bool
            assert instance.mask.any()
            assert not np.any(taken & instance.mask), "lesions overlap"
            taken |= instance.mask
            types.add(instance.lesion_type)
            assert coco_object(instance, index)["area"] == instance.mask.sum()
            ring = ndimage.binary_dilation(instance.mask, iterations=6) & ~ndimage.binary_dilation(instance.mask, iterations=2)
            contrasts.append(standin.image[instance.mask].mean() - standin.image[ring].mean())
    np.testing.assert_array_equal(cxr_standin(4, 256).image, cxr_standin(4, 256).image)
    assert not np.array_equal(cxr_standin(4, 256).image, cxr_standin(5, 256).image)
    assert types == {"ground_glass", "consolidation"}
    assert 0 < lesion_free < 10
    assert np.mean(contrasts) > 3, "lesions should be brighter than their surroundings"


def test_cxr_standin_radiological_layout():
    """Lungs dark, mediastinum and abdomen bright; heart bulges to the image right."""
    images = np.stack([cxr_standin(seed, size=256).image.astype(float) for seed in range(6)])
    mean = images.mean(axis=0)
    lung_right_patient = mean[80:120, 60:90].mean()
    mediastinum = mean[80:120, 120:136].mean()
    abdomen = mean[225:245, 90:170].mean()
    assert mediastinum > lung_right_patient + 20 and abdomen > lung_right_patient + 20
    heart_band = mean[150:180]
    assert heart_band[:, 150:175].mean() > heart_band[:, 81:106].mean()


def test_negative_seed_and_impossible_output_fail_before_work(tmp_path, capsys):
    from chexmix_dataset.cli import main as cli_main

    assert cli_main(["phantom", "--out", str(tmp_path / "p"), "--seed", "-1"]) == 2
    assert "seed" in capsys.readouterr().err and not (tmp_path / "p").exists()
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    assert cli_main(["phantom", "--out", str(blocker / "sub" / "p")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a folder" in err[0]
