"""Synthetic chest phantoms: 3D CTs with COVID-19-like lesion labels, and 2D CXR stand-ins.

They let CheXMix build, test and demonstrate everything offline. Both are drawn from
``numpy.random.default_rng(seed)`` and are identical for identical seeds.

CT phantoms (:func:`chest_phantom`) are in Hounsfield units (HU), in nibabel's RAS+ voxel order:
axis 0 increases towards the patient's Right, axis 1 towards Anterior, axis 2 towards Superior.
The physical field of view is fixed (:data:`FIELD_OF_VIEW_MM`); ``shape`` only sets the sampling,
so a small phantom shows the same anatomy coarsely.

CXR stand-ins (:func:`cxr_standin`) are drawn directly in 2D, in radiological display: the
patient's right on the image's left, superior at the top, dense structures bright.
"""

from __future__ import annotations

import gzip
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage
from tqdm.auto import tqdm

from chexmix_dataset.atomic import atomic_dir, atomic_file, check_replaceable, write_json
from chexmix_dataset.ct.volume import CTVolume
from chexmix_dataset.dataset.lesions import LesionInstance
from chexmix_dataset.errors import ChexmixInputError

DEFAULT_SHAPE = (512, 512, 133)
FIELD_OF_VIEW_MM = (360.0, 360.0, 332.5)  # x (R), y (A), z (S): 512 x 0.703 mm, 133 x 2.5 mm
MIN_AXIS_VOXELS = 24
LESION_TYPES = {1: "ground_glass", 2: "consolidation"}
LESION_HU = {1: (-500.0, -300.0), 2: (-100.0, 50.0)}
LESION_GAP_VOXELS = 2
MAX_LESIONS = 6

HU_AIR, HU_FAT, HU_SOFT, HU_LIVER, HU_LUNG = -1000.0, -100.0, 40.0, 55.0, -850.0
HU_CORTICAL, HU_CANCELLOUS, HU_CARTILAGE, HU_CSF = 700.0, 300.0, 150.0, 10.0


@dataclass
class ChestPhantom:
    """A synthetic chest CT with lesion labels.

    Attributes:
        hu: (nx, ny, nz) int16 Hounsfield units, RAS+ voxel order (x Right, y Anterior,
            z Superior).
        labels: (nx, ny, nz) uint8 lesion labels: 0 background, 1 ground-glass, 2 consolidation.
        lung_mask: (nx, ny, nz) bool, both lungs (parenchyma with its vessels); every lesion
            voxel lies inside it.
        affine: 4x4 voxel-to-RAS+-world matrix (mm), diagonal spacing plus a scanner-like origin.
        spacing_mm: voxel size along (x, y, z) in mm.
        patient_id: e.g. "phantom-0007".
        lesion_count: number of separate lesions (3D 26-connected components of labels > 0).
        lesion_types: label value -> lesion type name.
    """

    hu: np.ndarray
    labels: np.ndarray
    lung_mask: np.ndarray
    affine: np.ndarray
    spacing_mm: tuple[float, float, float]
    patient_id: str
    lesion_count: int
    lesion_types: dict[int, str] = field(default_factory=lambda: dict(LESION_TYPES))

    def as_ct_volume(self, path: str = "") -> CTVolume:
        """The phantom as a :class:`CTVolume` (HU, RAS+), as :func:`load_ct` would return it."""
        return CTVolume(
            voxels=self.hu,
            spacing_mm=self.spacing_mm,
            affine=self.affine,
            lesion_labels=self.labels,
            is_hounsfield=True,
            path=path or self.patient_id,
        )


# ----------------------------------------------------------------------------- 3D geometry


class _Grid:
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
        lo = self.index_of(lo_mm)
        hi = self.index_of(hi_mm) + 1
        return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))  # type: ignore[return-value]


def _segment_distance(grid: _Grid, box: tuple[slice, slice, slice], p0: np.ndarray, p1: np.ndarray) -> np.ndarray:
    """Distance (mm) from the voxel centres in ``box`` to the segment p0-p1 (mm)."""
    x, y, z = grid.x[box[0]], grid.y[:, box[1]], grid.z[:, :, box[2]]
    d = p1 - p0
    length2 = float(d @ d) or 1e-9
    t = ((x - p0[0]) * d[0] + (y - p0[1]) * d[1] + (z - p0[2]) * d[2]) / length2
    t = np.clip(t, 0.0, 1.0)
    return np.sqrt((x - p0[0] - t * d[0]) ** 2 + (y - p0[1] - t * d[1]) ** 2 + (z - p0[2] - t * d[2]) ** 2)


def _paint_tube(field_mm: np.ndarray, grid: _Grid, p0, p1, radius_mm: float) -> None:
    """Lower ``field_mm`` (a signed distance, negative inside) with one straight tube."""
    p0, p1 = np.asarray(p0, np.float32), np.asarray(p1, np.float32)
    pad = radius_mm + 2 * grid.blur_mm
    box = grid.box(np.minimum(p0, p1) - pad, np.maximum(p0, p1) + pad)
    if any(s.stop <= s.start for s in box):
        return
    np.minimum(field_mm[box], _segment_distance(grid, box, p0, p1) - radius_mm, out=field_mm[box])


def _fraction_inside(signed_mm: np.ndarray, blur_mm: float) -> np.ndarray:
    """Partial-volume fraction (0..1) of a voxel inside a surface given by its signed distance."""
    return np.clip(0.5 - signed_mm / blur_mm, 0.0, 1.0)


