"""Where source, patient and detector are: millimetres throughout, in the CT's RAS+ voxel frame.

Pose
    The patient's rotation about the superior-inferior axis (``view_deg``) is applied to the
    volume before any renderer sees it, by :func:`chexmix_dataset.ct.views.rotate_about_si` (one
    implementation for the projector and the builder's extra views).

Parallel geometry
    Rays along anterior-posterior (axis 1), one per voxel column; see :mod:`.parallel`.

Cone geometry (:class:`ConeGeometry`)
    A point source and a flat detector perpendicular to anterior-posterior. The central ray
    runs along anterior-posterior through the isocentre, the centre of the CT's grid, and meets
    the detector at its centre (the principal point). ``PA``: source behind the patient,
    detector in front of the chest; ``AP``: the reverse. A point at distance ``d`` from the
    source (along anterior-posterior) lands on the detector magnified ``sid / d`` about the
    principal point, so anatomy near the source is magnified more. The image keeps the
    radiological layout of the parallel image (patient's right on the left, superior at top)
    for either beam, as a reader would hang the film.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from chexmix_dataset.ct.views import rotate_about_si  # noqa: F401  (the pose, re-exported for readers of this module)
from chexmix_dataset.errors import ChexmixInputError
from chexmix_dataset.projector.options import MAX_SIZE_PX, ProjectorOptions
from chexmix_dataset.projector.parallel import square_pixel_shape


@dataclass(frozen=True)
class ConeGeometry:
    """A cone-beam set-up for one CT grid (module docstring).

    Attributes:
        sid_mm: source-to-detector distance, mm.
        sod_mm: source-to-isocentre distance, mm (isocentre: centre of the CT grid).
        beam: "PA" (source posterior) or "AP" (source anterior).
        pixel_mm: detector pixel pitch, mm (square pixels).
        shape: detector (rows, cols).
    """

    sid_mm: float
    sod_mm: float
    beam: Literal["PA", "AP"]
    pixel_mm: float
    shape: tuple[int, int]

    def column_mm(self) -> np.ndarray:
        """Detector column centres along +x (towards the patient's right), mm from the principal point."""
        return (np.arange(self.shape[1]) - (self.shape[1] - 1) / 2.0) * self.pixel_mm

    def row_mm(self) -> np.ndarray:
        """Detector row centres along +z (superior), mm from the principal point."""
        return (np.arange(self.shape[0]) - (self.shape[0] - 1) / 2.0) * self.pixel_mm

    def source_y_mm(self, ny: int, dy_mm: float) -> float:
        """The source's anterior-posterior position in the grid frame (voxel 0's centre at 0 mm)."""
        centre = (ny - 1) / 2.0 * dy_mm
        return centre - self.sod_mm if self.beam == "PA" else centre + self.sod_mm

    def magnification(self, distance_from_source_mm: float) -> float:
        """Detector size of an object at this distance from the source, per mm of object."""
        return self.sid_mm / distance_from_source_mm


def cone_geometry(shape: tuple[int, int, int], spacing_mm: tuple[float, float, float],
                  options: ProjectorOptions) -> ConeGeometry:
    """The detector the options ask for, for a CT grid of ``shape`` voxels of ``spacing_mm``.

    Without ``detector_pixel_mm`` the detector just holds the whole grid as magnified at its
    slab nearest the source (every ray through the CT lands on it), with ``size_px`` square
    pixels on its longer side; with it, the same field at that pitch.
    """
    nx, ny, nz = shape
    sid, sod = options.source_to_detector_mm, options.source_to_isocentre_mm
    nearest = sod - ny * spacing_mm[1] / 2.0
    if nearest <= 0:
        raise ChexmixInputError(
            f"the source must lie outside the CT: --sod-mm {sod:g} is within half the CT's "
            f"anterior-posterior extent ({ny * spacing_mm[1] / 2.0:g} mm)"
        )
    if min(shape) < 2:
        raise ChexmixInputError(f"cone geometry needs at least 2 voxels along each axis, got {shape}")
    magnification = sid / nearest
    field_rows, field_cols = nz * spacing_mm[2] * magnification, nx * spacing_mm[0] * magnification
    if options.detector_pixel_mm is None:
        detector_shape, pixel_mm = square_pixel_shape(nz, nx, spacing_mm[2] * magnification,
                                                      spacing_mm[0] * magnification, options.size_px)
    else:
        pixel_mm = float(options.detector_pixel_mm)
        detector_shape = (math.ceil(field_rows / pixel_mm - 1e-9), math.ceil(field_cols / pixel_mm - 1e-9))
        if max(detector_shape) > MAX_SIZE_PX:
            raise ChexmixInputError(
                f"--detector-pixel-mm {pixel_mm:g} needs a {detector_shape[1]} x {detector_shape[0]} px detector "
                f"for this CT; at most {MAX_SIZE_PX} px a side"
            )
    return ConeGeometry(sid_mm=sid, sod_mm=sod, beam=options.beam, pixel_mm=pixel_mm, shape=detector_shape)
