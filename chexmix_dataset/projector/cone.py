"""Cone-beam renderer, shear-warp style: one pass over the volume, slab by coronal slab.

Every coronal slab (one voxel thick along anterior-posterior, at distance ``d`` from the source)
maps onto the detector by a 2D scaling about the principal point by ``sid / d``. So the ray to
detector pixel (u, w) (mm from the principal point) crosses slab ``j`` at
``x = x_iso + u * d_j / sid``, ``z = z_iso + w * d_j / sid``, where the slab is sampled
bilinearly (zero outside the grid: air). The sampling is separable: the x step is a gather, the
z step with the sum over slabs is one sparse matrix product per chunk of slabs. Each sample
stands for the ray's path through its slab, ``dy / cos(theta)`` with ``theta`` the ray's angle
to the central ray, the same for every slab along one ray:

    L(u, w) = dy * sqrt(sid^2 + u^2 + w^2) / sid * sum_j mu_j(x_j(u), z_j(w))

The same operator gives lesion path lengths (mm) from lesion indicators, so masks follow the
image's rays exactly. Arrays may be numpy or torch (CPU or CUDA), see :mod:`.backend`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from chexmix_dataset.projector.backend import (
    Array,
    float_slabs,
    is_torch,
    like,
    sparse_rows_matmul,
    swap_last_axes,
    to_device,
    to_numpy,
)
from chexmix_dataset.projector.geometry import ConeGeometry

# float32 slab chunks of about 4 MiB on the CPU; a GPU takes far bigger bites.
_CHUNK_VOXELS = 1 << 20
_TORCH_CHUNK_VOXELS = 1 << 25


@dataclass(frozen=True)
class _Frame:
    """The grid in the renderer's terms: spacing (mm), isocentre x/z (mm), source y (mm)."""

    spacing_mm: tuple[float, float, float]
    iso_x_mm: float
    iso_z_mm: float
    source_y_mm: float
    sid_mm: float

    @classmethod
    def of(cls, shape: tuple[int, int, int], spacing_mm: tuple[float, float, float], geometry: ConeGeometry):
        nx, ny, nz = shape
        return cls(tuple(float(s) for s in spacing_mm), (nx - 1) / 2.0 * spacing_mm[0],
                   (nz - 1) / 2.0 * spacing_mm[2], geometry.source_y_mm(ny, spacing_mm[1]), geometry.sid_mm)