@dataclass
class _Body:
    """Seeded patient geometry (mm, body frame of :class:`_Grid`)."""

    body_a: float  # lateral semi-axis of the skin ellipse
    body_b: float  # antero-posterior semi-axis
    body_y: float
    fat_mm: float
    muscle_mm: float
    dome_right: float  # z of the right diaphragm dome peak
    dome_left: float
    apex_z: float  # z of the lung apices
    heart_shift: float

    @property
    def cavity_a(self) -> float:
        return self.body_a - self.fat_mm - self.muscle_mm - 10.0

    @property
    def cavity_b(self) -> float:
        return self.body_b - self.fat_mm - self.muscle_mm - 20.0

    @property
    def cavity_y(self) -> float:
        return self.body_y + 10.0

    @property
    def spine_y(self) -> float:
        """y of the vertebral-body centre: just inside the posterior cavity wall."""
        return self.cavity_y - self.cavity_b + 16.0


def _random_body(rng: np.random.Generator) -> _Body:
    dome_right = rng.uniform(90.0, 110.0)
    return _Body(
        body_a=rng.uniform(140.0, 168.0),
        body_b=rng.uniform(108.0, 128.0),
        body_y=rng.uniform(-12.0, 4.0),
        fat_mm=rng.uniform(6.0, 22.0),
        muscle_mm=rng.uniform(8.0, 14.0),
        dome_right=dome_right,
        dome_left=dome_right - rng.uniform(10.0, 25.0),
        apex_z=rng.uniform(292.0, 306.0),
        heart_shift=rng.uniform(-8.0, 8.0),
    )


def _cavity_taper(body: _Body, z: np.ndarray) -> np.ndarray:
    """Scale of the thoracic cavity cross-section with height: the thorax narrows at the apex."""
    rise = np.clip((z - 170.0) / (body.apex_z - 170.0), 0.0, 1.3)
    return 1.0 - 0.33 * rise**2


def _dome_z(body: _Body, grid: _Grid) -> np.ndarray:
    """(nx, ny, 1) height (mm) of the diaphragm surface; the right dome is the higher one."""
    x, y = grid.x, grid.y
    yc = body.cavity_y + 0.1 * body.cavity_b
    fall_y = 0.006 * (y - yc) ** 2 + 0.006 * np.minimum(y - yc, 0.0) ** 2  # deep posterior recess
    right = body.dome_right - 0.011 * (x - 55.0) ** 2 - fall_y
    left = body.dome_left - 0.011 * (x + 55.0) ** 2 - fall_y
    weight_right = 1.0 / (1.0 + np.exp(-x / 10.0))
    return weight_right * right + (1.0 - weight_right) * left


def _ellipsoid_q(grid: _Grid, centre, semi_axes) -> np.ndarray:
    """Normalised squared ellipsoid radius (< 1 inside) over the whole grid."""
    return (
        ((grid.x - centre[0]) / semi_axes[0]) ** 2
        + ((grid.y - centre[1]) / semi_axes[1]) ** 2
        + ((grid.z - centre[2]) / semi_axes[2]) ** 2
    )


