"""The chest's soft tissue, airways, vessels and lungs in HU, over a :class:`VoxelGrid`.

Bones are painted last (:mod:`chexmix_dataset.phantoms.bones`), over the soft tissue, as they
are denser than everything they overlap.
"""

from __future__ import annotations

import numpy as np

from chexmix_dataset.phantoms.body import HU_AIR, HU_FAT, HU_LIVER, HU_LUNG, HU_SOFT, Body, cavity_taper
from chexmix_dataset.phantoms.bones import paint_bones
from chexmix_dataset.phantoms.grid import VoxelGrid, fraction_inside, paint_tube


def _dome_z(body: Body, grid: VoxelGrid) -> np.ndarray:
    """(nx, ny, 1) height (mm) of the diaphragm surface; the right dome is the higher one."""
    x, y = grid.x, grid.y
    yc = body.cavity_y + 0.1 * body.cavity_b
    fall_y = 0.006 * (y - yc) ** 2 + 0.006 * np.minimum(y - yc, 0.0) ** 2  # deep posterior recess
    right = body.dome_right - 0.011 * (x - 55.0) ** 2 - fall_y
    left = body.dome_left - 0.011 * (x + 55.0) ** 2 - fall_y
    weight_right = 1.0 / (1.0 + np.exp(-x / 10.0))
    return weight_right * right + (1.0 - weight_right) * left


def _ellipsoid_q(grid: VoxelGrid, centre, semi_axes) -> np.ndarray:
    """Normalised squared ellipsoid radius (< 1 inside) over the whole grid."""
    return (
        ((grid.x - centre[0]) / semi_axes[0]) ** 2
        + ((grid.y - centre[1]) / semi_axes[1]) ** 2
        + ((grid.z - centre[2]) / semi_axes[2]) ** 2
    )


def _vessel_tree(rng: np.random.Generator, hilum: np.ndarray, side: float, inside
                 ) -> list[tuple[np.ndarray, np.ndarray, float]]:
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


def anatomy_hu(body: Body, grid: VoxelGrid, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """HU volume (float32, no lesions, no noise) and the lung mask, both (nx, ny, nz) in RAS+ order."""
    x, y, z = grid.x, grid.y, grid.z
    shape = grid.shape
    hu = np.full(shape, HU_AIR, dtype=np.float32)

    skin_q = (x / body.body_a) ** 2 + ((y - body.body_y) / body.body_b) ** 2  # (nx, ny, 1)
    muscle_q = (x / (body.body_a - body.fat_mm)) ** 2 + ((y - body.body_y) / (body.body_b - body.fat_mm)) ** 2
    hu[np.broadcast_to(skin_q < 1.0, shape)] = HU_FAT
    hu[np.broadcast_to(muscle_q < 1.0, shape)] = HU_SOFT

    taper = cavity_taper(body, z)  # (1, 1, nz)
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
        paint_tube(great_vessels, grid, p0, p1, 13.0)
    paint_tube(great_vessels, grid, (26.0, trachea_y + 22.0, 250.0), (22.0, trachea_y + 20.0, heart_centre[2] + 40.0), 10.0)

    airway = np.full(shape, np.inf, dtype=np.float32)
    carina = np.array((0.0, trachea_y, 214.0))
    paint_tube(airway, grid, (0.0, trachea_y, 340.0), carina, 9.0)
    right_hilum = np.array((42.0, trachea_y - 6.0, 188.0))
    left_hilum = np.array((-46.0, trachea_y - 8.0, 194.0))
    paint_tube(airway, grid, carina, right_hilum, 6.5)
    paint_tube(airway, grid, carina, left_hilum, 6.0)
    for hilum, side in ((right_hilum, 1.0), (left_hilum, -1.0)):
        for direction in ((0.4, 0.0, 1.0), (0.8, 0.2, -0.3), (0.4, -0.3, -1.0)):
            d = np.array([side * direction[0], direction[1], direction[2]])
            paint_tube(airway, grid, hilum, hilum + 28.0 * d / np.linalg.norm(d), 3.5)

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
            paint_tube(vessel_field, grid, p0, p1, radius)
    vessel_fraction = fraction_inside(vessel_field[lung], grid.blur_mm)
    hu[lung] = HU_LUNG + vessel_fraction * (HU_SOFT - HU_LUNG)

    hu[great_vessels < 0.0] = HU_SOFT
    airway_wall = (airway < 2.0) & ~lung
    hu[airway_wall] = HU_SOFT
    hu[airway < 0.0] = HU_AIR

    paint_bones(hu, body, grid, cavity_rho, taper)
    return hu, lung
