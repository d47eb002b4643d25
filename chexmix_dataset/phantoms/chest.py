"""The synthetic chest CT: :class:`ChestPhantom` and :func:`chest_phantom`.

Every random draw comes from one ``numpy.random.default_rng(seed)`` in a fixed order (body,
anatomy, lesion count, lesions, noise), so the same seed and shape give identical arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from chexmix_dataset.ct.volume import CTVolume
from chexmix_dataset.errors import ChexmixInputError
from chexmix_dataset.phantoms.anatomy import anatomy_hu
from chexmix_dataset.phantoms.body import random_body
from chexmix_dataset.phantoms.grid import DEFAULT_SHAPE, VoxelGrid, check_shape
from chexmix_dataset.phantoms.lesions import LESION_HU, LESION_TYPES, MAX_LESIONS, place_lesions
from chexmix_dataset.phantoms.seeds import seeded_rng


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


def chest_phantom(seed: int, shape: tuple[int, int, int] = DEFAULT_SHAPE, lesions: bool | None = None) -> ChestPhantom:
    """A deterministic synthetic chest CT (HU, RAS+) with COVID-19-like lesion labels.

    Args:
        seed: seeds ``numpy.random.default_rng``; the same seed gives identical arrays.
        shape: voxels along (x Right, y Anterior, z Superior). The field of view is fixed at
            :data:`FIELD_OF_VIEW_MM`, so spacing (mm) = field of view / shape.
        lesions: None draws 0-6 lesions (about one seed in six has none); False gives none;
            True gives at least one.
    """
    shape = check_shape(shape)
    rng = seeded_rng(seed)
    grid = VoxelGrid(shape)
    body = random_body(rng)
    hu, lung = anatomy_hu(body, grid, rng)
    if lesions is False:
        count = 0
    elif lesions is True or rng.random() >= 1 / 6:
        count = int(rng.integers(1, MAX_LESIONS + 1))
    else:
        count = 0
    labels, placed = place_lesions(rng, grid, body, hu, lung, count, at_least_one=lesions is True)
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