def _linear_taps(position: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear taps with zero outside ``[0, n)``: (lower index, its weight, upper's weight).

    Weights are the hat function of the distance to each tap, so a position outside the grid
    (or half a voxel past its edge) gets zero or partial weight with no special case.
    """
    lower = np.clip(np.floor(position), 0, n - 2).astype(np.int64)
    w_lower = np.maximum(0.0, 1.0 - np.abs(position - lower))
    w_upper = np.maximum(0.0, 1.0 - np.abs(position - lower - 1))
    return lower, w_lower.astype(np.float32), w_upper.astype(np.float32)


def _accumulate(out: Array, mu: Array, y0: int, x0: int, z0: int, frame: _Frame,
                u_mm: np.ndarray, w_mm: np.ndarray) -> Array:
    """``out[w, u] += sum_j mu_j(x_j(u), z_j(w))`` for a chunk ``mu`` of (slabs, x, z) from grid index (y0, x0, z0).

    Two sparse products, each with two taps per output: slab by slab along x (block
    diagonal), then along z summed over the chunk's slabs.
    """
    n_slabs, nx, nz = mu.shape
    sx, sy, sz = frame.spacing_mm
    n_u, n_w = len(u_mm), len(w_mm)
    scale = np.abs((y0 + np.arange(n_slabs)) * sy - frame.source_y_mm) / frame.sid_mm  # d_j / sid
    slab = np.arange(n_slabs)[:, None]
    x_index = (frame.iso_x_mm + u_mm[None, :] * scale[:, None]) / sx - x0  # (slabs, u)
    lower, w_lower, w_upper = _linear_taps(x_index, nx)
    columns = np.stack([slab * nx + lower, slab * nx + lower + 1], axis=-1).reshape(n_slabs * n_u, 2)
    weights = np.stack([w_lower, w_upper], axis=-1).reshape(n_slabs * n_u, 2)
    across = sparse_rows_matmul(columns, weights, n_slabs * nx, mu.reshape(n_slabs * nx, nz))  # (slab, u) x z
    across = swap_last_axes(across.reshape(n_slabs, n_u, nz)).reshape(n_slabs * nz, n_u)  # (slab, z) x u
    z_index = (frame.iso_z_mm + w_mm[None, :] * scale[:, None]) / sz - z0  # (slabs, w)
    lower, w_lower, w_upper = _linear_taps(z_index, nz)
    columns = np.stack([slab * nz + lower, slab * nz + lower + 1], axis=-1).transpose(1, 0, 2).reshape(n_w, -1)
    weights = np.stack([w_lower, w_upper], axis=-1).transpose(1, 0, 2).reshape(n_w, -1)
    out += sparse_rows_matmul(columns, weights, n_slabs * nz, across)
    return out


def _path_factor(frame: _Frame, u_mm: np.ndarray, w_mm: np.ndarray) -> np.ndarray:
    """``dy / cos(theta)`` per detector pixel, (w, u), mm."""
    return frame.spacing_mm[1] * np.sqrt(frame.sid_mm**2 + u_mm[None, :] ** 2 + w_mm[:, None] ** 2) / frame.sid_mm


def _render(slabs: Callable[[int, int], Array], y_range: tuple[int, int], per_slab: int, frame: _Frame,
            origin_xz: tuple[int, int], u_mm: np.ndarray, w_mm: np.ndarray, reference: Array) -> np.ndarray:
    """Sum of the chunks ``slabs(y0, y1)`` (float32 (slabs, x, z)) along the rays; (w, u) float64 numpy."""
    budget = _TORCH_CHUNK_VOXELS if is_torch(reference) else _CHUNK_VOXELS
    step = max(1, budget // max(per_slab, 1))
    out = like(reference, np.zeros((len(w_mm), len(u_mm)), dtype=np.float32))
    for y0 in range(y_range[0], y_range[1], step):
        y1 = min(y0 + step, y_range[1])
        out = _accumulate(out, slabs(y0, y1), y0, origin_xz[0], origin_xz[1], frame, u_mm, w_mm)
    return to_numpy(out).astype(np.float64) * _path_factor(frame, u_mm, w_mm)


def to_image_layout(detector_map: np.ndarray) -> np.ndarray:
    """(w, u) detector map (u along +x, w along +z) -> radiograph (rows, cols): superior at top, right on the left."""
    return detector_map[::-1, ::-1]


def cone_line_integral(voxels: Array, spacing_mm: tuple[float, float, float], geometry: ConeGeometry,
                       mu_water_per_mm: float, hu_scale: float = 1.0, hu_offset: float = 0.0) -> np.ndarray:
    """Cone-beam ``-ln T`` on the detector, (rows, cols) float64, radiograph layout (module docstring).

    ``HU = voxels * hu_scale + hu_offset`` (RAS+ (nx, ny, nz), numpy or torch, any device);
    ``mu = max(mu_water * (1 + HU / 1000), 0)`` per mm. Only float32 slab chunks are made.
    """
    nx, ny, nz = voxels.shape
    frame = _Frame.of((nx, ny, nz), spacing_mm, geometry)
    # Sum HU + 1000 (clipped at 0) and scale once: air is exactly 0, whatever float32 rounding.
    detector = _render(lambda y0, y1: float_slabs(voxels, y0, y1, hu_scale, hu_offset + 1000.0, 0.0), (0, ny),
                       nx * nz, frame, (0, 0), geometry.column_mm(), geometry.row_mm(), voxels)
    return to_image_layout(detector * (mu_water_per_mm / 1000.0))


def cone_path_mm(inside: np.ndarray, origin: tuple[int, int, int], grid_shape: tuple[int, int, int],
                 spacing_mm: tuple[float, float, float], geometry: ConeGeometry, device: str = "cpu") -> np.ndarray:
    """Path length (mm) of each detector ray through a region, (rows, cols) float32, radiograph layout.

    ``inside`` is a boolean box of the grid starting at voxel ``origin`` (x, y, z) of a grid of
    ``grid_shape``; the rays and samples are exactly those of :func:`cone_line_integral`. Only
    the detector pixels the box can reach are computed.
    """
    frame = _Frame.of(grid_shape, spacing_mm, geometry)
    # One voxel of air around the box: the bilinear taps see the region's edge fall to zero.
    padded = np.pad(inside, 1)
    origin = tuple(o - 1 for o in origin)
    bx, by, bz = padded.shape
    u_all, w_all = geometry.column_mm(), geometry.row_mm()
    cols = _reach(u_all, origin[0], bx, frame.iso_x_mm, frame.spacing_mm[0], origin[1], by, frame, geometry)
    rows = _reach(w_all, origin[2], bz, frame.iso_z_mm, frame.spacing_mm[2], origin[1], by, frame, geometry)
    path = np.zeros(geometry.shape, dtype=np.float32)
    if cols.stop <= cols.start or rows.stop <= rows.start:
        return to_image_layout(path)
    box = to_device(padded, device)

    def slabs(y0: int, y1: int) -> Array:
        return float_slabs(box, y0 - origin[1], y1 - origin[1], 1.0, 0.0, 0.0)

    path[rows, cols] = _render(slabs, (origin[1], origin[1] + by), bx * bz, frame, (origin[0], origin[2]),
                               u_all[cols], w_all[rows], box)
    return to_image_layout(path)


def _reach(detector_mm: np.ndarray, start: int, n: int, iso_mm: float, step_mm: float, y_start: int, ny: int,
           frame: _Frame, geometry: ConeGeometry) -> slice:
    """Detector indices (one axis) whose rays can meet voxels ``start..start+n-1`` of slabs ``y_start..+ny``."""
    edges = np.array([start - 1, start + n]) * step_mm - iso_mm  # one voxel beyond: the taps' reach
    depths = np.abs(np.array([y_start, y_start + ny - 1]) * frame.spacing_mm[1] - frame.source_y_mm)
    projected = edges[:, None] * (geometry.sid_mm / depths[None, :])
    lo, hi = projected.min(), projected.max()
    inside = np.nonzero((detector_mm >= lo) & (detector_mm <= hi))[0]
    return slice(int(inside[0]), int(inside[-1]) + 1) if inside.size else slice(0, 0)
