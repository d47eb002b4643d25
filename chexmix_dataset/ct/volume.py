"""Reading annotated chest CTs: NIfTI files, DICOM series or folders of axial slice images.

Every volume comes out in nibabel's RAS+ voxel order, whatever its storage order:

- axis 0 (x) increases towards the patient's **R**ight,
- axis 1 (y) increases towards the patient's **A**nterior,
- axis 2 (z) increases towards the patient's **S**uperior (head).

so the projector can always integrate along axis 1 (anterior-posterior). Voxel spacing is kept
in millimetres, in the same axis order.

Voxels keep the integers the file stores (a scaled int16 CT stays int16, a quarter of float64's
memory); the file's linear calibration travels beside them as ``value_slope`` and
``value_intercept`` (value = stored * slope + intercept, HU for calibrated CTs).

What the grey values of a slice folder mean:

- 8-bit slices (PIL modes L, RGB, P, ...; colour is converted to 'L' as the published tool
  does): display grey 0-255 of an unknown window, not HU. Physics mode maps them linearly to
  ``ProjectorOptions.slice_hu_range``; seed mode uses them as read, like the published tool.
- 16-bit slices (PNG/TIFF modes I;16, I;16B, or 'I' holding 16-bit values): the CT's stored
  values, read without clipping. Unsigned values are taken as the usual CT storage
  ``HU = value - 1024`` (DICOM CT's RescaleIntercept of -1024), signed values as HU; the
  intercept can be set (``slice_hu_intercept``). Seed mode scales them to 8 bits over the
  whole volume, as for NIfTI.
"""

from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np

from chexmix_dataset.ct.nifti import is_nifti, read_nifti_stored
from chexmix_dataset.ct.orientation import to_ras
from chexmix_dataset.errors import ChexmixInputError
from chexmix_dataset.xray.images import SIXTEEN_BIT_MODES, open_upright

logger = logging.getLogger(__name__)

SLICE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
AFFINE_TOLERANCE_MM = 1e-3
SLICE_ORDERS = ("inferior-first", "superior-first")
# Unsigned 16-bit CT storage: HU = stored - 1024 (DICOM CT's usual RescaleIntercept).
UNSIGNED_16BIT_HU_INTERCEPT = -1024.0
# Above this many HU a voxel is denser than cortical bone and metal-free CTs have almost none.
_IMPLAUSIBLE_HU = 3072.0
SliceOrder = Literal["inferior-first", "superior-first"]


@dataclass(frozen=True)
class CTVolume:
    """An axial CT in RAS+ voxel order, with its optional lesion label mask.

    Attributes:
        voxels: (nx, ny, nz) array in RAS+ order, as stored (int16/uint16 for most CTs, uint8
            grey for 8-bit slice folders).
        spacing_mm: voxel size along (x, y, z) in mm.
        affine: 4x4 voxel-to-RAS+-world matrix of ``voxels`` (mm).
        lesion_labels: (nx, ny, nz) uint8 lesion labels (0 background; other values are lesion
            types, e.g. 1 ground-glass, 2 consolidation), or None when no mask was given.
        is_hounsfield: True when ``values`` are calibrated HU (NIfTI, DICOM, 16-bit slices);
            False for 8-bit display grey.
        path: where the CT was read from.
        value_slope, value_intercept: the stored calibration, ``value = voxels * value_slope +
            value_intercept`` (HU when ``is_hounsfield``); NIfTI scl_slope/scl_inter, DICOM
            RescaleSlope/RescaleIntercept. Code that resamples ``voxels`` must carry them.
    """

    voxels: np.ndarray
    spacing_mm: tuple[float, float, float]
    affine: np.ndarray
    lesion_labels: np.ndarray | None
    is_hounsfield: bool
    path: str
    value_slope: float = 1.0
    value_intercept: float = 0.0

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.voxels.shape)  # type: ignore[return-value]


