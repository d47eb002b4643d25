"""From line integrals to 8-bit display grey."""

from __future__ import annotations

import numpy as np


def window_uint8(attenuation: np.ndarray, window_percentiles: tuple[float, float]) -> np.ndarray:
    """``-ln T`` windowed linearly between two of its percentiles to uint8 (dense = bright)."""
    lo_pct, hi_pct = np.percentile(attenuation, window_percentiles)
    span = hi_pct - lo_pct if hi_pct > lo_pct else 1.0
    return np.rint(np.clip((attenuation - lo_pct) / span, 0.0, 1.0) * 255.0).astype(np.uint8)
