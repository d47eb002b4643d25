"""Parallel-beam renderer: rays along anterior-posterior (axis 1 of the RAS+ volume).

The line integral is summed chunk by chunk, so no float copy of the volume is ever made, and
exactly in integers where the stored values allow it. Images follow the radiological
convention of a frontal chest X-ray: the patient's right on the image's left (column 0 is the
largest x) and superior at the top (row 0 is the largest z).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
from scipy import ndimage

from chexmix_dataset.projector.backend import Array, is_torch

# Chunks of about 256 k voxels: temporaries stay in the CPU cache and never near the volume's size.
_CHUNK_VOXELS = 1 << 18
# torch chunks: larger, a GPU is fed by big kernels; still far below the volume's size.
_TORCH_CHUNK_VOXELS = 1 << 24


def _chunks(volume: np.ndarray) -> Iterator[tuple[int, int, tuple[slice, slice, slice]]]:
    """(axis, start, index) of cache-sized chunks cut along the axis with the largest stride.

    Cutting along the slowest axis keeps each chunk one contiguous block of memory.
    """
    axis = int(np.argmax(np.abs(volume.strides)))
    per_index = volume.size // max(volume.shape[axis], 1)
    step = max(1, _CHUNK_VOXELS // max(per_index, 1))
    for start in range(0, volume.shape[axis], step):
        index = [slice(None)] * 3
        index[axis] = slice(start, start + step)
        yield axis, start, tuple(index)  # type: ignore[misc]


def _reduce_ap(volume: np.ndarray, transform, out_dtype) -> np.ndarray:
    """``sum_y transform(volume[x, y, z])`` as an (nx, nz) array, never copying the whole volume."""
    nx, _, nz = volume.shape
    out = np.zeros((nx, nz), dtype=out_dtype)
    for axis, start, index in _chunks(volume):
        part = transform(volume[index]).sum(axis=1, dtype=out_dtype)
        if axis == 1:
            out += part
        elif axis == 0:
            out[start:start + part.shape[0]] = part
        else:
            out[:, start:start + part.shape[1]] = part
    return out


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
        # Integer voxels, HU = v + integer offset: clip v where HU is -1000 and sum exactly in
        # int32/int64, then shift once. Exact, and no float copy of any chunk.
        info = np.iinfo(voxels.dtype)
        buffer = [np.empty(0, dtype=voxels.dtype)]  # reused: a fresh temporary per chunk costs page faults

        def clip(part: np.ndarray) -> np.ndarray:
            if floor <= info.min or part.min() >= floor:  # nothing below -1000 HU (no padding)
                return part
            if buffer[0].size < part.size:
                buffer[0] = np.empty(part.size, dtype=voxels.dtype)
            return np.maximum(part, voxels.dtype.type(floor), out=buffer[0][: part.size].reshape(part.shape))

        bound = ny * max(abs(info.min), info.max)
        sums = _reduce_ap(voxels, clip, np.int64 if bound >= 2**31 else np.int32)
        hu_sums = sums.astype(np.float64) + float(hu_offset) * ny
    else:
        hu_sums = _reduce_ap(
            voxels,
            lambda part: np.maximum(part.astype(np.float64) * hu_scale + hu_offset, -1000.0),
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


def resample(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resampling of a 2D float map to ``shape``, pixel edges aligned (grid mode)."""
    if image.shape == shape:
        return image.astype(np.float32, copy=True)
    zoom = (shape[0] / image.shape[0], shape[1] / image.shape[1])
    return ndimage.zoom(image.astype(np.float32), zoom, order=1, mode="nearest", grid_mode=True)


def square_pixel_shape(n_rows: int, n_cols: int, row_mm: float, col_mm: float, size_px: int
                       ) -> tuple[tuple[int, int], float]:
    """Output shape with square pixels and the longer physical side ``size_px``; and pixel mm."""
    height_mm, width_mm = n_rows * row_mm, n_cols * col_mm
    pixel_mm = max(height_mm, width_mm) / size_px
    return (max(1, round(height_mm / pixel_mm)), max(1, round(width_mm / pixel_mm))), pixel_mm
