"""The phantom CT's voxel grid: fixed field of view in mm, sampling set by the shape.

Coordinates are in mm in the body frame: x towards the patient's Right and y towards
Anterior, both centred on the field of view; z towards Superior with z = 0 at the bottom of
the field of view. Voxel order is nibabel's RAS+ (axis 0 x, axis 1 y, axis 2 z).
"""

from __future__ import annotations

import numpy as np

from chexmix_dataset.errors import ChexmixInputError

DEFAULT_SHAPE = (512, 512, 133)
FIELD_OF_VIEW_MM = (360.0, 360.0, 332.5)  # x (R), y (A), z (S): 512 x 0.703 mm, 133 x 2.5 mm
MIN_AXIS_VOXELS = 24


def check_shape(shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """``shape`` as three ints (voxels along x, y, z), each at least :data:`MIN_AXIS_VOXELS`."""
    shape = tuple(int(n) for n in shape)  # type: ignore[assignment]
    if len(shape) != 3 or min(shape) < MIN_AXIS_VOXELS:
        raise ChexmixInputError(f"phantom shape must be 3 sizes of at least {MIN_AXIS_VOXELS} voxels, got {shape}")
    return shape


class VoxelGrid:
    """Voxel-centre coordinates in mm as open (broadcastable) axes, body-centred in x and y.

    x: (nx,1,1) towards Right, y: (1,ny,1) towards Anterior, z: (1,1,nz) towards Superior with
    z = 0 at the bottom of the field of view.
    """

    def __init__(self, shape: tuple[int, int, int]) -> None:
        self.shape = shape
        self.spacing = tuple(extent / n for extent, n in zip(FIELD_OF_VIEW_MM, shape))
        sx, sy, sz = self.spacing
        self.x = ((np.arange(shape[0]) + 0.5) * sx - FIELD_OF_VIEW_MM[0] / 2).astype(np.float32)[:, None, None]
        self.y = ((np.arange(shape[1]) + 0.5) * sy - FIELD_OF_VIEW_MM[1] / 2).astype(np.float32)[None, :, None]
        self.z = ((np.arange(shape[2]) + 0.5) * sz).astype(np.float32)[None, None, :]
        # Partial-volume width used to soften thin tubes (vessels, clavicles) at coarse sampling.
        self.blur_mm = float(np.cbrt(sx * sy * sz))

    def affine(self) -> np.ndarray:
        """Diagonal RAS+ affine; the world origin sits near the scanner isocentre."""
        sx, sy, sz = self.spacing
        affine = np.diag([sx, sy, sz, 1.0])
        affine[:3, 3] = (-FIELD_OF_VIEW_MM[0] / 2 + sx / 2, -FIELD_OF_VIEW_MM[1] / 2 + sy / 2, -250.0 + sz / 2)
        return affine

    def index_of(self, point_mm: np.ndarray) -> np.ndarray:
        """Nearest voxel index of a body-frame point (mm), clipped to the grid."""
        offset = np.array([FIELD_OF_VIEW_MM[0] / 2, FIELD_OF_VIEW_MM[1] / 2, 0.0])
        index = np.floor((np.asarray(point_mm) + offset) / np.array(self.spacing)).astype(int)
        return np.clip(index, 0, np.array(self.shape) - 1)

    def box(self, lo_mm: np.ndarray, hi_mm: np.ndarray) -> tuple[slice, slice, slice]:
        """Index slices of the voxels between two body-frame corners (mm), both included."""
        lo = self.index_of(lo_mm)
        hi = self.index_of(hi_mm) + 1
        return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))  # type: ignore[return-value]


def segment_distance(grid: VoxelGrid, box: tuple[slice, slice, slice], p0: np.ndarray, p1: np.ndarray
                     ) -> np.ndarray:
    """Distance (mm) from the voxel centres in ``box`` to the segment p0-p1 (mm)."""
    x, y, z = grid.x[box[0]], grid.y[:, box[1]], grid.z[:, :, box[2]]
    d = p1 - p0
    length2 = float(d @ d) or 1e-9
    t = ((x - p0[0]) * d[0] + (y - p0[1]) * d[1] + (z - p0[2]) * d[2]) / length2
    t = np.clip(t, 0.0, 1.0)
    return np.sqrt((x - p0[0] - t * d[0]) ** 2 + (y - p0[1] - t * d[1]) ** 2 + (z - p0[2] - t * d[2]) ** 2)


def paint_tube(field_mm: np.ndarray, grid: VoxelGrid, p0, p1, radius_mm: float) -> None:
    """Lower ``field_mm`` (a signed distance, negative inside) with one straight tube (mm)."""
    p0, p1 = np.asarray(p0, np.float32), np.asarray(p1, np.float32)
    # Only the tube's bounding box is touched: tubes are thin, the grid is large.
    pad = radius_mm + 2 * grid.blur_mm
    box = grid.box(np.minimum(p0, p1) - pad, np.maximum(p0, p1) + pad)
    if any(s.stop <= s.start for s in box):
        return
    np.minimum(field_mm[box], segment_distance(grid, box, p0, p1) - radius_mm, out=field_mm[box])


def fraction_inside(signed_mm: np.ndarray, blur_mm: float) -> np.ndarray:
    """Partial-volume fraction (0..1) of a voxel inside a surface given by its signed distance (mm)."""
    return np.clip(0.5 - signed_mm / blur_mm, 0.0, 1.0)
