"""Parallel-beam renderer: rays along anterior-posterior (axis 1 of the RAS+ volume).

The line integral is summed chunk by chunk (:mod:`.chunks`), so no float copy of the volume
is ever made, and exactly in integers where the stored values allow it. Images follow the radiological
convention of a frontal chest X-ray: the patient's right on the image's left (column 0 is the
largest x) and superior at the top (row 0 is the largest z).
"""

from __future__ import annotations

import numpy as np

from chexmix_dataset.projector.backend import Array, is_torch
from chexmix_dataset.projector.chunks import FLOAT32_EXACT_INTEGERS, Scratch, as_float32, reduce_ap

# torch chunks: larger, a GPU is fed by big kernels; still far below the volume's size.
_TORCH_CHUNK_VOXELS = 1 << 24


def line_integral_mm(voxels: Array, dy_mm: float, mu_water_per_mm: float,
                     hu_scale: float = 1.0, hu_offset: float = 0.0) -> Array:
    """``L[x, z] = sum_y max(mu_water * (1 + HU / 1000), 0) * dy``, an (nx, nz) float64 array.

    ``HU = voxels * hu_scale + hu_offset``; dy in mm, mu_water in 1/mm, L dimensionless.
    ``voxels`` may be a numpy array or a torch tensor (CPU or CUDA); the result is of the same kind.
    """
    if is_torch(voxels):
        return _line_integral_torch(voxels, dy_mm, mu_water_per_mm, hu_scale, hu_offset)
    ny = voxels.shape[1]
    per_hu = mu_water_per_mm / 1000.0 * dy_mm
    floor = _integer_floor(voxels.dtype, hu_scale, hu_offset)
    if floor is not None:
        # Integer voxels, HU = v + integer offset: clip v where HU is -1000 and sum exactly, then
        # shift once. No float copy of the volume, only of cache-sized chunks.
        info = np.iinfo(voxels.dtype)
        bound = ny * max(abs(info.min), info.max)
        clip_at = floor if floor > info.min else None
        # Bounds of the stored type: with a Python int bound numpy's clip is about 7x slower.
        low, high = voxels.dtype.type(clip_at if clip_at is not None else info.min), voxels.dtype.type(info.max)
        if bound <= FLOAT32_EXACT_INTEGERS:
            # float32 holds every partial sum exactly here, and sums by BLAS: twice the speed of int32.
            def clip(part: np.ndarray, scratch: Scratch) -> np.ndarray:
                if clip_at is not None:
                    # Clip the stored integers (half the bytes of float32), then convert: 10-15 %
                    # faster than clipping floats. Both bounds: numpy vectorises clip, not maximum.
                    part = np.clip(part, low, high, out=scratch.like(part, part.dtype))
                return as_float32(part, scratch)

            sums = reduce_ap(voxels, clip, np.float32)
        else:
            def clip(part: np.ndarray, scratch: Scratch) -> np.ndarray:
                if clip_at is None:
                    return part
                return np.clip(part, low, high, out=scratch.like(part, part.dtype))

            sums = reduce_ap(voxels, clip, np.int64 if bound >= 2**31 else np.int32)
        hu_sums = sums.astype(np.float64) + float(hu_offset) * ny
    else:
        hu_sums = reduce_ap(
            voxels,
            lambda part, _: np.maximum(part.astype(np.float64) * hu_scale + hu_offset, -1000.0),
            np.float64,
        )
    return (hu_sums + 1000.0 * ny) * per_hu


