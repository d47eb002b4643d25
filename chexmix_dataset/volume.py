"""Reading annotated chest CTs: NIfTI files or folders of axial slice images.

Every volume comes out in nibabel's RAS+ voxel order, whatever its storage order:

- axis 0 (x) increases towards the patient's **R**ight,
- axis 1 (y) increases towards the patient's **A**nterior,
- axis 2 (z) increases towards the patient's **S**uperior (head).

so the projector can always integrate along axis 1 (anterior-posterior). Voxel spacing is kept
in millimetres, in the same axis order.
"""

from __future__ import annotations

import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import ChexmixInputError

NIFTI_SUFFIXES = (".nii", ".nii.gz")
SLICE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
AFFINE_TOLERANCE_MM = 1e-3


@dataclass(frozen=True)
class CTVolume:
    """An axial CT in RAS+ voxel order, with its optional lesion label mask.

    Attributes:
        voxels: (nx, ny, nz) array in RAS+ order. Hounsfield units for NIfTI input
            (``is_hounsfield``); 8-bit grey values 0-255 for slice-folder input.
        spacing_mm: voxel size along (x, y, z) in mm.
        affine: 4x4 voxel-to-RAS+-world matrix of ``voxels`` (mm).
        lesion_labels: (nx, ny, nz) uint8 lesion labels (0 background; other values are lesion
            types, e.g. 1 ground-glass, 2 consolidation), or None when no mask was given.
        is_hounsfield: True when ``voxels`` are calibrated HU.
        path: where the CT was read from.
    """

    voxels: np.ndarray
    spacing_mm: tuple[float, float, float]
    affine: np.ndarray
    lesion_labels: np.ndarray | None
    is_hounsfield: bool
    path: str

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.voxels.shape)  # type: ignore[return-value]


def _natural_key(name: str) -> list[object]:
    """Sort key under which 'slice2' comes before 'slice10'."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def is_nifti(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def slice_files(folder: str | os.PathLike) -> list[Path]:
    """Image files of a slice folder, in natural order (inferior slice first)."""
    folder = Path(folder)
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SLICE_SUFFIXES]
    if not files:
        raise ChexmixInputError(
            f"slice folder holds no slice images ({', '.join(SLICE_SUFFIXES)})", folder
        )
    return sorted(files, key=lambda p: _natural_key(p.name))


def _check_finite(array: np.ndarray, path: str | os.PathLike, what: str) -> None:
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise ChexmixInputError(f"{what} has {bad} NaN or infinite voxels", path)


def read_nifti(path: str | os.PathLike, what: str = "volume") -> tuple[np.ndarray, np.ndarray]:
    """Read a 3D NIfTI file as (array in stored order, stored affine), with clean errors.

    The array keeps the file's own dtype (int16 CTs stay int16) unless the header asks for
    scaling, in which case nibabel's scaled floating-point values are returned.
    """
    path = Path(path)
    if not path.exists():
        raise ChexmixInputError(f"{what} file does not exist", path)
    try:
        image = nib.load(str(path))
        data = np.asanyarray(image.dataobj)
    except (nib.filebasedimages.ImageFileError, EOFError, zlib.error, OSError, ValueError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ChexmixInputError(f"cannot read {what} as NIfTI (truncated or corrupt?): {detail}", path) from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ChexmixInputError(f"{what} must be a 3D volume, got shape {data.shape}", path)
    _check_finite(data, path, what)
    return data, np.asarray(image.affine, dtype=np.float64)


def to_ras(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reorder ``data`` to RAS+ (flips and axis swaps only, as nibabel.as_closest_canonical)."""
    image = nib.Nifti1Image(data, affine)
    canonical = nib.as_closest_canonical(image)
    return np.asanyarray(canonical.dataobj), np.asarray(canonical.affine)


def read_slice_folder(folder: str | os.PathLike, what: str = "slice folder") -> np.ndarray:
    """Stack a folder of axial slice images into a (rows, cols, slices) 8-bit array.

    Slices are taken in natural file-name order as inferior to superior, as the published
    CT-to-X-ray tool assumes; images are converted to 8-bit greyscale ('L').
    """
    folder = Path(folder)
    if not folder.exists():
        raise ChexmixInputError(f"{what} does not exist", folder)
    slices = []
    for file in slice_files(folder):
        try:
            with Image.open(file) as image:
                slices.append(np.asarray(image.convert("L")))
        except (UnidentifiedImageError, OSError) as exc:
            raise ChexmixInputError(f"cannot read slice image: {exc}", file) from None
        if slices[-1].shape != slices[0].shape:
            raise ChexmixInputError(
                f"slices of mixed sizes: {slices[-1].shape[::-1]} here, "
                f"{slices[0].shape[::-1]} in the first slice (width x height)",
                file,
            )
    return np.stack(slices, axis=-1)