def _natural_key(name: str) -> list[object]:
    """Sort key under which 'slice2' comes before 'slice10'."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def slice_files(folder: str | os.PathLike) -> list[Path]:
    """Image files of a slice folder, in natural file-name order."""
    folder = Path(folder)
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SLICE_SUFFIXES]
    if not files:
        raise ChexmixInputError(
            f"slice folder holds no slice images ({', '.join(SLICE_SUFFIXES)})", folder
        )
    return sorted(files, key=lambda p: _natural_key(p.name))


def _read_slice(file: Path) -> np.ndarray:
    """One slice as its native array: uint8 for 8-bit images, uint16/int32 for 16-bit ones.

    Read upright (EXIF Orientation applied), as viewers show it, like every CXR image.
    """
    image, _ = open_upright(file)  # decoded there: an unreadable file is already a clear error
    if image.mode in (*SIXTEEN_BIT_MODES, "I"):
        array = np.asarray(image)
        return array.astype(array.dtype.newbyteorder("="), copy=False)  # I;16B is big-endian
    if image.mode == "F":
        raise ChexmixInputError("floating-point slice images are not supported; store the CT as NIfTI", file)
    return np.asarray(image.convert("L"))


def _as_16bit(stack: np.ndarray, folder: Path) -> np.ndarray:
    """int32 slices (PIL mode 'I') as uint16 or int16, whichever holds their values."""
    if stack.dtype != np.int32:
        return stack
    low, high = int(stack.min()), int(stack.max())
    if 0 <= low and high <= 0xFFFF:
        return stack.astype(np.uint16)
    if -0x8000 <= low and high <= 0x7FFF:
        return stack.astype(np.int16)
    raise ChexmixInputError(f"slice values {low}..{high} do not fit 16 bits; store the CT as NIfTI", folder)


def read_slice_folder(folder: str | os.PathLike, what: str = "slice folder") -> np.ndarray:
    """Stack a folder of axial slice images into a (rows, cols, slices) array, in file order.

    Slices are taken in natural file-name order (``slice2`` before ``slice10``). 8-bit and
    colour images become 8-bit greyscale ('L', as the published tool reads them); 16-bit
    images keep their native values (uint16, or int16 when signed). A folder mixing 8-bit and
    16-bit slices is refused.
    """
    folder = Path(folder)
    if not folder.exists():
        raise ChexmixInputError(f"{what} does not exist", folder)
    slices: list[np.ndarray] = []
    for file in slice_files(folder):
        slices.append(_read_slice(file))
        first, last = slices[0], slices[-1]
        if last.shape != first.shape:
            raise ChexmixInputError(
                f"slices of mixed sizes: {last.shape[::-1]} here, "
                f"{first.shape[::-1]} in the first slice (width x height)",
                file,
            )
        if (last.dtype == np.uint8) != (first.dtype == np.uint8):
            depth = {True: "8-bit", False: "16-bit"}
            raise ChexmixInputError(
                f"slices of mixed bit depths: {depth[last.dtype == np.uint8]} here, "
                f"{depth[first.dtype == np.uint8]} in the first slice",
                file,
            )
    if any(s.dtype == np.int32 for s in slices):
        slices = [s.astype(np.int32, copy=False) for s in slices]
    return _as_16bit(np.stack(slices, axis=-1), folder)


def slice_folder_affine(spacing_mm: tuple[float, float, float], n_slices: int = 1,
                        slice_order: SliceOrder = "inferior-first") -> np.ndarray:
    """Affine of a (rows, cols, slices) stack displayed the usual way for axial CT.

    Rows run anterior to posterior (top of the image is anterior), columns run from the
    patient's right to left (radiological display); slices run inferior to superior
    ("inferior-first", the published tool's assumption) or superior to inferior
    ("superior-first", the usual DICOM instance order), ``n_slices`` of them.
    """
    row_mm, col_mm, slice_mm = spacing_mm
    affine = np.zeros((4, 4))
    affine[0, 1] = -col_mm  # column index -> towards patient's left (-x in RAS)
    affine[1, 0] = -row_mm  # row index -> towards posterior (-y)
    affine[2, 2] = slice_mm  # slice index -> superior (+z)
    if slice_order == "superior-first":
        affine[2, 2] = -slice_mm  # slice index -> inferior; slice 0 the most superior
        affine[2, 3] = (n_slices - 1) * slice_mm
    affine[3, 3] = 1.0
    return affine


class _Stored(NamedTuple):
    """A volume as stored: array, affine (mm), calibration, and whether values are HU."""

    data: np.ndarray
    affine: np.ndarray
    slope: float
    intercept: float
    is_hounsfield: bool
    kind: str  # "nifti", "dicom" or "slices"


def _check_spacing(slice_spacing_mm: tuple[float, float, float]) -> None:
    if len(slice_spacing_mm) != 3 or not all(math.isfinite(s) and s > 0 for s in slice_spacing_mm):
        raise ChexmixInputError(
            f"slice spacing must be three positive sizes in mm (row, column, slice), got {tuple(slice_spacing_mm)}"
        )


def _slice_folder_calibration(data: np.ndarray, folder: Path, intercept: float | None
                              ) -> tuple[float, bool]:
    """(HU intercept, is_hounsfield) of a slice stack: 8-bit grey is not HU, 16-bit is."""
    if data.dtype == np.uint8:
        return 0.0, False
    if intercept is None:
        intercept = UNSIGNED_16BIT_HU_INTERCEPT if data.dtype == np.uint16 else 0.0
    implausible = int(np.count_nonzero(data > _IMPLAUSIBLE_HU - intercept))
    if implausible > 0.01 * data.size:
        logger.warning(
            "%s: %.0f%% of the 16-bit slice values are above %g HU under HU = value %+g: the slices look "
            "windowed or stretched, not stored CT values; set the intercept (--slice-hu-intercept) or use seed mode",
            folder, 100.0 * implausible / data.size, _IMPLAUSIBLE_HU, intercept,
        )
    return intercept, True


def _read_any(path: str | os.PathLike, what: str, slice_spacing_mm: tuple[float, float, float],
              slice_order: SliceOrder = "inferior-first", slice_hu_intercept: float | None = None,
              is_mask: bool = False) -> _Stored:
    path = Path(path)
    if not path.exists():
        raise ChexmixInputError(f"{what} does not exist", path)
    if path.is_dir():
        from chexmix_dataset.ct.dicom import is_dicom_folder, read_dicom_series  # pydicom only where DICOM is read

        if is_dicom_folder(path):
            series = read_dicom_series(path, what, require_ct=not is_mask)
            return _Stored(series.data, series.affine, series.slope, series.intercept, True, "dicom")
        data = read_slice_folder(path, what)
        affine = slice_folder_affine(slice_spacing_mm, data.shape[2], slice_order)
        if is_mask:
            return _Stored(data, affine, 1.0, 0.0, False, "slices")
        intercept, is_hu = _slice_folder_calibration(data, path, slice_hu_intercept)
        return _Stored(data, affine, 1.0, intercept, is_hu, "slices")
    if is_nifti(path):
        data, affine, slope, intercept = read_nifti_stored(path, what)
        return _Stored(data, affine, slope, intercept, True, "nifti")
    raise ChexmixInputError(
        f"{what} must be a NIfTI file (.nii, .nii.gz), a folder of DICOM slices (.dcm) or a folder of slice images",
        path,
    )


def _check_ct_dtype(stored: _Stored, path: str | os.PathLike) -> None:
    """Refuse CT arrays that cannot hold a CT: int8 without a scale, booleans, complex numbers."""
    dtype = stored.data.dtype
    if dtype == np.bool_ or dtype.kind == "c" or dtype.kind not in "iuf":
        raise ChexmixInputError(f"CT voxels of type {dtype} are not CT values", path)
    if dtype == np.int8 and (stored.slope, stored.intercept) == (1.0, 0.0):
        raise ChexmixInputError(
            "CT stored as int8 without a scale slope/intercept cannot hold Hounsfield units "
            "(air is -1000 HU); store it as int16", path,
        )


def _labels_from(mask: np.ndarray, path: str | os.PathLike) -> np.ndarray:
    """Integer lesion labels from a mask array; 0/255 and 0/65535 binary masks become 0/1.

    Only min/max reductions over the whole mask: masks are as large as their CTs.
    """
    if np.issubdtype(mask.dtype, np.floating):
        if mask.min() < 0 or np.any(np.abs(mask - np.round(mask)) > 1e-3):
            raise ChexmixInputError("lesion mask must hold integer labels >= 0", path)
        mask = np.round(mask)
    low, high = (mask.min(), mask.max()) if mask.size else (0, 0)
    if low < 0:
        raise ChexmixInputError("lesion mask must hold integer labels >= 0", path)
    # Binary masks saved at full range (0/255 8-bit, 0/65535 16-bit) are one lesion label.
    if high in (255, 65535) and not np.any((mask > 0) & (mask < high)):
        return (mask > 0).astype(np.uint8)
    if high > 255:
        raise ChexmixInputError(f"lesion mask labels above 255 ({high:g})", path)
    return mask if mask.dtype == np.uint8 else mask.astype(np.uint8)


def _check_geometry(affine: np.ndarray, what: str, path: str | os.PathLike) -> None:
    """Refuse affines without a positive size on every voxel axis (zero, NaN or degenerate)."""
    stored_spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    if not (np.all(np.isfinite(affine)) and np.all(stored_spacing > 1e-6)
            and abs(np.linalg.det(affine[:3, :3])) >= 1e-9):
        raise ChexmixInputError(
            f"{what} geometry gives voxel sizes {np.round(stored_spacing, 6).tolist()} mm (or a degenerate affine); "
            "every voxel size must be positive", path,
        )


def load_ct(
    ct_path: str | os.PathLike,
    mask_path: str | os.PathLike | None = None,
    slice_spacing_mm: tuple[float, float, float] = (1.0, 1.0, 1.0),
    slice_order: SliceOrder = "inferior-first",
    slice_hu_intercept: float | None = None,
) -> CTVolume:
    """Load a CT (and its lesion mask) and reorient both to RAS+.

    Args:
        ct_path: NIfTI file (HU, scaled or not), a folder of DICOM CT slices (one series), or a
            folder of axial slice images (8-bit grey, or 16-bit stored values; see the module
            docstring).
        mask_path: lesion label volume on the CT's grid, or None: a NIfTI file, a folder of
            label slice images (for slice-folder CTs only: images carry no geometry), or a
            DICOM folder whose stored values are labels. Compared with the CT after both are
            reoriented to RAS+, so a mask stored in another voxel order is accepted.
        slice_spacing_mm: (row, column, slice) spacing in mm assumed for slice folders, which
            carry no geometry of their own; each must be positive.
        slice_order: for slice folders: "inferior-first" (default; the first file in natural
            name order is the most inferior slice, as the published tool assumes) or
            "superior-first" (the usual DICOM instance order). NIfTI and DICOM carry their own
            orientation and ignore it.
        slice_hu_intercept: for 16-bit slice folders: HU = value + intercept; default -1024
            for unsigned values, 0 for signed ones.

    Raises:
        ChexmixInputError: missing or unreadable files, non-3D volumes, NaN/inf voxels, int8
            CTs without a scale, bad spacing or slice order, inconsistent DICOM series, or a
            mask whose RAS+ shape or affine differs from the CT's (affine by more than 1e-3 mm).
    """
    _check_spacing(slice_spacing_mm)
    if slice_hu_intercept is not None and not math.isfinite(slice_hu_intercept):
        raise ChexmixInputError(f"slice HU intercept must be a finite number, got {slice_hu_intercept}")
    if slice_order not in SLICE_ORDERS:
        raise ChexmixInputError(f"unknown slice order {slice_order!r} ({' or '.join(SLICE_ORDERS)})")
    ct = _read_any(ct_path, "CT", slice_spacing_mm, slice_order, slice_hu_intercept)
    _check_ct_dtype(ct, ct_path)
    _check_geometry(ct.affine, "CT", ct_path)
    voxels, affine = to_ras(ct.data, ct.affine)
    spacing = tuple(float(s) for s in np.sqrt((affine[:3, :3] ** 2).sum(axis=0)))
    labels = None
    if mask_path is not None:
        mask = _read_any(mask_path, "lesion mask", slice_spacing_mm, slice_order, is_mask=True)
        if mask.kind == "slices" and ct.kind != "slices":
            raise ChexmixInputError(
                f"a folder of mask slice images carries no geometry and cannot be matched to a {ct.kind} CT; "
                "give the mask as NIfTI on the CT's grid", mask_path,
            )
        _check_geometry(mask.affine, "lesion mask", mask_path)
        values = mask.data if (mask.slope, mask.intercept) == (1.0, 0.0) else mask.data * mask.slope + mask.intercept
        labels, mask_affine = to_ras(_labels_from(values, mask_path), mask.affine)
        if labels.shape != voxels.shape:
            raise ChexmixInputError(
                f"lesion mask shape {labels.shape} does not match CT shape {voxels.shape} ({ct_path})",
                mask_path,
            )
        if not np.allclose(mask_affine, affine, atol=AFFINE_TOLERANCE_MM, rtol=0):
            raise ChexmixInputError(
                "lesion mask affine does not match the CT's within 1e-3 mm: "
                f"mask {np.round(mask_affine, 4).tolist()} vs CT {np.round(affine, 4).tolist()} ({ct_path})",
                mask_path,
            )
    return CTVolume(
        voxels=voxels,
        spacing_mm=spacing,  # type: ignore[arg-type]
        affine=affine,
        lesion_labels=labels,
        is_hounsfield=ct.is_hounsfield,
        path=os.fspath(ct_path),
        value_slope=ct.slope,
        value_intercept=ct.intercept,
    )
