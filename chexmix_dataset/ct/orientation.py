"""Reordering a volume to RAS+ by flips and axis swaps, in numpy.

The same array and affine as ``nibabel.as_closest_canonical`` (tested against it), without
importing nibabel: for each voxel axis, the world axis it runs closest to is found on the
nearest rotation to the affine's direction matrix (its polar factor), strongest axes first,
so an oblique scan is reordered as nibabel reorders it. Nothing is resampled.
"""

from __future__ import annotations

import numpy as np


def closest_axes(affine: np.ndarray) -> list[tuple[int, int]]:
    """``(world axis, +1 or -1)`` for each of the first three voxel axes (``nibabel.io_orientation``)."""
    directions = np.asarray(affine, dtype=np.float64)[:3, :3]
    lengths = np.sqrt(np.sum(directions * directions, axis=0))
    lengths[lengths == 0] = 1
    unit = directions / lengths
    left, singular, right = np.linalg.svd(unit, full_matrices=False)
    keep = singular > singular.max() * 3 * np.finfo(singular.dtype).eps
    rotation = np.dot(left[:, keep], right[keep])
    axes: list[tuple[int, int] | None] = [None, None, None]
    for voxel_axis in np.argsort(np.min(-(rotation**2), axis=0), kind="stable"):
        column = rotation[:, voxel_axis]
        if np.allclose(column, 0):
            continue
        world_axis = int(np.argmax(np.abs(column)))
        axes[voxel_axis] = (world_axis, -1 if column[world_axis] < 0 else 1)
        rotation[world_axis, :] = 0  # each world axis is taken once
    if any(axis is None for axis in axes):
        raise ValueError(f"affine has no 3D orientation: {np.asarray(affine).tolist()}")
    return axes  # type: ignore[return-value]


def to_ras(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``data`` (a view, first three axes reordered) and its affine with voxel axes along R, A, S:
    flips and axis swaps only, as ``nibabel.as_closest_canonical``."""
    axes = closest_axes(affine)
    if axes == [(0, 1), (1, 1), (2, 1)]:
        return data, np.asarray(affine, dtype=np.float64)
    shape = np.array(data.shape[:3])
    for voxel_axis, (_, sign) in enumerate(axes):
        if sign < 0:
            data = np.flip(data, axis=voxel_axis)
    order = np.argsort([world for world, _ in axes])
    data = data.transpose(*order, *range(3, data.ndim))
    # Voxel (i, j, k) of the result is voxel v of the input: v = undo_flip(undo_reorder(i, j, k)).
    undo_reorder = np.eye(4)[[world for world, _ in axes] + [3], :]
    signs = np.array([sign for _, sign in axes], dtype=np.float64)
    undo_flip = np.diag([*signs, 1.0])
    centre = -(shape - 1) / 2.0
    undo_flip[:3, 3] = signs * centre - centre
    return data, np.asarray(affine, dtype=np.float64) @ (undo_flip @ undo_reorder)
