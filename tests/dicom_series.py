"""Writing DICOM CT series the way scanners store them, with pydicom directly (not our reader).

A RAS+ volume with its affine becomes one CT Image Storage file per axial slice: stored
integers with RescaleSlope/RescaleIntercept, ImagePositionPatient/ImageOrientationPatient in
DICOM's LPS world, InstanceNumber from superior to inferior (the usual export order), and file
names shuffled so that neither name nor instance order gives the slice order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def new_dicom(sop_class: str, modality: str, patient_id: str) -> Dataset:
    """An empty instance of ``sop_class`` with its file meta (explicit VR little endian) and ids."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID = modality, patient_id
    return ds


def _axis_along(affine_lps: np.ndarray, direction: np.ndarray) -> tuple[int, bool]:
    """(voxel axis whose step points along ``direction`` or against it, True if against)."""
    dots = affine_lps[:3, :3].T @ direction
    axis = int(np.argmax(np.abs(dots)))
    return axis, bool(dots[axis] < 0)


def write_ct_series(folder: Path, hu_ras: np.ndarray, affine_ras: np.ndarray, *,
                    row_cosine=(1.0, 0.0, 0.0), column_cosine=(0.0, 1.0, 0.0),
                    intercept: float = -1024.0, slope: float = 1.0, signed: bool = True,
                    seed: int = 0, modality: str = "CT", sop_class: str = CTImageStorage) -> list[Path]:
    """Write ``hu_ras`` as a series in ``folder``; returns the files, most superior slice first.

    ``row_cosine``/``column_cosine`` (LPS) must be parallel to voxel axes of ``affine_ras``;
    stored = (HU - intercept) / slope, as int16 (``signed``) or uint16.
    """
    folder.mkdir(parents=True, exist_ok=True)
    affine_lps = RAS_TO_LPS @ affine_ras
    row_cosine, column_cosine = np.asarray(row_cosine, float), np.asarray(column_cosine, float)
    normal = np.cross(row_cosine, column_cosine)
    axes, flips = zip(*(_axis_along(affine_lps, d) for d in (normal, column_cosine, row_cosine)))
    volume = np.transpose(hu_ras, axes)  # (slices along normal, rows, columns)
    volume = volume[tuple(slice(None, None, -1) if f else slice(None) for f in flips)]
    stored = np.rint((volume.astype(np.float64) - intercept) / slope).astype(np.int16 if signed else np.uint16)
    spacing = np.sqrt((affine_lps[:3, :3] ** 2).sum(axis=0))
    n_slices, rows, columns = stored.shape

    def position(k: int) -> list[float]:
        index = np.zeros(4)
        index[3] = 1.0
        for out_axis, (axis, flip) in enumerate(zip(axes, flips)):
            count = (n_slices, rows, columns)[out_axis]
            index[axis] = 0 if out_axis else k
            if flip:
                index[axis] = count - 1 - index[axis]
        return (affine_lps @ index)[:3].tolist()

    study, series = generate_uid(), generate_uid()
    positions = [position(k) for k in range(n_slices)]
    superior_first = sorted(range(n_slices), key=lambda k: -positions[k][2])
    names = np.random.default_rng(seed).permutation(n_slices)
    files = []
    for instance, k in enumerate(superior_first, start=1):
        ds = new_dicom(sop_class, modality, "chexmix-test")
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.InstanceNumber = instance
        ds.ImagePositionPatient = [f"{v:.6f}" for v in positions[k]]
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*row_cosine, *column_cosine)]
        ds.PixelSpacing = [f"{spacing[axes[1]]:.6f}", f"{spacing[axes[2]]:.6f}"]  # row, column spacing
        ds.SliceThickness = f"{spacing[axes[0]]:.6f}"
        ds.Rows, ds.Columns = rows, columns
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelRepresentation = 1 if signed else 0
        ds.RescaleIntercept, ds.RescaleSlope = f"{intercept:g}", f"{slope:g}"
        ds.RescaleType = "HU"
        ds.PixelData = np.ascontiguousarray(stored[k]).astype("<i2" if signed else "<u2").tobytes()
        path = folder / f"IM{names[instance - 1]:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    return files
