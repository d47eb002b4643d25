"""Seeded patient geometry (mm, body frame of :class:`VoxelGrid`) and the tissue values (HU).

Anatomy, bones and lesion placement all read the same :class:`Body`, so they agree on where
the cavity, the spine and the lung apices are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HU_AIR, HU_FAT, HU_SOFT, HU_LIVER, HU_LUNG = -1000.0, -100.0, 40.0, 55.0, -850.0
HU_CORTICAL, HU_CANCELLOUS, HU_CARTILAGE, HU_CSF = 700.0, 300.0, 150.0, 10.0


@dataclass
class Body:
    """Seeded patient geometry (mm, body frame of :class:`VoxelGrid`)."""

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


def random_body(rng: np.random.Generator) -> Body:
    """Draw a patient's build; the order of the draws is part of every seed's phantom."""
    dome_right = rng.uniform(90.0, 110.0)
    return Body(
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


def cavity_taper(body: Body, z: np.ndarray) -> np.ndarray:
    """Scale of the thoracic cavity cross-section with height (mm): the thorax narrows at the apex."""
    rise = np.clip((z - 170.0) / (body.apex_z - 170.0), 0.0, 1.3)
    return 1.0 - 0.33 * rise**2