def _vessel_tree(rng: np.random.Generator, hilum: np.ndarray, side: float, inside) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Branching pulmonary vessels from one hilum: (start, end, radius) segments in mm."""
    segments = []
    main_directions = [(0.3, 0.0, 1.0), (0.6, 0.5, 0.9), (1.0, 0.1, 0.5), (1.0, 0.3, -0.2), (1.0, -0.5, 0.0),
                       (0.6, -0.4, -1.0), (0.5, 0.6, -0.8), (0.7, -0.8, 0.2), (0.3, -0.8, -0.6)]
    stack = []
    for direction in main_directions:
        d = np.array([side * direction[0], direction[1], direction[2]]) + rng.normal(0, 0.15, 3)
        stack.append((hilum, d / np.linalg.norm(d), 30.0, 5.5, 0))
    while stack:
        start, direction, length, radius, depth = stack.pop()
        end = start + direction * length
        if depth > 0 and not inside(end):
            continue
        segments.append((start, end, radius))
        if depth >= 6 or radius < 0.8:
            continue
        for sign in (-1.0, 1.0):
            turn = rng.normal(0, 0.35, 3)
            turn -= (turn @ direction) * direction
            child = direction + turn + sign * 0.35 * np.cross(direction, rng.normal(0, 1, 3))
            child /= np.linalg.norm(child)
            stack.append((end, child, length * rng.uniform(0.7, 0.9), radius * 0.76, depth + 1))
    return segments


def _anatomy(body: _Body, grid: _Grid, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """HU volume (float32, no lesions, no noise) and the lung mask."""
    x, y, z = grid.x, grid.y, grid.z
    shape = grid.shape
    hu = np.full(shape, HU_AIR, dtype=np.float32)

    skin_q = (x / body.body_a) ** 2 + ((y - body.body_y) / body.body_b) ** 2  # (nx, ny, 1)
    muscle_q = (x / (body.body_a - body.fat_mm)) ** 2 + ((y - body.body_y) / (body.body_b - body.fat_mm)) ** 2
    hu[np.broadcast_to(skin_q < 1.0, shape)] = HU_FAT
    hu[np.broadcast_to(muscle_q < 1.0, shape)] = HU_SOFT

    taper = _cavity_taper(body, z)  # (1, 1, nz)
    a, b, yc = body.cavity_a * taper, body.cavity_b * taper, body.cavity_y
    cavity_rho = np.sqrt((x / a) ** 2 + ((y - yc) / b) ** 2)  # (nx, ny, nz); 1 on the inner rib surface
    dome = _dome_z(body, grid)
    below_dome = z < dome

    # Mediastinum, heart and great vessels: soft tissue the lungs wrap around.
    heart_centre = (-25.0 + body.heart_shift, yc + 0.3 * body.cavity_b, body.dome_left + 50.0)
    heart_axes = (62.0, 0.6 * body.cavity_b, 62.0)
    spine_front = body.spine_y + 17.0
    mediastinum_half_width = np.interp(z, [0.0, 170.0, 230.0, 400.0], [30.0, 30.0, 22.0, 20.0]).astype(np.float32)
    mediastinum = np.where(y > spine_front, np.abs(x + 4.0) < mediastinum_half_width, np.abs(x) < 24.0)
    mediastinum = mediastinum & (z < body.apex_z + 20.0)

    great_vessels = np.full(shape, np.inf, dtype=np.float32)  # signed distance, mm
    trachea_y = spine_front + 16.0
    aorta = [
        (0.0, heart_centre[1] - 5.0, heart_centre[2] + 35.0),
        (12.0, trachea_y + 28.0, 222.0),
        (-4.0, trachea_y + 10.0, 238.0),
        (-24.0, body.spine_y + 8.0, 226.0),
        (-24.0, body.spine_y + 10.0, 150.0),
        (-18.0, body.spine_y + 16.0, 40.0),
    ]
    for p0, p1 in zip(aorta[:-1], aorta[1:]):
        _paint_tube(great_vessels, grid, p0, p1, 13.0)
    _paint_tube(great_vessels, grid, (26.0, trachea_y + 22.0, 250.0), (22.0, trachea_y + 20.0, heart_centre[2] + 40.0), 10.0)

    airway = np.full(shape, np.inf, dtype=np.float32)
    carina = np.array((0.0, trachea_y, 214.0))
    _paint_tube(airway, grid, (0.0, trachea_y, 340.0), carina, 9.0)
    right_hilum = np.array((42.0, trachea_y - 6.0, 188.0))
    left_hilum = np.array((-46.0, trachea_y - 8.0, 194.0))
    _paint_tube(airway, grid, carina, right_hilum, 6.5)
    _paint_tube(airway, grid, carina, left_hilum, 6.0)
    for hilum, side in ((right_hilum, 1.0), (left_hilum, -1.0)):
        for direction in ((0.4, 0.0, 1.0), (0.8, 0.2, -0.3), (0.4, -0.3, -1.0)):
            d = np.array([side * direction[0], direction[1], direction[2]])
            _paint_tube(airway, grid, hilum, hilum + 28.0 * d / np.linalg.norm(d), 3.5)

    # Lungs: the cavity above the domes and below the apical caps, minus the central structures.
    lung_centre_x, lung_centre_y = 0.5 * body.cavity_a, yc - 0.1 * body.cavity_b
    cap_start = body.apex_z - 55.0
    cap_z = np.clip((z - cap_start) / 55.0, 0.0, None)
    lung = (cavity_rho < 0.97) & ~below_dome & (z < body.apex_z)
    horizontal = ((np.abs(x) - lung_centre_x) / (0.5 * a)) ** 2 + ((y - lung_centre_y) / (0.85 * b)) ** 2
    lung &= (cap_z == 0.0) | (horizontal + cap_z**2 < 1.0)
    lung &= ~(mediastinum | (_ellipsoid_q(grid, heart_centre, np.add(heart_axes, 4.0)) < 1.0))
    lung &= (great_vessels > 3.0) & (airway > 2.0)
    lung &= ~((np.abs(x) < 30.0) & (y < spine_front + 4.0))

    in_cavity_abdomen = (cavity_rho < 1.0) & below_dome
    hu[in_cavity_abdomen] = np.where(np.broadcast_to(x > -30.0, shape)[in_cavity_abdomen], HU_LIVER, HU_SOFT)
    bubble = _ellipsoid_q(grid, (-62.0, yc + 0.1 * body.cavity_b, body.dome_left - 38.0), (26.0, 22.0, 14.0)) < 1.0
    hu[bubble & (z > body.dome_left - 40.0) & in_cavity_abdomen] = HU_AIR
    hu[lung] = HU_LUNG

    # Pulmonary vessels (~soft tissue HU), only where they run through lung.
    vessel_field = np.full(shape, np.inf, dtype=np.float32)

    def inside_lung(point: np.ndarray) -> bool:
        return bool(lung[tuple(grid.index_of(point))])

    for hilum, side in ((right_hilum, 1.0), (left_hilum, -1.0)):
        for p0, p1, radius in _vessel_tree(rng, hilum + np.array([side * 6.0, 6.0, 0.0]), side, inside_lung):
            _paint_tube(vessel_field, grid, p0, p1, radius)
    vessel_fraction = _fraction_inside(vessel_field[lung], grid.blur_mm)
    hu[lung] = HU_LUNG + vessel_fraction * (HU_SOFT - HU_LUNG)

    hu[great_vessels < 0.0] = HU_SOFT
    airway_wall = (airway < 2.0) & ~lung
    hu[airway_wall] = HU_SOFT
    hu[airway < 0.0] = HU_AIR

    _paint_bones(hu, body, grid, cavity_rho, taper)
    return hu, lung


def _paint_bones(hu: np.ndarray, body: _Body, grid: _Grid, cavity_rho: np.ndarray, taper: np.ndarray) -> None:
    """Spine, ribs with costal cartilage, sternum and clavicles, painted over soft tissue."""
    x, y, z = grid.x, grid.y, grid.z
    shape = grid.shape

    # Vertebrae: bodies (cortical shell, cancellous core) separated by discs, plus neural arches.
    pitch, disc = 24.0, 5.0
    phase = np.mod(z - 3.0, pitch)  # (1, 1, nz)
    endplate_mm = np.minimum(phase - disc, pitch - phase)
    in_vertebra = phase > disc
    radius = 17.0
    r_body = np.sqrt(x**2 + (y - body.spine_y) ** 2)  # (nx, ny, 1)
    vertebral_body = (r_body < radius) & in_vertebra
    cortex = (r_body > radius - 2.5) | (endplate_mm < 2.0)
    hu[vertebral_body] = np.where(np.broadcast_to(cortex, shape)[vertebral_body], HU_CORTICAL, HU_CANCELLOUS)
    hu[np.broadcast_to((r_body < radius) & ~in_vertebra, shape)] = 80.0  # intervertebral disc
    canal_y = body.spine_y - radius - 9.0
    r_canal = np.sqrt(x**2 + (y - canal_y) ** 2)
    arch = ((r_canal < 15.0) & (r_canal > 8.5)) | ((np.abs(x) < 4.5) & (y < canal_y) & (y > canal_y - 42.0))
    transverse = (np.abs(y - canal_y - 2.0) < 5.0) & (np.abs(x) < 40.0) & (np.abs(x) > 10.0)
    arch = (arch & in_vertebra) | (transverse & (phase > disc + 5.0) & (phase < disc + 13.0))
    hu[arch & (z < body.apex_z + 25.0)] = HU_CORTICAL
    hu[np.broadcast_to(r_canal < 8.5, shape)] = HU_CSF

    # Ribs: flat bands just outside the cavity, dropping as they run round to the front.
    band = (cavity_rho > 1.0) & (cavity_rho < 1.0 + 8.0 / (body.cavity_b * taper))
    idx = np.nonzero(band)
    xs, ys, zs = grid.x[idx[0], 0, 0], grid.y[0, idx[1], 0], grid.z[0, 0, idx[2]]
    theta = np.arctan2(np.abs(xs) / body.cavity_a, -(ys - body.cavity_y) / body.cavity_b)  # 0 back, pi front
    drop = 58.0 * ((1.0 - np.cos(theta)) / 2.0) ** 1.3
    first_rib_z, rib_pitch, rib_height = body.apex_z - 6.0, 22.5, 12.0
    along = first_rib_z - (zs + drop)
    rib_index = np.round(along / rib_pitch)
    in_band = np.abs(along - rib_index * rib_pitch) < rib_height / 2
    rib_end = np.where(rib_index < 7, 0.74 * np.pi, np.where(rib_index < 10, 0.62 * np.pi, 0.42 * np.pi))
    cartilage_end = np.where(rib_index < 7, 0.93 * np.pi, np.where(rib_index < 10, 0.80 * np.pi, 0.0))
    valid = in_band & (rib_index >= 0) & (rib_index < 12) & (theta > 0.1 * np.pi)
    hu[tuple(i[valid & (theta < rib_end)] for i in idx)] = HU_CORTICAL
    hu[tuple(i[valid & (theta >= rib_end) & (theta < cartilage_end)] for i in idx)] = HU_CARTILAGE

    # Sternum: manubrium and body on the anterior midline.
    front = body.cavity_y + body.cavity_b * taper
    sternum = (np.abs(x) < np.where(z > 245.0, 24.0, 14.0)) & (y > front + 1.0) & (y < front + 11.0)
    sternum &= (z > 140.0) & (z < 272.0)
    hu[sternum] = np.where(np.broadcast_to((y > front + 3.0) & (y < front + 9.0), shape)[sternum], 350.0, HU_CORTICAL)

    # Clavicles: gently S-shaped tubes from the manubrium out towards the shoulders.
    clavicle = np.full(shape, np.inf, dtype=np.float32)
    top_front = body.cavity_y + body.cavity_b * float(_cavity_taper(body, np.float32(272.0)))
    for side in (1.0, -1.0):
        points = [
            (side * 16.0, top_front + 8.0, 270.0),
            (side * 60.0, top_front + 6.0, 276.0),
            (side * 100.0, top_front - 12.0, 282.0),
            (side * min(135.0, body.body_a - 12.0), body.cavity_y - 5.0, 292.0),
        ]
        for p0, p1 in zip(points[:-1], points[1:]):
            _paint_tube(clavicle, grid, p0, p1, 7.0)
    near = clavicle < 0.5 * grid.blur_mm
    hu[near] += _fraction_inside(clavicle[near], grid.blur_mm) * (HU_CORTICAL - hu[near])


# ----------------------------------------------------------------------------- lesions


def _lesion_blob(rng: np.random.Generator, grid: _Grid, centre: np.ndarray, diameter_mm: float
                 ) -> tuple[tuple[slice, slice, slice], np.ndarray, np.ndarray]:
    """An irregular blob (union of 2-4 ellipsoids): its box, mask and centre-ness (0 edge..1 core)."""
    pad = diameter_mm + (LESION_GAP_VOXELS + 1) * max(grid.spacing)
    box = grid.box(centre - pad, centre + pad)
    x, y, z = grid.x[box[0]], grid.y[:, box[1]], grid.z[:, :, box[2]]
    core = np.zeros((x.shape[0], y.shape[1], z.shape[2]), dtype=np.float32)
    for _ in range(rng.integers(2, 5)):
        offset = np.clip(rng.normal(0.0, diameter_mm / 5, 3), -diameter_mm / 3, diameter_mm / 3)
        axes = diameter_mm / 2 * rng.uniform(0.45, 0.9, 3)
        q = ((x - centre[0] - offset[0]) / axes[0]) ** 2 + ((y - centre[1] - offset[1]) / axes[1]) ** 2 \
            + ((z - centre[2] - offset[2]) / axes[2]) ** 2
        np.maximum(core, 1.0 - q, out=core)
    return box, core > 0.0, core


def _place_lesions(rng: np.random.Generator, grid: _Grid, body: _Body, hu: np.ndarray, lung: np.ndarray,
                   count: int, at_least_one: bool) -> tuple[np.ndarray, int]:
    """Paint ``count`` separate lesions into ``hu``; return the label volume and the number placed."""
    labels = np.zeros(grid.shape, dtype=np.uint8)
    if count == 0:
        return labels, 0
    stride = max(1, int(round((lung.sum() / 2e5) ** (1 / 3))))
    candidates = np.argwhere(lung[::stride, ::stride, ::stride]) * stride
    if len(candidates) == 0:
        return labels, 0
    xs = grid.x[candidates[:, 0], 0, 0]
    ys = grid.y[0, candidates[:, 1], 0]
    zs = grid.z[0, 0, candidates[:, 2]]
    # COVID-19 pneumonia favours the lung periphery and bases.
    rho = np.sqrt((xs / body.cavity_a) ** 2 + ((ys - body.cavity_y) / body.cavity_b) ** 2)
    basal = np.clip((body.apex_z - zs) / (body.apex_z - 60.0), 0.0, 1.0)
    weights = rho**4 * (0.3 + basal**2)
    weights /= weights.sum()
    structure = np.ones((3, 3, 3), dtype=bool)
    placed, attempts = 0, 0
    max_attempts = 40 * count + (400 if at_least_one else 0)
    while placed < count and attempts < max_attempts:
        attempts += 1
        centre_index = candidates[rng.choice(len(candidates), p=weights)]
        centre = np.array([grid.x[centre_index[0], 0, 0], grid.y[0, centre_index[1], 0], grid.z[0, 0, centre_index[2]]])
        diameter = float(np.exp(rng.uniform(np.log(8.0), np.log(40.0))))
        label = 1 if rng.random() < 0.65 else 2
        box, blob, core = _lesion_blob(rng, grid, centre, diameter)
        blob &= lung[box]
        components, n = ndimage.label(blob, structure=structure)
        if n == 0:
            continue
        sizes = np.bincount(components.ravel())[1:]
        blob = components == (1 + int(np.argmax(sizes)))
        if blob.sum() < 2:
            continue
        # A gap of LESION_GAP_VOXELS keeps lesions from merging under 26-connectivity.
        halo = ndimage.binary_dilation(blob, structure=structure, iterations=LESION_GAP_VOXELS)
        if np.any(labels[box][halo]):
            continue
        lo, hi = LESION_HU[label]
        texture = rng.normal(0.0, 0.08, blob.shape).astype(np.float32)
        density = np.clip(0.2 + 0.7 * np.sqrt(np.clip(core, 0, 1)) + texture, 0.0, 1.0)
        hu_box = hu[box]
        hu_box[blob] = lo + (hi - lo) * density[blob]
        labels[box][blob] = label
        placed += 1
    return labels, placed


# ----------------------------------------------------------------------------- public API


def _check_shape(shape: tuple[int, int, int]) -> tuple[int, int, int]:
    shape = tuple(int(n) for n in shape)  # type: ignore[assignment]
    if len(shape) != 3 or min(shape) < MIN_AXIS_VOXELS:
        raise ChexmixInputError(f"phantom shape must be 3 sizes of at least {MIN_AXIS_VOXELS} voxels, got {shape}")
    return shape


def _rng(seed: int) -> np.random.Generator:
    if seed < 0:
        raise ChexmixInputError(f"seed must be a non-negative integer, got {seed}")
    return np.random.default_rng(seed)


def standin_patient_id(seed: int) -> str:
    """The patient id of :func:`cxr_standin` ``(seed)``, without drawing the image."""
    return f"standin-{seed:04d}"


def chest_phantom(seed: int, shape: tuple[int, int, int] = DEFAULT_SHAPE, lesions: bool | None = None) -> ChestPhantom:
    """A deterministic synthetic chest CT (HU, RAS+) with COVID-19-like lesion labels.

    Args:
        seed: seeds ``numpy.random.default_rng``; the same seed gives identical arrays.
        shape: voxels along (x Right, y Anterior, z Superior). The field of view is fixed at
            :data:`FIELD_OF_VIEW_MM`, so spacing (mm) = field of view / shape.
        lesions: None draws 0-6 lesions (about one seed in six has none); False gives none;
            True gives at least one.
    """
    shape = _check_shape(shape)
    rng = _rng(seed)
    grid = _Grid(shape)
    body = _random_body(rng)
    hu, lung = _anatomy(body, grid, rng)
    if lesions is False:
        count = 0
    elif lesions is True or rng.random() >= 1 / 6:
        count = int(rng.integers(1, MAX_LESIONS + 1))
    else:
        count = 0
    labels, placed = _place_lesions(rng, grid, body, hu, lung, count, at_least_one=lesions is True)
    if lesions is True and placed == 0:
        raise ChexmixInputError(f"phantom shape {shape} is too coarse to hold a lesion")

    hu += rng.standard_normal(shape, dtype=np.float32) * 12.0
    for label, (lo, hi) in LESION_HU.items():
        where = labels == label
        hu[where] = np.clip(hu[where], lo, hi)
    hu = np.clip(np.rint(hu), -1024, 3071).astype(np.int16)
    return ChestPhantom(
        hu=hu,
        labels=labels,
        lung_mask=lung,
        affine=grid.affine(),
        spacing_mm=tuple(float(s) for s in grid.spacing),  # type: ignore[arg-type]
        patient_id=f"phantom-{seed:04d}",
        lesion_count=placed,
    )


def _nifti_gz_bytes(data: np.ndarray, affine: np.ndarray) -> bytes:
    image = nib.Nifti1Image(data, affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    image.header.set_xyzt_units("mm")
    # mtime=0 keeps the files byte-identical for identical phantoms.
    return gzip.compress(image.to_bytes(), compresslevel=1, mtime=0)


def write_phantom_nifti(phantom: ChestPhantom, ct_path: str | os.PathLike, mask_path: str | os.PathLike) -> None:
    """Write the CT (int16 HU) and the lesion labels (uint8) as .nii.gz with the phantom's affine."""
    for path, data in ((ct_path, phantom.hu), (mask_path, phantom.labels)):
        payload = _nifti_gz_bytes(data, phantom.affine)
        with atomic_file(path, "wb") as handle:
            handle.write(payload)


