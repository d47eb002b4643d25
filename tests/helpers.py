"""Small hand-made CheXMix datasets for tests that must not depend on the builder."""

from __future__ import annotations

import datasets
import numpy as np

from chexmix_dataset.dataset.features import FEATURES
from chexmix_dataset.dataset.lesions import LesionInstance
from chexmix_dataset.dataset.rows import make_row


def disc(shape: tuple[int, int], centre_yx: tuple[float, float], radius: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre_yx[0]) ** 2 + (xx - centre_yx[1]) ** 2 <= radius**2


def disc_image_row(index: int, size: int = 64, n_lesions: int = 2, source: str = "cxr") -> dict:
    """A grey image with ``n_lesions`` bright discs, each one lesion instance."""
    rng = np.random.default_rng(index)
    image = np.full((size, size), 60, dtype=np.uint8)
    instances = []
    for k in range(n_lesions):
        centre = (rng.uniform(0.25, 0.75) * size, (0.25 + 0.5 * k / max(n_lesions, 1)) * size + 4)
        mask = disc((size, size), centre, radius=size / 10)
        image[mask] = 200
        instances.append(LesionInstance(mask=mask, lesion_type="ground_glass" if k % 2 == 0 else "consolidation"))
    return make_row(
        image,
        instances,
        image_id=f"{source}-{index:04d}",
        source=source,
        origin="test/discs",
        patient_id=f"patient-{index // 2:03d}",
        license="CC0-1.0",
    )


def tiny_dataset_dict(n_train: int = 6, n_test: int = 4, size: int = 64) -> datasets.DatasetDict:
    """A DatasetDict with CheXMix features; test rows are ``cxr``, train rows alternate sources."""
    train = [disc_image_row(i, size, n_lesions=1 + i % 2, source="cxr" if i % 2 else "ct_projection")
             for i in range(n_train)]
    test = [disc_image_row(100 + i, size, n_lesions=1 + i % 3) for i in range(n_test)]
    return datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_list(train, features=FEATURES),
            "test": datasets.Dataset.from_list(test, features=FEATURES),
        }
    )
