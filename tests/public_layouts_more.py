"""Tiny fixture trees in the exact public layouts of COVID-QU-Ex, QaTa-COV19, MosMedData and
COVID-19-20 (for tests only; see each adapter's module doc for where each fact comes from).

Images and masks are written with PIL as the collections store them: 8-bit PNGs, masks 0/255.
CTs are written with nibabel: MosMed as int16 HU, COVID-19-20 as a scaled NIfTI (uint16 raw
values with ``scl_slope`` 1 and ``scl_inter`` -1024, so HU = raw - 1024), masks as uint8 0/1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image
from public_layouts import cxr_image, tiny_ct, write_nifti

SIZE = 64  # px


@dataclass
class CXRFixture:
    """What a CXR fixture holds: per expected image id its lesion squares (x0, y0, side) in px."""

    root: Path
    kept: dict[str, dict] = field(default_factory=dict)     # image_id -> {squares, split, origin, lung}
    skipped: dict[str, str] = field(default_factory=dict)   # file name -> word expected in the reason


def square_mask(squares: list[tuple[int, int, int]], size: int = SIZE) -> np.ndarray:
    """A (size, size) uint8 mask, 255 inside each (x0, y0, side) square, 0 elsewhere."""
    mask = np.zeros((size, size), dtype=np.uint8)
    for x0, y0, side in squares:
        mask[y0:y0 + side, x0:x0 + side] = 255
    return mask


def _png(path: Path, array: np.ndarray, mode: str = "L") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array, mode="L")
    (image.convert(mode) if mode != "L" else image).save(path)


# --------------------------------------------------------------------------- COVID-QU-Ex ---

def make_covid_qu_ex(root: Path, nesting: str = "double", negative_masks: bool = True) -> CXRFixture:
    """``Infection Segmentation Data/Infection Segmentation Data/{Train,Val,Test}/{class}/...``.

    ``nesting``: "double" (as the Kaggle archive unzips), "single" (one level) or "none" (``root``
    is that folder). ``negative_masks`` False leaves out the negatives' ``infection masks``
    folders. One COVID-19 image lacks its infection mask (skipped), one Normal image lacks its
    lung mask (kept, no lung mask path).
    """
    base = {"double": root / "Infection Segmentation Data" / "Infection Segmentation Data",
            "single": root / "Infection Segmentation Data", "none": root}[nesting]
    fixture = CXRFixture(root=root)
    specs = [  # split, class, file name, lesion squares or None (negative)
        ("Train", "COVID-19", "covid_1.png", [(5, 5, 6), (30, 30, 10)]),
        ("Train", "COVID-19", "covid_2.png", [(10, 40, 8)]),
        ("Val", "COVID-19", "covid_3.png", [(20, 20, 5)]),
        ("Test", "COVID-19", "covid_4.png", [(40, 8, 7), (8, 44, 9), (44, 44, 4)]),
        ("Train", "Non-COVID", "non_COVID (1).png", None),
        ("Test", "Non-COVID", "non_COVID (2).png", None),
        ("Train", "Normal", "Normal (1).png", None),
        ("Val", "Normal", "Normal (2).png", None),
    ]
    slugs = {"COVID-19": "covid-19", "Non-COVID": "non-covid", "Normal": "normal"}
    for seed, (split, class_name, filename, squares) in enumerate(specs):
        folder = base / split / class_name
        _png(folder / "images" / filename, cxr_image(seed, SIZE))
        lung = filename != "Normal (2).png"
        if lung:
            _png(folder / "lung masks" / filename, square_mask([(4, 4, 56)]))
        if squares is not None or negative_masks:
            _png(folder / "infection masks" / filename, square_mask(squares or []))
        image_id = f"covid-qu-ex-{slugs[class_name]}-{Path(filename).stem}"
        fixture.kept[image_id] = {"squares": squares or [], "split": "test" if split == "Test" else "train",
                                  "origin": f"covid-qu-ex/{slugs[class_name]}", "lung": lung}
    _png(base / "Train" / "COVID-19" / "images" / "covid_9.png", cxr_image(9, SIZE))
    fixture.skipped["covid_9.png"] = "no infection mask"
    return fixture


# ---------------------------------------------------------------------------- QaTa-COV19 ---

def make_qata_cov19(root: Path, nesting: str = "archive") -> CXRFixture:
    """``QaTa-COV19/QaTa-COV19-v2/{Train Set,Test Set}/{Images,Ground-truths}`` (``mask_`` + name).

    ``nesting``: "archive" (as the Kaggle archive unzips), "version" (``root`` holds
    ``QaTa-COV19-v2``) or "none". One training image is stored as RGB; one image has no ground
    truth, one ground truth no image, and one mask has the wrong size.
    """
    base = {"archive": root / "QaTa-COV19" / "QaTa-COV19-v2", "version": root / "QaTa-COV19-v2",
            "none": root}[nesting]
    fixture = CXRFixture(root=root)
    specs = [("Train Set", "covid_1", [(5, 5, 6)], "L"), ("Train Set", "covid_2", [(10, 10, 4), (40, 40, 12)], "RGB"),
             ("Train Set", "covid_3", [(0, 0, 8)], "L"), ("Test Set", "covid_7", [(30, 20, 9)], "L"),
             ("Test Set", "covid_8", [(2, 50, 5), (50, 2, 5)], "L")]
    for seed, (split, stem, squares, mode) in enumerate(specs):
        _png(base / split / "Images" / f"{stem}.png", cxr_image(seed, SIZE), mode)
        _png(base / split / "Ground-truths" / f"mask_{stem}.png", square_mask(squares))
        fixture.kept[f"qata-cov19-{stem}"] = {"squares": squares, "split": "train" if split == "Train Set" else "test",
                                              "origin": "qata-cov19"}
    _png(base / "Train Set" / "Images" / "covid_4.png", cxr_image(20, SIZE))
    fixture.skipped["covid_4.png"] = "no ground truth"
    _png(base / "Test Set" / "Ground-truths" / "mask_covid_99.png", square_mask([(1, 1, 3)]))
    fixture.skipped["mask_covid_99.png"] = "absent image"
    _png(base / "Test Set" / "Images" / "covid_9.png", cxr_image(21, SIZE))
    _png(base / "Test Set" / "Ground-truths" / "mask_covid_9.png", np.zeros((SIZE // 2, SIZE), dtype=np.uint8))
    fixture.skipped["mask_covid_9.png"] = "size differs"
    return fixture


# ---------------------------------------------------------------------------- MosMedData ---

def make_mosmed(root: Path, annotated: dict[str, str], unannotated: dict[str, str], amid_layout: bool = False
                ) -> dict[str, int]:
    """``COVID19_1110/studies/CT-N/study_NNNN.nii.gz`` + ``COVID19_1110/masks/study_NNNN_mask.nii.gz``.

    ``annotated`` / ``unannotated``: study name -> severity folder (e.g. "CT-1"). With
    ``amid_layout`` the ``CT-*`` folders sit directly in ``COVID19_1110``. Returns
    {study: lesion voxel count}.
    """
    base = root / "COVID19_1110"
    studies = base if amid_layout else base / "studies"
    lesion_voxels = {}
    for index, (study, folder) in enumerate({**annotated, **unannotated}.items()):
        hu, labels, affine = tiny_ct(seed=70 + index)
        write_nifti(studies / folder / f"{study}.nii.gz", hu.astype(np.int16), affine)
        if study in annotated:
            write_nifti(base / "masks" / f"{study}_mask.nii.gz", labels.astype(np.uint8), affine)
            lesion_voxels[study] = int(labels.sum())
    return lesion_voxels


# --------------------------------------------------------------------------- COVID-19-20 ---

def make_covid19_20(root: Path, names: list[str], without_mask: tuple[str, ...] = ()
                    ) -> dict[str, tuple[int, np.ndarray]]:
    """``COVID-19-20_v2/Train/NAME_ct.nii.gz`` (scaled NIfTI, HU = raw - 1024) + ``NAME_seg.nii.gz``.

    Returns {name: (lesion voxel count, HU array as written)}.
    """
    folder = root / "COVID-19-20_v2" / "Train"
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for index, name in enumerate(names):
        hu, labels, affine = tiny_ct(seed=90 + index)
        image = nib.Nifti1Image((hu.astype(np.int32) + 1024).astype(np.uint16), affine)
        image.header.set_slope_inter(1.0, -1024.0)
        nib.save(image, str(folder / f"{name}_ct.nii.gz"))
        if name not in without_mask:
            nib.save(nib.Nifti1Image(labels.astype(np.uint8), affine), str(folder / f"{name}_seg.nii.gz"))
        written[name] = (int(labels.sum()), hu.astype(np.int16))
    return written