PHANTOMS_RECORD = "phantoms.json"
PHANTOM_OUTPUT_NAMES = ("ct", "mask", PHANTOMS_RECORD)


def _recorded_parameters(out_dir: Path) -> dict | None:
    """The ``{"seed", "n", "shape"}`` of a previous :func:`write_phantoms` output, or None."""
    try:
        record = json.loads((out_dir / PHANTOMS_RECORD).read_text(encoding="utf-8"))
        return {"seed": int(record["seed"]), "n": int(record["n"]), "shape": [int(v) for v in record["shape"]]}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_phantom_output(out_dir: str | os.PathLike, seed: int, shape: tuple[int, int, int]) -> Path:
    """Refuse an ``out_dir`` that :func:`write_phantoms` must not replace; returns it absolute.

    Only a previous output of the same seed and shape (any ``n``) is replaced; phantoms of
    another seed or shape, or of unknown parameters, are refused rather than mixed with new ones.
    """
    path = check_replaceable(out_dir, PHANTOM_OUTPUT_NAMES)
    if path.is_dir() and any(path.iterdir()):
        record = _recorded_parameters(path)
        if record is None:
            raise ChexmixInputError(f"output folder holds phantoms without a readable {PHANTOMS_RECORD} (seed and "
                                    "shape unknown); choose a new folder rather than mix phantoms", out_dir)
        if (record["seed"], tuple(record["shape"])) != (seed, tuple(shape)):
            raise ChexmixInputError(
                f"output folder holds {record['n']} phantom(s) of seed {record['seed']}, shape "
                f"{'x'.join(map(str, record['shape']))}; this run makes seed {seed}, shape "
                f"{'x'.join(map(str, shape))}; choose another folder rather than mix them", out_dir)
    return path


