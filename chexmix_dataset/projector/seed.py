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
from chexmix_dataset.projector.chunks import FLOAT32_EXACT_INTEGERS, as_float32, map_chunks, reduce_ap

SEED_MIN_ROWS = 300


def _uint8_scale(vmin: float, vmax: float) -> float:
    """The published min-max gain to 8 bits; 0 for a constant volume (every voxel becomes 0)."""
    return 255.0 / (vmax - vmin) if vmax > vmin else 0.0


def _uint8_scaling(vmin: float, vmax: float):
    scale = _uint8_scale(vmin, vmax)
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


Float32Form = tuple[np.float32, np.float32, np.float32, np.float32]


def _apply_float32_form(values: np.ndarray, form: Float32Form) -> np.ndarray:
    """``rint(((values + c) * a + b) / d)`` in place, float32 throughout (c = 0, b = 0, d = 1 skipped)."""
    c, a, b, d = form
    if c:
        np.add(values, c, out=values)
    np.multiply(values, a, out=values)
    if b:
        np.add(values, b, out=values)
    if d != 1:
        np.divide(values, d, out=values)
    return np.rint(values, out=values)


def _neighbours(value: float) -> tuple[np.float32, ...]:
    nearest = np.float32(value)
    return nearest, np.nextafter(nearest, np.float32(np.inf)), np.nextafter(nearest, np.float32(-np.inf))


def _float32_form(table: np.ndarray, codes: np.ndarray, slope: float, intercept: float, vmin: float,
                  scale: float) -> Float32Form | None:
    """A float32 form of ``rint((code * slope + intercept - vmin) * scale)`` that equals ``table``
    on every stored code of ``codes``; None when float32 rounding would change any of them.

    Checked on every code, so using it can never change the published image; it turns one
    gather per voxel into a few float32 operations. The forms tried, each with the nearest
    float32 constants and their neighbours: ``code * (slope * scale) + (intercept - vmin) *
    scale``; ``(code + (intercept - vmin) / slope) * (slope * scale)``, whose shift is exact for
    integer calibrations; the same with a nudge of +-2^-13 (8-bit values exactly half-way, which
    float64 rounds to one side, then round to that side as well); and for slope 1 the exact
    ``(code + intercept - vmin) * 255 / (vmax - vmin)``.
    """
    values, work = codes.astype(np.float32), np.empty(codes.shape, dtype=np.float32)
    zero, one, nudge = np.float32(0), np.float32(1), np.float32(2.0**-13)
    shift, gain = (intercept - vmin) / slope, slope * scale
    candidates = [(zero, a, b, one) for a in _neighbours(gain) for b in _neighbours((intercept - vmin) * scale)]
    candidates += [(c, a, b, one) for b in (zero, -nudge, nudge) for c in _neighbours(shift) for a in _neighbours(gain)]
    if slope == 1.0 and scale > 0:
        candidates.append((np.float32(shift), np.float32(255), zero, np.float32(255.0 / scale)))
    for form in candidates:
        np.copyto(work, values)
        if np.array_equal(_apply_float32_form(work, form), table):
            return form
    return None


def _seed_column_sums(ct: CTVolume) -> np.ndarray:
    """Square slices: sums over anterior-posterior of the 8-bit slices, an (nx, nz) int array.

    For square slices the published row cutting is the plain image, so the loop's column sums
    are sums along y. Calibrated volumes are scaled to 8 bits over their calibrated values
    ``v = stored * slope + intercept`` (float64, as nibabel computes them), so a scaled NIfTI
    gives the very image its float64 HU would. 8- and 16-bit volumes go through a lookup table
    over every stored code computed with that formula; where float32 arithmetic reproduces the
    table on every code the volume holds, that arithmetic replaces the lookup. Sums of 8-bit
    values over at most 65,793 voxels are exact in float32.
    """
    voxels = ct.voxels
    exact_in_float32 = voxels.shape[1] * 255 <= FLOAT32_EXACT_INTEGERS
    if voxels.dtype == np.uint8 and not ct.is_hounsfield:
        if exact_in_float32:
            return reduce_ap(voxels, as_float32, np.float32).astype(np.int64)
        return reduce_ap(voxels, lambda part, _: part, np.int64)
    slope, intercept = ct.value_slope, ct.value_intercept
    stored_low, stored_high = voxels.min(), voxels.max()
    low, high = (_calibrated(np.asarray([stored_low, stored_high]), slope, intercept))
    # The calibration is monotonic (and so is its rounding): the extremes come from the stored ones.
    vmin, vmax = float(min(low, high)), float(max(low, high))
    to_uint8 = _uint8_scaling(vmin, vmax)
    if voxels.dtype.kind in "iu" and voxels.dtype.itemsize <= 2:
        unsigned = np.dtype(f"u{voxels.dtype.itemsize}")
        codes = np.arange(2 ** (8 * voxels.dtype.itemsize), dtype=unsigned).view(voxels.dtype)
        table = to_uint8(_calibrated(codes, slope, intercept))  # table[stored bits] = 8-bit value
        present = np.arange(int(stored_low), int(stored_high) + 1).astype(voxels.dtype)
        scale = _uint8_scale(vmin, vmax)
        form = _float32_form(table[present.view(unsigned)], present, slope, intercept, vmin, scale)
        if form is not None and exact_in_float32:
            return reduce_ap(voxels, lambda part, scratch: _apply_float32_form(as_float32(part, scratch), form),
                             np.float32).astype(np.int64)
        return reduce_ap(voxels, lambda part, _: np.take(table, part.view(unsigned)), np.int64)
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


