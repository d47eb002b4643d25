"""COVID-19-like lesions in the phantom CT: irregular blobs placed in the lungs, labelled by type.

Label values are :data:`LESION_TYPES` keys; each type has its own HU range (:data:`LESION_HU`).
Lesions never touch, so each is one 26-connected component of the label volume.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from chexmix_dataset.phantoms.body import Body
from chexmix_dataset.phantoms.grid import VoxelGrid

LESION_TYPES = {1: "ground_glass", 2: "consolidation"}
LESION_HU = {1: (-500.0, -300.0), 2: (-100.0, 50.0)}
LESION_GAP_VOXELS = 2
MAX_LESIONS = 6


def _lesion_blob(rng: np.random.Generator, grid: VoxelGrid, centre: np.ndarray, diameter_mm: float
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


def place_lesions(rng: np.random.Generator, grid: VoxelGrid, body: Body, hu: np.ndarray, lung: np.ndarray,
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
