"""The chest's bones in HU: spine, ribs with costal cartilage, sternum and clavicles."""

from __future__ import annotations

import numpy as np

from chexmix_dataset.phantoms.body import HU_CANCELLOUS, HU_CARTILAGE, HU_CORTICAL, HU_CSF, Body, cavity_taper
from chexmix_dataset.phantoms.grid import VoxelGrid, fraction_inside, paint_tube


def paint_bones(hu: np.ndarray, body: Body, grid: VoxelGrid, cavity_rho: np.ndarray, taper: np.ndarray) -> None:
    """Spine, ribs with costal cartilage, sternum and clavicles, painted over soft tissue in ``hu``.

    ``cavity_rho`` is the (nx, ny, nz) normalised radius of the thoracic cavity (1 on the inner
    rib surface) and ``taper`` its (1, 1, nz) scale with height, as the anatomy computed them.
    """
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
    top_front = body.cavity_y + body.cavity_b * float(cavity_taper(body, np.float32(272.0)))
    for side in (1.0, -1.0):
        points = [
            (side * 16.0, top_front + 8.0, 270.0),
            (side * 60.0, top_front + 6.0, 276.0),
            (side * 100.0, top_front - 12.0, 282.0),
            (side * min(135.0, body.body_a - 12.0), body.cavity_y - 5.0, 292.0),
        ]
        for p0, p1 in zip(points[:-1], points[1:]):
            paint_tube(clavicle, grid, p0, p1, 7.0)
    near = clavicle < 0.5 * grid.blur_mm
    hu[near] += fraction_inside(clavicle[near], grid.blur_mm) * (HU_CORTICAL - hu[near])
