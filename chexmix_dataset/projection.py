"""Compatibility shim: the projector lives in :mod:`chexmix_dataset.projector` (read its docstring).

Every name that was importable from here still is.
"""

from __future__ import annotations

from chexmix_dataset.projector import *  # noqa: F401,F403
from chexmix_dataset.projector import (  # noqa: F401  (private names some tests and scripts use)
    _seed_column_sums,
    _seed_display,
)
from chexmix_dataset.projector.lesions import project_lesions as _project_lesions  # noqa: F401
from chexmix_dataset.projector.parallel import _CHUNK_VOXELS, _chunks, _integer_floor, _reduce_ap  # noqa: F401
from chexmix_dataset.projector.seed import _calibrated, _uint8_scaling  # noqa: F401
