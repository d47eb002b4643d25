"""Reading a chest X-ray file as a model sees it: PNG/JPEG (8- or 16-bit) or DICOM.

Every reader returns a (height, width) uint8 image, upright and dense-is-bright (bone white,
air black), the convention of CheXMix rows:

- PNG, JPEG, TIFF, ...: :func:`chexmix_dataset.xray.images.read_grey_image` (EXIF
  Orientation applied; 16-bit images mapped linearly from their own min..max to 0..255).
- DICOM (pydicom): stored values through the modality LUT (RescaleSlope/Intercept), then the
  VOI transform the file asks for: a VOI LUT Sequence (first LUT, scaled by its largest entry),
  else the first WindowCenter/WindowWidth (DICOM PS3.3 C.11.2.1.2 linear: ``((x - (c - 0.5)) /
  (w - 1) + 0.5)`` clipped to [0, 1]); with neither, the image's own min..max, exactly as for a
  16-bit PNG, so the same pixels give the same image in either format. MONOCHROME1 (dense is
  dark) is inverted afterwards. The pixel size comes from PixelSpacing, else ImagerPixelSpacing
  (at the detector: it includes the geometric magnification, typically 5-10 % for a PA chest).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chexmix_dataset.errors import ChexmixInputError, first_line
from chexmix_dataset.xray.images import read_grey_image

DICOM_SUFFIXES = (".dcm", ".dicom")


@dataclass(frozen=True)
class Radiograph:
    """A chest X-ray read from a file.

    Attributes:
        image: (height, width) uint8, rows head to feet as displayed, dense = bright.
        pixel_spacing_mm: (row, column) pixel size in mm when the file states it, else None.
        path: the file it was read from.
    """

    image: np.ndarray
    pixel_spacing_mm: tuple[float, float] | None
    path: str


def is_dicom(path: str | os.PathLike) -> bool:
    """A ``.dcm``/``.dicom`` name or the DICOM Part 10 preamble ("DICM" at byte 128)."""
    path = Path(path)
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    try:
        with path.open("rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def read_radiograph(path: str | os.PathLike) -> Radiograph:
    """Read a CXR file (see module docstring); bad files raise ChexmixInputError naming them."""
    path = Path(path)
    if not path.is_file():
        raise ChexmixInputError("image file does not exist", path)
    if is_dicom(path):
        return _read_dicom(path)
    return Radiograph(read_grey_image(path), None, str(path))


def _fraction(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """``values`` mapped linearly from [low, high] to [0, 1], clipped (all 0 when low == high)."""
    scale = 1.0 / (high - low) if high > low else 0.0
    return (np.clip(values, low, high) - low) * scale


def _window_fraction(values: np.ndarray, centre: float, width: float) -> np.ndarray:
    """DICOM's linear VOI window, to [0, 1]."""
    if width < 1:
        raise ValueError(f"WindowWidth {width} is below 1")
    return np.clip((values - (centre - 0.5)) / (width - 1.0) + 0.5, 0.0, 1.0)


def _first(value: object) -> float:
    """The first value of a possibly multi-valued DICOM element."""
    try:
        return float(value[0])  # type: ignore[index]
    except TypeError:
        return float(value)  # type: ignore[arg-type]


def _read_dicom(path: Path) -> Radiograph:
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        dataset = pydicom.dcmread(str(path))
        stored = dataset.pixel_array
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types for bad or compressed files
        detail = first_line(exc)
        raise ChexmixInputError(f"cannot read DICOM image: {detail}", path) from None
    photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise ChexmixInputError(f"DICOM image is {photometric}; only greyscale (MONOCHROME1/2) radiographs are read",
                                path)
    if stored.ndim != 2:
        raise ChexmixInputError(f"DICOM image must be one 2D frame, got pixel data of shape {stored.shape}", path)
    invert = photometric == "MONOCHROME1"  # dense is dark in the file
    try:
        values = np.asarray(apply_modality_lut(stored, dataset), dtype=np.float64)
        if "VOILUTSequence" in dataset and len(dataset.VOILUTSequence):
            # pydicom's VOI step takes modality-LUT output, as DICOM's pipeline orders them.
            mapped = np.asarray(apply_voi_lut(values, dataset, index=0), dtype=np.float64)
            fraction = _fraction(mapped, 0.0, float(np.max(dataset.VOILUTSequence[0].LUTData)))
        elif "WindowCenter" in dataset and "WindowWidth" in dataset:
            fraction = _window_fraction(values, _first(dataset.WindowCenter), _first(dataset.WindowWidth))
        elif invert:
            # Negated values keep integer arithmetic exact: the same image as MONOCHROME2 data.
            fraction = _fraction(-values, -float(values.max()), -float(values.min()))
            invert = False
        else:
            fraction = _fraction(values, float(values.min()), float(values.max()))
    except (ValueError, TypeError, AttributeError) as exc:
        raise ChexmixInputError(f"cannot apply the DICOM image's value transforms: {exc}", path) from None
    if invert:
        fraction = 1.0 - fraction
    image = np.rint(fraction * 255.0).astype(np.uint8)
    spacing = dataset.get("PixelSpacing") or dataset.get("ImagerPixelSpacing")
    pixel_spacing = (float(spacing[0]), float(spacing[1])) if spacing is not None and len(spacing) == 2 else None
    return Radiograph(np.ascontiguousarray(image), pixel_spacing, str(path))
