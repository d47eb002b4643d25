"""Extra frontal views of one CT: the patient rotated about the superior-inferior axis, or tilted.

Real frontal chest X-rays are rarely taken with the patient perfectly square to the detector;
rotations of a few degrees about the body's long axis are common. When a mix needs more CT
projections than there are CTs, each CT contributes several such views (see
:func:`chexmix_dataset.dataset.splits.mixed_plan`).

The projector applies the same rotation for ``ProjectorOptions.view_deg``
(:func:`chexmix_dataset.projector.project_volume`): one implementation for both.

Convention: ``view_deg`` is a right-handed rotation of the patient about the +z (superior)
axis of the RAS+ volume, about the centre of each axial slice. Seen from the head, a positive
angle turns the patient counter-clockwise: the patient's right side moves anteriorly.

``tilt_deg`` (:func:`tilt_about_lr`) is a right-handed rotation about the +x (right-left) axis,
about the centre of each sagittal slice: a positive tilt moves anterior points superiorly and
superior points posteriorly (the patient leans back, as in a lordotic view). The projector turns
first (about the patient's own long axis), then tilts.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from chexmix_dataset.ct.volume import CTVolume

#: Views per CT in the order a mix takes them: the CT as scanned, then small turns each way.
VIEW_ANGLES_DEG: tuple[float, ...] = (0.0, 5.0, -5.0, 10.0, -10.0)


def _slice_transform(view_deg: float, spacing_xy_mm: tuple[float, float], shape_xy: tuple[int, int]
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(matrix, offset) mapping output voxel (i, j) to input voxel for scipy's affine_transform.

    The rotation acts in millimetres, so anisotropic in-plane spacing stays correct:
    input = S^-1 R^-1 S (output - centre) + centre, with S = diag(spacing).
    """
    theta = np.deg2rad(view_deg)
    # Exact quarter turns: cos(pi) is -1 but sin(pi) is 1.2e-16, which would push the grid's
    # edge voxels a hair outside it and fill them with air.
    cos, sin = (float(np.round(v, 12)) for v in (np.cos(theta), np.sin(theta)))
    inverse_rotation = np.array([[cos, sin], [-sin, cos]])
    scale = np.diag(spacing_xy_mm)
    matrix = np.linalg.inv(scale) @ inverse_rotation @ scale
    centre = (np.asarray(shape_xy, dtype=np.float64) - 1.0) / 2.0
    return matrix, centre - matrix @ centre


def _resample_planes(ct: CTVolume, matrix: np.ndarray, offset: np.ndarray, axis: int) -> CTVolume:
    """``ct`` resampled plane by plane across ``axis`` (2: axial slices, 0: sagittal slices) with
    scipy's affine map of each plane: voxels linearly in float32 (rounded back for integers),
    labels by nearest neighbour, the volume's lowest value where the map leaves the grid."""
    from scipy import ndimage  # only turned views pay its import (0.4 s of every `chexmix project`)

    fill = float(ct.voxels.min()) if ct.voxels.size else 0.0
    is_integer = np.issubdtype(ct.voxels.dtype, np.integer)
    voxels = np.empty_like(ct.voxels)
    for k in range(ct.shape[axis]):
        plane = (slice(None),) * axis + (k,)
        turned = ndimage.affine_transform(ct.voxels[plane].astype(np.float32), matrix, offset, order=1,
                                          mode="constant", cval=fill)
        voxels[plane] = np.rint(turned) if is_integer else turned
    labels = None
    if ct.lesion_labels is not None:
        labels = np.empty_like(ct.lesion_labels)
        for k in range(ct.shape[axis]):
            plane = (slice(None),) * axis + (k,)
            labels[plane] = ndimage.affine_transform(ct.lesion_labels[plane], matrix, offset, order=0,
                                                     mode="constant", cval=0)
    return dataclasses.replace(ct, voxels=voxels, lesion_labels=labels)


def tilt_about_lr(ct: CTVolume, tilt_deg: float) -> CTVolume:
    """``ct`` with the patient tilted by ``tilt_deg`` degrees about the right-left axis (see the
    module docstring), resampled as :func:`rotate_about_si` does; ``tilt_deg == 0`` returns ``ct``."""
    if tilt_deg == 0:
        return ct
    _, ny, nz = ct.shape
    matrix, offset = _slice_transform(tilt_deg, (ct.spacing_mm[1], ct.spacing_mm[2]), (ny, nz))
    return _resample_planes(ct, matrix, offset, axis=0)


def rotate_about_si(ct: CTVolume, view_deg: float) -> CTVolume:
    """``ct`` with the patient turned by ``view_deg`` degrees about the superior-inferior axis.

    Voxels are resampled linearly (the volume's own dtype, rounded for integers) and lesion
    labels by nearest neighbour, slice by slice, so no float copy of the whole volume is made.
    What the turn brings into the field of view is filled with the volume's lowest value (its
    air or padding, which projects as no attenuation). The grid, spacing and affine are kept:
    the view is a new patient pose on the same scanner grid. ``view_deg == 0`` returns ``ct``.
    """
    if view_deg == 0:
        return ct
    nx, ny, _ = ct.shape
    matrix, offset = _slice_transform(view_deg, (ct.spacing_mm[0], ct.spacing_mm[1]), (nx, ny))
    return _resample_planes(ct, matrix, offset, axis=2)
