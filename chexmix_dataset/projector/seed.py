"""Seed mode: the published algorithm of Ramesh, Rister & Rubin (arXiv:2105.08147), exactly.

8-bit axial slices, column sums along anterior-posterior, rows ordered superior at the top as in
the paper's listing (``xray[len(images) - 1 - z][x] = sum``). The display step is that of the
published ``main.py`` of rvignav/CT2Xray: ``p / max(p) * 255`` truncated to uint8, then
stretched to 300 rows when shorter with PIL's default ``resize`` filter (bicubic for 8-bit
images). main.py also mirrors left and right (``WIDTH - x - 1``); the paper's listing does
not, and neither does CheXMix. Calibrated input (NIfTI, DICOM, 16-bit slices) is first
scaled to 8 bits over the whole volume, ``rint((v - min) * 255 / (max - min))`` of the
calibrated values ``v`` (float64); 8-bit slice folders are used as read. Pixels are not
made square, as in the original. Only square axial slices are accepted: the published loop
swaps PIL's width and height, so other slices come out scrambled (wider than tall) or
crash it (taller than wide) while the lesion masks would keep the true geometry.

Kept apart from the renderers on purpose: it reproduces a published result and never changes
with the physics.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from chexmix_dataset.ct.volume import CTVolume
from chexmix_dataset.errors import ChexmixInputError
from chexmix_dataset.projector.chunks import map_chunks, reduce_ap

SEED_MIN_ROWS = 300


def _uint8_scaling(vmin: float, vmax: float):
    scale = 255.0 / (vmax - vmin) if vmax > vmin else 0.0
    return lambda values: np.rint((values.astype(np.float64) - vmin) * scale).astype(np.uint8)


def volume_to_uint8(voxels: np.ndarray) -> np.ndarray:
    """Whole-volume min-max scaling to 8 bits: ``rint((v - min) * 255 / (max - min))``."""
    to_uint8 = _uint8_scaling(float(voxels.min()), float(voxels.max()))
    return map_chunks(voxels, lambda part, _: to_uint8(part), np.empty(voxels.shape, dtype=np.uint8))


def _calibrated(values: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    """``values * slope + intercept`` in float64, in nibabel's order of operations (bit for bit)."""
    values = values.astype(np.float64)
    if slope != 1.0:
        values = values * slope
    if intercept != 0.0:
        values = values + intercept
    return values


def _seed_column_sums(ct: CTVolume) -> np.ndarray:
    """Square slices: sums over anterior-posterior of the 8-bit slices, an (nx, nz) int array.

    For square slices the published row cutting is the plain image, so the loop's column sums
    are sums along y. Calibrated volumes are scaled to 8 bits over their calibrated values
    ``v = stored * slope + intercept`` (float64, as nibabel computes them), so a scaled NIfTI
    gives the very image its float64 HU would. 8- and 16-bit volumes go through a lookup table
    over every stored code computed with that formula (same values, one gather per voxel).
    """
    voxels = ct.voxels
    if voxels.dtype == np.uint8 and not ct.is_hounsfield:
        return reduce_ap(voxels, lambda part, _: part, np.int64)
    slope, intercept = ct.value_slope, ct.value_intercept
    low, high = (_calibrated(np.asarray([voxels.min(), voxels.max()]), slope, intercept))
    # The calibration is monotonic (and so is its rounding): the extremes come from the stored ones.
    to_uint8 = _uint8_scaling(float(min(low, high)), float(max(low, high)))
    if voxels.dtype.kind in "iu" and voxels.dtype.itemsize <= 2:
        unsigned = np.dtype(f"u{voxels.dtype.itemsize}")
        codes = np.arange(2 ** (8 * voxels.dtype.itemsize), dtype=unsigned).view(voxels.dtype)
        table = to_uint8(_calibrated(codes, slope, intercept))  # table[stored bits] = 8-bit value
        return reduce_ap(voxels, lambda part, _: table[part.view(unsigned)], np.int64)
    return reduce_ap(voxels, lambda part, _: to_uint8(_calibrated(part, slope, intercept)), np.int64)


def seed_slices(voxels_ras: np.ndarray, is_hounsfield: bool) -> np.ndarray:
    """The 8-bit axial slices the published tool reads: (rows, cols, slices), inferior first.

    Rows run anterior to posterior and columns from the patient's right to left, the usual
    display of an axial CT slice (and the layout :func:`.volume.slice_folder_affine` assumes).
    """
    u8 = volume_to_uint8(voxels_ras) if is_hounsfield or voxels_ras.dtype != np.uint8 else voxels_ras
    return u8[::-1, ::-1, :].transpose(1, 0, 2)


def seed_projection(slices: np.ndarray) -> np.ndarray:
    """The published column-sum loop, vectorised; returns the uint8 image.

    ``slices`` is (rows, cols, n_slices) uint8, inferior slice first. As in the original,
    each slice's row-major pixel list is cut into rows of ``height`` values (the code swaps PIL's
    width and height), which only matters for non-square slices.
    """
    rows, cols, n_slices = slices.shape
    if rows > cols:
        raise ChexmixInputError(
            f"seed mode reproduces the published loop, which fails on slices taller than wide "
            f"({cols} x {rows} px); use --mode physics"
        )
    per_slice = slices.transpose(2, 0, 1).reshape(n_slices, cols, rows)
    sums = per_slice.sum(axis=1, dtype=np.int64)  # (n_slices, rows)
    xray = np.zeros((n_slices, cols), dtype=np.float64)
    xray[::-1, :rows] = sums  # xray[n - 1 - z] = slice z's sums: superior at the top
    return _seed_display(xray)


def _seed_display(xray: np.ndarray) -> np.ndarray:
    """main.py's display: ``p / max * 255`` truncated to uint8; stretched to 300 rows when shorter.

    The stretch is PIL's default ``resize`` filter, which main.py relies on: bicubic for 'L'
    images (Pillow >= 7), named here so that a change of Pillow's default cannot change it.
    """
    peak = xray.max()
    image = (xray / peak * 255.0 if peak > 0 else xray).astype(np.uint8)  # truncation, as np.array(p, uint8)
    if image.shape[0] < SEED_MIN_ROWS:
        image = np.asarray(Image.fromarray(image).resize((image.shape[1], SEED_MIN_ROWS), Image.Resampling.BICUBIC))
    return image


def check_seed_geometry(ct: CTVolume) -> None:
    """Refuse volumes whose axial slices are not square for seed mode (module docstring)."""
    nx, ny, _ = ct.shape
    if nx != ny:
        shape = "wider than tall, which it scrambles" if nx > ny else "taller than wide, on which it fails"
        raise ChexmixInputError(
            f"seed mode needs square axial slices, got {nx} x {ny} px (width x height): the published loop "
            f"swaps width and height and these slices are {shape}, while the lesion masks keep the true "
            "geometry; use --mode physics",
            ct.path,
        )