def _line_integral_torch(voxels, dy_mm: float, mu_water_per_mm: float, hu_scale: float, hu_offset: float):
    """:func:`line_integral_mm` on a tensor, the same arithmetic (exact integer sums where numpy has them)."""
    import torch

    nx, ny, nz = voxels.shape
    dtype = np.dtype(str(voxels.dtype).removeprefix("torch."))
    floor = _integer_floor(dtype, hu_scale, hu_offset)
    hu_sums = torch.zeros((nx, nz), dtype=torch.float64, device=voxels.device)
    step = max(1, _TORCH_CHUNK_VOXELS // max(nx * ny, 1))
    for z0 in range(0, nz, step):
        part = voxels[:, :, z0:z0 + step]
        if floor is not None:
            # int32 first: torch's uint16 lacks reductions; the sums are exact either way.
            sums = torch.clamp(part.to(torch.int32), min=floor).sum(dim=1, dtype=torch.int64)
            hu_sums[:, z0:z0 + step] = sums.to(torch.float64) + float(hu_offset) * ny
        else:
            hu = torch.clamp(part.to(torch.float64) * hu_scale + hu_offset, min=-1000.0)
            hu_sums[:, z0:z0 + step] = hu.sum(dim=1)
    return (hu_sums + 1000.0 * ny) * (mu_water_per_mm / 1000.0 * dy_mm)


def _integer_floor(dtype: np.dtype, hu_scale: float, hu_offset: float) -> int | None:
    """The stored value at -1000 HU when the exact integer path applies, else None.

    Applies to integers of at most 16 bits with ``HU = v + k`` for an integer ``k`` (slope 1:
    HU stored as is, or DICOM/NIfTI intercepts such as -1024), and a floor the type can hold
    or lies below.
    """
    if dtype.kind not in "iu" or dtype.itemsize > 2 or hu_scale != 1.0 or hu_offset != int(hu_offset):
        return None
    floor = -1000 - int(hu_offset)
    return floor if floor <= np.iinfo(dtype).max else None


def to_radiograph_layout(ap_map: np.ndarray) -> np.ndarray:
    """(nx, nz) map -> (rows, cols) image: superior at top, patient's right on the left."""
    return ap_map[::-1, ::-1].T


def _linear_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lower index, upper index, upper weight) of linear interpolation from n_in to n_out samples.

    Pixel edges aligned: output pixel i's centre sits at input coordinate
    ``(i + 0.5) * n_in / n_out - 0.5``, clamped to the edge pixels beyond the outer centres.
    """
    centres = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0, n_in - 1)
    lower = np.floor(centres).astype(np.intp)
    upper = np.minimum(lower + 1, n_in - 1)
    return lower, upper, (centres - lower).astype(np.float32)


def resample(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resampling of a 2D float map to ``shape`` (float32), pixel edges aligned.

    The same values as ``scipy.ndimage.zoom(image, order=1, mode="nearest", grid_mode=True)`` (to
    float32 rounding), computed as two separable passes: a tenth of zoom's time at 512 px, and
    no scipy import on the projection path.
    """
    image = np.asarray(image, dtype=np.float32)
    if image.shape == shape:
        return image.copy()
    return _resample_axis(_resample_axis(image, shape[0], axis=0), shape[1], axis=1)


def _resample_axis(image: np.ndarray, n_out: int, axis: int) -> np.ndarray:
    """Linear interpolation of a float32 image along one axis to ``n_out`` samples."""
    if image.shape[axis] == n_out:  # the taps would be the identity
        return image
    lower, upper, weight = _linear_taps(image.shape[axis], n_out)
    low = np.take(image, lower, axis=axis)
    step = np.take(image, upper, axis=axis)
    step -= low
    step *= weight[:, None] if axis == 0 else weight[None, :]
    low += step
    return low


def square_pixel_shape(n_rows: int, n_cols: int, row_mm: float, col_mm: float, size_px: int
                       ) -> tuple[tuple[int, int], float]:
    """Output shape with square pixels and the longer physical side ``size_px``; and pixel mm."""
    height_mm, width_mm = n_rows * row_mm, n_cols * col_mm
    pixel_mm = max(height_mm, width_mm) / size_px
    return (max(1, round(height_mm / pixel_mm)), max(1, round(width_mm / pixel_mm))), pixel_mm