def write_phantoms(out_dir: str | os.PathLike, n: int, seed: int, shape: tuple[int, int, int] = DEFAULT_SHAPE
                   ) -> list[tuple[Path, Path]]:
    """Write phantoms seeded ``seed .. seed + n - 1`` as ``ct/`` and ``mask/`` .nii.gz pairs.

    ``out_dir`` appears whole or not at all, with ``phantoms.json`` recording
    ``{"seed", "n", "shape"}``. It replaces an existing ``out_dir`` only when that is a previous
    output of the same seed and shape (see :func:`check_phantom_output`). Returns the final
    (ct_path, mask_path) pairs.
    """
    if n < 1:
        raise ChexmixInputError(f"number of phantoms must be at least 1, got {n}")
    shape = _check_shape(shape)
    _rng(seed)  # a bad seed fails before anything is written
    given = Path(out_dir)
    check_phantom_output(given, seed, shape)
    names = [f"phantom_{i:04d}.nii.gz" for i in range(n)]
    with atomic_dir(given, replaces=PHANTOM_OUTPUT_NAMES) as tmp:
        for i, name in enumerate(tqdm(names, desc="phantoms", unit="ct")):
            write_phantom_nifti(chest_phantom(seed + i, shape), tmp / "ct" / name, tmp / "mask" / name)
        write_json(tmp / PHANTOMS_RECORD, {"seed": seed, "n": n, "shape": list(shape)})
    return [(given / "ct" / name, given / "mask" / name) for name in names]


