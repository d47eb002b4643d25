"""Reading a folder of DICOM CT slices (one series) as a volume with its world geometry.

Slices are ordered by their position along the slice normal (``ImagePositionPatient`` projected
on the cross product of the two ``ImageOrientationPatient`` direction cosines), never by file
name or ``InstanceNumber``. The voxel-to-world affine is built from the orientation, the first
slice's position, ``PixelSpacing`` (row spacing, column spacing; mm) and the step between
slice positions, then turned from DICOM's LPS world (x to the patient's left, y posterior) to
NIfTI's RAS (x and y negated), so :func:`.volume.load_ct` reorients it to RAS+ like a NIfTI
file. Values stay the stored integers; ``HU = stored * RescaleSlope + RescaleIntercept``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chexmix_dataset.errors import ChexmixInputError, first_line

DICOM_SUFFIX = ".dcm"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
# Slice positions may differ from an even step by this much (mm) or this share of the step.
SPACING_TOLERANCE_MM = 0.01
SPACING_TOLERANCE_FRACTION = 0.01
ORIENTATION_TOLERANCE = 1e-4
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True)
class DicomSeries:
    """One series as a volume.

    Attributes:
        data: (columns, rows, slices) stored values, slices in increasing position along the
            slice normal; a view of a (slices, rows, columns) block.
        affine: 4x4 voxel-to-RAS world matrix of ``data`` (mm).
        slope, intercept: RescaleSlope/RescaleIntercept; value = data * slope + intercept.
    """

    data: np.ndarray
    affine: np.ndarray
    slope: float
    intercept: float


def _has_dicom_preamble(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def dicom_files(folder: str | os.PathLike) -> list[Path]:
    """The DICOM files of a folder: ``*.dcm``, and extension-less files with the DICM preamble."""
    files = []
    for path in Path(folder).iterdir():
        if not path.is_file() or path.name.upper() == "DICOMDIR":
            continue
        if path.suffix.lower() == DICOM_SUFFIX or (not path.suffix and _has_dicom_preamble(path)):
            files.append(path)
    return sorted(files)


def is_dicom_folder(folder: str | os.PathLike) -> bool:
    return bool(dicom_files(folder))


def _floats(dataset, keyword: str, count: int, file: Path) -> np.ndarray:
    value = dataset.get(keyword)
    if value is None:
        raise ChexmixInputError(f"DICOM slice has no {keyword}", file)
    try:
        numbers = np.asarray([float(v) for v in (value if count > 1 else [value])], dtype=np.float64)
    except (TypeError, ValueError):
        raise ChexmixInputError(f"DICOM {keyword} is not numeric: {value!r}", file) from None
    if numbers.size != count or not np.isfinite(numbers).all():
        raise ChexmixInputError(f"DICOM {keyword} must be {count} finite number(s), got {value!r}", file)
    return numbers


def _read_headers(files: list[Path], what: str, require_ct: bool) -> list:
    import pydicom
    from pydicom.errors import InvalidDicomError

    headers = []
    for file in files:
        try:
            dataset = pydicom.dcmread(file, stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError, EOFError) as exc:
            raise ChexmixInputError(f"cannot read {what} slice as DICOM: {exc}", file) from None
        if require_ct:
            sop_class = str(dataset.get("SOPClassUID", ""))
            modality = str(dataset.get("Modality", ""))
            if sop_class != CT_IMAGE_STORAGE and modality != "CT":
                raise ChexmixInputError(
                    f"not a CT image slice (Modality {modality or 'missing'}, SOP class {sop_class or 'missing'}); "
                    "a CT folder must hold one CT Image Storage series", file,
                )
        headers.append(dataset)
    return headers


def _check_one_series(headers: list, files: list[Path], folder: Path) -> None:
    series: dict[str, int] = {}
    for dataset in headers:
        uid = str(dataset.get("SeriesInstanceUID", ""))
        series[uid] = series.get(uid, 0) + 1
    if len(series) > 1:
        listing = ", ".join(f"{uid or 'no UID'} ({n} slices)" for uid, n in sorted(series.items()))
        raise ChexmixInputError(f"folder mixes {len(series)} DICOM series: {listing}; give one series per folder",
                                folder)


def _slice_geometry(headers: list, files: list[Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]:
    """(row cosine, column cosine, positions (n, 3), (rows, columns)), all slices checked alike."""
    first = headers[0]
    orientation = _floats(first, "ImageOrientationPatient", 6, files[0])
    spacing = _floats(first, "PixelSpacing", 2, files[0])
    size = (int(first.Rows), int(first.Columns))
    positions = []
    for dataset, file in zip(headers, files):
        if not np.allclose(_floats(dataset, "ImageOrientationPatient", 6, file), orientation,
                           atol=ORIENTATION_TOLERANCE, rtol=0):
            raise ChexmixInputError(
                f"slice orientation {list(dataset.ImageOrientationPatient)} differs from "
                f"{files[0].name}'s {orientation.tolist()}: mixed orientations in one series", file,
            )
        if (int(dataset.Rows), int(dataset.Columns)) != size:
            raise ChexmixInputError(
                f"slice of {dataset.Columns} x {dataset.Rows} px among slices of {size[1]} x {size[0]} px "
                f"({files[0].name}): mixed sizes", file,
            )
        if not np.allclose(_floats(dataset, "PixelSpacing", 2, file), spacing, atol=1e-6, rtol=0):
            raise ChexmixInputError(
                f"PixelSpacing {list(dataset.PixelSpacing)} differs from {files[0].name}'s {spacing.tolist()}", file
            )
        positions.append(_floats(dataset, "ImagePositionPatient", 3, file))
    row_cosine, column_cosine = orientation[:3], orientation[3:]
    if abs(np.linalg.norm(row_cosine) - 1) > 1e-3 or abs(np.linalg.norm(column_cosine) - 1) > 1e-3 \
            or abs(row_cosine @ column_cosine) > 1e-3:
        raise ChexmixInputError(f"ImageOrientationPatient {orientation.tolist()} is not two unit, orthogonal cosines",
                                files[0])
    return row_cosine, column_cosine, np.asarray(positions), size


def _check_even_steps(distances: np.ndarray, files: list[Path], folder: Path) -> float:
    """The slice step (mm) of sorted positions along the normal; refuses gaps and duplicates."""
    steps = np.diff(distances)
    step = float(np.median(steps))
    if steps.min() <= SPACING_TOLERANCE_MM:
        duplicate = int(np.argmin(steps))
        raise ChexmixInputError(
            f"two slices at the same position ({files[duplicate].name}, {files[duplicate + 1].name}): "
            "duplicate files or several acquisitions in one folder", folder,
        )
    tolerance = max(SPACING_TOLERANCE_MM, SPACING_TOLERANCE_FRACTION * step)
    worst = int(np.argmax(np.abs(steps - step)))
    if abs(steps[worst] - step) > tolerance:
        raise ChexmixInputError(
            f"uneven slice spacing: {steps[worst]:.4g} mm between {files[worst].name} and {files[worst + 1].name}, "
            f"{step:.4g} mm elsewhere (tolerance {tolerance:.3g} mm); missing or extra slices?", folder,
        )
    return step


def _calibration(headers: list, files: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    slopes = np.asarray([float(d.get("RescaleSlope", 1.0)) for d in headers])
    intercepts = np.asarray([float(d.get("RescaleIntercept", 0.0)) for d in headers])
    bad = ~(np.isfinite(slopes) & np.isfinite(intercepts) & (slopes != 0))
    if bad.any():
        raise ChexmixInputError("RescaleSlope/RescaleIntercept unusable (zero or not finite)", files[int(np.argmax(bad))])
    return slopes, intercepts


def read_dicom_series(folder: str | os.PathLike, what: str = "CT", require_ct: bool = True) -> DicomSeries:
    """Read one DICOM series from ``folder`` (see the module docstring for the geometry).

    Raises:
        ChexmixInputError: unreadable files, several series, a non-CT slice (``require_ct``),
            missing or non-numeric positions/orientation/spacing, mixed orientations, sizes or
            pixel formats, duplicate positions, or slice steps that differ by more than
            max(0.01 mm, 1 %), or compressed pixel data pydicom cannot decode.
    """
    folder = Path(folder)
    files = dicom_files(folder)
    if len(files) < 2:
        raise ChexmixInputError(f"{what} DICOM folder needs at least 2 slices for its slice spacing, "
                                f"found {len(files)}", folder)
    headers = _read_headers(files, what, require_ct)
    _check_one_series(headers, files, folder)
    row_cosine, column_cosine, positions, (rows, columns) = _slice_geometry(headers, files)
    normal = np.cross(row_cosine, column_cosine)
    distances = positions @ normal
    order = np.argsort(distances, kind="stable")
    files = [files[i] for i in order]
    headers = [headers[i] for i in order]
    positions, distances = positions[order], distances[order]
    _check_even_steps(distances, files, folder)
    slopes, intercepts = _calibration(headers, files)
    data = _read_pixels(files, rows, columns, what)
    if np.ptp(slopes) == 0 and np.ptp(intercepts) == 0:
        slope, intercept = float(slopes[0]), float(intercepts[0])
    else:
        # Per-slice calibrations cannot share one slope: store HU as float32 instead.
        data = data.astype(np.float32) * slopes[:, None, None].astype(np.float32) \
            + intercepts[:, None, None].astype(np.float32)
        slope, intercept = 1.0, 0.0
    row_mm, column_mm = _floats(headers[0], "PixelSpacing", 2, files[0])
    step_vector = (positions[-1] - positions[0]) / (len(files) - 1)
    affine = np.eye(4)
    affine[:3, 0] = row_cosine * column_mm  # index along columns: the row direction cosine
    affine[:3, 1] = column_cosine * row_mm  # index along rows: the column direction cosine
    affine[:3, 2] = step_vector
    affine[:3, 3] = positions[0]
    # (slices, rows, columns) -> (columns, rows, slices), a view: no copy of the volume.
    return DicomSeries(data=data.transpose(2, 1, 0), affine=LPS_TO_RAS @ affine, slope=slope, intercept=intercept)


def _read_pixels(files: list[Path], rows: int, columns: int, what: str) -> np.ndarray:
    """(slices, rows, columns) stored values, one slice read at a time into one block."""
    import pydicom

    block = None
    for index, file in enumerate(files):
        dataset = pydicom.dcmread(file)
        if int(dataset.get("SamplesPerPixel", 1)) != 1:
            raise ChexmixInputError(f"{what} slice is not greyscale (SamplesPerPixel {dataset.SamplesPerPixel})", file)
        if str(dataset.get("PhotometricInterpretation", "MONOCHROME2")) != "MONOCHROME2":
            raise ChexmixInputError(
                f"{what} slice has PhotometricInterpretation {dataset.PhotometricInterpretation}; only MONOCHROME2 "
                "is supported", file,
            )
        try:
            pixels = dataset.pixel_array
        except Exception as exc:  # pydicom raises many types for missing decoders or broken data
            raise ChexmixInputError(f"cannot decode {what} slice pixels: {first_line(exc)}", file) from None
        if pixels.shape != (rows, columns):
            raise ChexmixInputError(f"pixel data of shape {pixels.shape}, expected ({rows}, {columns})", file)
        if block is None:
            block = np.empty((len(files), rows, columns), dtype=pixels.dtype)
        elif pixels.dtype != block.dtype:
            raise ChexmixInputError(
                f"pixel format {pixels.dtype} differs from the other slices' {block.dtype}: mixed series?", file
            )
        block[index] = pixels
    return block
