"""Chest X-ray DICOM files written with pydicom as modalities export them (tests only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from dicom_series import new_dicom
from pydicom.uid import generate_uid

DIGITAL_XRAY_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation


def write_cxr_dicom(path: Path, stored: np.ndarray, *, photometric: str = "MONOCHROME2",
                    window: tuple[float, float] | None = None, imager_spacing_mm: tuple[float, float] | None = None,
                    rescale: tuple[float, float] | None = None) -> Path:
    """A DX image of ``stored`` (uint16, rows x columns) with the given value transforms."""
    ds = new_dicom(DIGITAL_XRAY_STORAGE, "DX", "TEST-1")
    ds.ViewPosition = "PA"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if imager_spacing_mm is not None:
        ds.ImagerPixelSpacing = list(imager_spacing_mm)
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
    ds.PixelData = np.ascontiguousarray(stored, dtype="<u2").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(str(path), enforce_file_format=True)
    return path