# ----------------------------------------------------------------------------- 2D CXR stand-ins


@dataclass
class CXRStandin:
    """A synthetic frontal chest radiograph standing in for a real annotated CXR.

    Attributes:
        image: (height, width) uint8, radiological display (patient's right on the image's
            left, superior at the top, dense = bright).
        instances: the lesions, each with its own (height, width) bool mask; they never overlap.
        patient_id: e.g. "standin-0007".
    """

    image: np.ndarray
    instances: list[LesionInstance]
    patient_id: str


def _curve_distance(u: np.ndarray, v: np.ndarray, u_knots: np.ndarray, v_knots: np.ndarray) -> np.ndarray:
    """Approximate distance (mm) from pixels to the curve v(u) through the knots, inf outside its u range."""
    v_curve = np.interp(u, u_knots, v_knots)
    slope = np.gradient(v_knots, u_knots)
    cos = 1.0 / np.sqrt(1.0 + np.interp(u, u_knots, slope) ** 2)
    inside = (u >= u_knots.min()) & (u <= u_knots.max())
    return np.where(inside, np.abs(v - v_curve) * cos, np.inf)


def _bone_band(distance_mm: np.ndarray, half_width_mm: float) -> np.ndarray:
    """Projected density of a tubular bone: brighter at its cortical edges."""
    t = np.clip(distance_mm / half_width_mm, 0.0, 1.0)
    return np.where(distance_mm < half_width_mm, 0.65 + 0.35 * t**2, 0.0)