def slice_folder_affine(spacing_mm: tuple[float, float, float]) -> np.ndarray:
    """Affine of a (rows, cols, slices) stack displayed the usual way for axial CT.

    Rows run anterior to posterior (top of the image is anterior), columns run from the
    patient's right to left (radiological display), slices inferior to superior.
    """
    row_mm, col_mm, slice_mm = spacing_mm
    affine = np.zeros((4, 4))
    affine[0, 1] = -col_mm  # column index -> towards patient's left (-x in RAS)
    affine[1, 0] = -row_mm  # row index -> towards posterior (-y)
    affine[2, 2] = slice_mm  # slice index -> superior (+z)
    affine[3, 3] = 1.0
    return affine


def _read_any(path: str | os.PathLike, what: str, slice_spacing_mm: tuple[float, float, float]
              ) -> tuple[np.ndarray, np.ndarray, bool]:
    path = Path(path)
    if not path.exists():
        raise ChexmixInputError(f"{what} does not exist", path)
    if path.is_dir():
        return read_slice_folder(path, what), slice_folder_affine(slice_spacing_mm), False
    if is_nifti(path):
        data, affine = read_nifti(path, what)
        return data, affine, True
    raise ChexmixInputError(f"{what} must be a NIfTI file (.nii, .nii.gz) or a folder of slice images", path)


def _labels_from(mask: np.ndarray, path: str | os.PathLike) -> np.ndarray:
    """Integer lesion labels from a mask array; 0/255 binary masks become 0/1.

    Only min/max reductions over the whole mask: masks are as large as their CTs.
    """
    if np.issubdtype(mask.dtype, np.floating):
        if mask.min() < 0 or np.any(np.abs(mask - np.round(mask)) > 1e-3):
            raise ChexmixInputError("lesion mask must hold integer labels >= 0", path)
        mask = np.round(mask)
    low, high = (mask.min(), mask.max()) if mask.size else (0, 0)
    if low < 0:
        raise ChexmixInputError("lesion mask must hold integer labels >= 0", path)
    if high > 255:
        raise ChexmixInputError(f"lesion mask labels above 255 ({high:g})", path)
    if high == 255 and not np.any((mask > 0) & (mask < 255)):
        return (mask > 0).astype(np.uint8)
    return mask if mask.dtype == np.uint8 else mask.astype(np.uint8)


def load_ct(
    ct_path: str | os.PathLike,
    mask_path: str | os.PathLike | None = None,
    slice_spacing_mm: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> CTVolume:
    """Load a CT (and its lesion mask) and reorient both to RAS+.

    Args:
        ct_path: NIfTI file in HU, or a folder of 8-bit axial slice images.
        mask_path: NIfTI label volume or folder of label slice images on the same grid, or None.
        slice_spacing_mm: (row, column, slice) spacing in mm assumed for slice folders, which
            carry no geometry of their own.

    Raises:
        ChexmixInputError: missing or unreadable files, non-3D volumes, NaN/inf voxels, or a
            mask whose shape or affine differs from the CT's by more than 1e-3 mm.
    """
    ct, ct_affine, is_hu = _read_any(ct_path, "CT", slice_spacing_mm)
    labels = None
    if mask_path is not None:
        mask, mask_affine, _ = _read_any(mask_path, "lesion mask", slice_spacing_mm)
        if mask.shape != ct.shape:
            raise ChexmixInputError(
                f"lesion mask shape {mask.shape} does not match CT shape {ct.shape} ({ct_path})",
                mask_path,
            )
        if not np.allclose(mask_affine, ct_affine, atol=AFFINE_TOLERANCE_MM, rtol=0):
            raise ChexmixInputError(
                "lesion mask affine does not match the CT's within 1e-3 mm: "
                f"mask {np.round(mask_affine, 4).tolist()} vs CT {np.round(ct_affine, 4).tolist()} ({ct_path})",
                mask_path,
            )
        labels = _labels_from(mask, mask_path)
        labels, _ = to_ras(labels, mask_affine)
    voxels, affine = to_ras(ct, ct_affine)
    spacing = tuple(float(s) for s in np.sqrt((affine[:3, :3] ** 2).sum(axis=0)))
    return CTVolume(
        voxels=voxels,
        spacing_mm=spacing,  # type: ignore[arg-type]
        affine=affine,
        lesion_labels=labels,
        is_hounsfield=is_hu,
        path=os.fspath(ct_path),
    )
