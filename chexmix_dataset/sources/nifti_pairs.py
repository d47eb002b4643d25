"""Helpers the CT adapters share: NIfTI file names and a cheap CT/mask pair check."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib

from chexmix_dataset.ct.nifti import NIFTI_SUFFIXES
from chexmix_dataset.sources.base import SkippedItem


def nifti_stem(path: Path) -> str:
    """The file name without ``.nii.gz`` or ``.nii``."""
    name = Path(path).name
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def niftis(folder: Path) -> list[Path]:
    """The ``*.nii`` and ``*.nii.gz`` files directly in ``folder``, sorted."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.name.endswith(NIFTI_SUFFIXES))


def check_pair(name: str, ct_path: Path, mask_path: Path, mask_what: str = "infection mask") -> SkippedItem | None:
    """Headers only (cheap): an unreadable file or differing grids make a case unusable."""
    shapes = []
    for path, what in ((ct_path, "CT"), (mask_path, mask_what)):
        try:
            shapes.append(tuple(nib.load(str(path)).shape[:3]))
        except Exception as exc:  # noqa: BLE001 - nibabel raises many types for bad headers
            return SkippedItem(str(path), f"cannot read {what} NIfTI header: {type(exc).__name__}: {exc}")
    if shapes[0] != shapes[1]:
        return SkippedItem(name, f"CT shape {shapes[0]} differs from {mask_what} shape {shapes[1]}")
    return None