def cxr_standin(seed: int, size: int = 512) -> CXRStandin:
    """A synthetic PA chest radiograph with 0-4 lesion masks, drawn directly in 2D.

    Its look deliberately differs from CT projections (gamma, detector noise, blur, collimation
    border, patient size and position). The image is ``size`` x ``size`` px over roughly a
    430 mm detector.
    """
    if size < 64:
        raise ChexmixInputError(f"stand-in size must be at least 64 px, got {size}")
    rng = _rng(seed)
    mm_per_px = 430.0 / size
    scale = rng.uniform(0.85, 1.05)
    shift = rng.uniform(-15.0, 15.0, 2)
    angle = np.deg2rad(rng.uniform(-3.0, 3.0))
    rows, cols = np.mgrid[:size, :size].astype(np.float32)
    px_u = (cols - size / 2) * mm_per_px - shift[0]
    px_v = (rows - size / 2) * mm_per_px - shift[1] + 15.0
    # Patient frame (mm): u to the image right (patient's left), v downwards.
    u = (np.cos(angle) * px_u + np.sin(angle) * px_v) / scale
    v = (-np.sin(angle) * px_u + np.cos(angle) * px_v) / scale

    half_width = np.interp(v, [-260, -190, -150, -120, 0, 200], [55, 60, 175, 178, 165, 158])
    tissue = 190.0 * np.sqrt(np.clip(1.0 - (u / half_width) ** 2, 0.0, 1.0))  # soft tissue path, mm

    # Lung fields: apex caps, lateral rib margins, diaphragm domes (right dome higher).
    dome_right = rng.uniform(75.0, 100.0)
    dome_left = dome_right + rng.uniform(10.0, 22.0)
    dome = np.where(u < 0, dome_right - 0.009 * (u + 70.0) ** 2, dome_left - 0.009 * (u - 70.0) ** 2)
    apex = -150.0 + 0.012 * (np.abs(u) - 70.0) ** 2
    lateral = np.interp(v, [-200, -100, 0, 200], [95, 140, 148, 150])
    field = (v > apex) & (v < dome) & (np.abs(u) < lateral) & (np.abs(u) > 24.0)
    heart = (((u - 28.0) * np.cos(0.5) + (v - 55.0) * np.sin(0.5)) / 82.0) ** 2 \
        + ((-(u - 28.0) * np.sin(0.5) + (v - 55.0) * np.cos(0.5)) / 62.0) ** 2 < 1.0
    aortic_knob = (u - 32.0) ** 2 + (v + 65.0) ** 2 < 17.0**2
    mediastinum = (np.abs(u - 3.0) < np.interp(v, [-160, -40, 40], [22, 30, 34])) | aortic_knob
    lung = field & ~heart & ~mediastinum
    lung_depth = 175.0 * ndimage.gaussian_filter(lung.astype(np.float32), sigma=14.0 / mm_per_px)

    # Branching lung vessels from the hila, as faint tubes.
    vessels = np.zeros_like(u)
    for hilum_u, direction_side in ((-48.0, -1.0), (52.0, 1.0)):
        stack = [(np.array([hilum_u, -10.0]), np.array([direction_side * np.cos(a), np.sin(a)]), 40.0, 4.0, 0)
                 for a in (-1.2, -0.4, 0.3, 1.0)]
        while stack:
            start, direction, length, radius, depth = stack.pop()
            end = start + direction * length
            seg = end - start
            t = np.clip(((u - start[0]) * seg[0] + (v - start[1]) * seg[1]) / (seg @ seg), 0.0, 1.0)
            distance = np.hypot(u - start[0] - t * seg[0], v - start[1] - t * seg[1])
            vessels = np.maximum(vessels, np.clip(1.0 - distance / radius, 0.0, 1.0) * radius * 2.0)
            if depth < 4:
                for turn in (-1.0, 1.0):
                    a = turn * rng.uniform(0.25, 0.6)
                    rotated = np.array([np.cos(a) * direction[0] - np.sin(a) * direction[1],
                                        np.sin(a) * direction[0] + np.cos(a) * direction[1]])
                    stack.append((end, rotated, length * 0.75, radius * 0.7, depth + 1))

    # Bones: posterior ribs (distinct), anterior ribs (faint), clavicles, spine, humeral heads.
    bone = np.zeros_like(u)
    for k in range(10):
        v0 = -150.0 + 23.0 * k
        width = float(np.interp(v0, [-150, -60, 100], [95, 138, 150]))
        x = np.linspace(0.0, 1.0, 24)
        posterior_v = v0 - 14.0 * np.sin(np.pi * 0.7 * x) + 22.0 * x**3
        anterior_v = posterior_v[-1] + 48.0 * (1.0 - x) ** 0.9
        for s in (-1.0, 1.0):
            knots_u = s * (16.0 + (width - 16.0) * x)
            order = np.argsort(knots_u)
            bone += _bone_band(_curve_distance(u, v, knots_u[order], posterior_v[order]), 5.5) * 9.0
            anterior_u = s * (35.0 + (width - 35.0) * x)
            keep = x > 0.15
            order = np.argsort(anterior_u[keep])
            bone += _bone_band(_curve_distance(u, v, anterior_u[keep][order], anterior_v[keep][order]), 5.0) * 4.5
    for s in (-1.0, 1.0):
        x = np.linspace(0.0, 1.0, 24)
        knots_u = s * (20.0 + 135.0 * x)
        knots_v = -135.0 - 28.0 * x + 6.0 * np.sin(2 * np.pi * x)
        order = np.argsort(knots_u)
        bone += _bone_band(_curve_distance(u, v, knots_u[order], knots_v[order]), 7.5) * 14.0
    vertebra = np.mod(v + 200.0, 24.0) > 5.0
    spine = np.where(np.abs(u) < 21.0, 7.0 * (0.4 + 0.6 * vertebra) * np.sqrt(np.clip(1 - (u / 21.0) ** 2, 0, 1)), 0.0)
    spine += 4.0 * (np.abs(np.abs(u) - 13.0) < 3.5) * vertebra * (np.mod(v + 200.0, 24.0) < 15.0)
    bone += ndimage.gaussian_filter(spine, sigma=1.5 / mm_per_px)

    # Gastric bubble under the left dome.
    bubble = ((u - 75.0) / 32.0) ** 2 + ((v - dome_left - 26.0) / 15.0) ** 2 < 1.0

    # Lesions: hazy patches inside the lung fields, each its own non-overlapping mask.
    instances: list[LesionInstance] = []
    lesion_density = np.zeros_like(u)
    n_lesions = 0 if rng.random() < 0.2 else int(rng.integers(1, 5))
    lung_px = np.argwhere(ndimage.binary_erosion(lung, iterations=2))
    weights = None
    if len(lung_px):
        lower = (rows[lung_px[:, 0], lung_px[:, 1]] / size) ** 2
        weights = lower / lower.sum()
    taken = np.zeros(lung.shape, dtype=bool)
    attempts = 0
    while len(instances) < n_lesions and weights is not None and attempts < 50:
        attempts += 1
        centre = lung_px[rng.choice(len(lung_px), p=weights)]
        radius_px = rng.uniform(8.0, 30.0) / mm_per_px
        blob = np.zeros(lung.shape, dtype=bool)
        for _ in range(rng.integers(2, 5)):
            cy, cx = centre + rng.normal(0.0, radius_px / 2, 2)
            ay, ax = radius_px * rng.uniform(0.5, 1.0, 2)
            blob |= ((rows - cy) / ay) ** 2 + ((cols - cx) / ax) ** 2 < 1.0
        blob &= lung
        labelled, count = ndimage.label(blob)
        if count == 0:
            continue
        blob = labelled == 1 + int(np.argmax(np.bincount(labelled.ravel())[1:]))
        if blob.sum() < 12 or np.any(taken & ndimage.binary_dilation(blob, iterations=3)):
            continue
        taken |= blob
        lesion_type = "ground_glass" if rng.random() < 0.6 else "consolidation"
        strength = 0.35 if lesion_type == "ground_glass" else 0.8
        haze = ndimage.gaussian_filter(blob.astype(np.float32), sigma=2.0 / mm_per_px)
        lesion_density += strength * np.maximum(haze, 0.6 * blob) * 0.85 * lung_depth
        instances.append(LesionInstance(mask=blob, lesion_type=lesion_type))

    # Attenuation (water-equivalent mm) -> log-detector display, with a radiograph's own look.
    mu = 0.02
    density = mu * (tissue - 0.85 * lung_depth - 30.0 * bubble * (tissue > 0) + 0.9 * vessels + lesion_density) + mu * 2.2 * bone
    density = ndimage.gaussian_filter(density, sigma=rng.uniform(0.6, 1.2) * size / 512)
    density += rng.normal(0.0, 0.025, density.shape) * np.sqrt(1.0 + density)
    display = np.clip(density / rng.uniform(3.9, 4.6), 0.0, 1.0) ** rng.uniform(0.8, 1.1)
    display = 0.04 + 0.92 * display + 0.03 * (rows / size)  # anode heel: brighter towards the feet
    border = int(rng.integers(0, size // 24 + 1))
    if border:
        collimated = np.ones(display.shape, dtype=bool)
        collimated[border:-border, border:-border] = False
        display[collimated] = 0.85 + 0.05 * display[collimated]
        for instance in instances:
            instance.mask[collimated] = False
    image = np.clip(display * 255.0, 0, 255).astype(np.uint8)
    instances = [instance for instance in instances if instance.mask.any()]
    return CXRStandin(image=image, instances=instances, patient_id=standin_patient_id(seed))
