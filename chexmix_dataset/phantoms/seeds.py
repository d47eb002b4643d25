"""The one random source of every phantom: ``numpy.random.default_rng(seed)``."""

from __future__ import annotations

import numpy as np

from chexmix_dataset.errors import ChexmixInputError


def seeded_rng(seed: int) -> np.random.Generator:
    """The generator every phantom draws from, so identical seeds give identical phantoms.

    A negative seed is refused as bad input (numpy would raise a bare ValueError).
    """
    if seed < 0:
        raise ChexmixInputError(f"seed must be a non-negative integer, got {seed}")
    return np.random.default_rng(seed)
