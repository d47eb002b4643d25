"""From line integrals to 8-bit display grey: a linear window (default) or a radiograph-like look."""

from __future__ import annotations

import zlib

import numpy as np


def window_uint8(attenuation: np.ndarray, window_percentiles: tuple[float, float]) -> np.ndarray:
    """``-ln T`` windowed linearly between two of its percentiles to uint8 (dense = bright)."""
    lo_pct, hi_pct = np.percentile(attenuation, window_percentiles)
    span = hi_pct - lo_pct if hi_pct > lo_pct else 1.0
    return np.rint(np.clip((attenuation - lo_pct) / span, 0.0, 1.0) * 255.0).astype(np.uint8)


# --- optional radiograph-like display (``ProjectorOptions.display = "radiograph"``) ----------
#: Photons per mm^2 reaching the detector where nothing attenuates. A chest film's detector dose
#: of a few uGy is about 10^5 photons per mm^2 at 60 keV; the lower default stands in for the
#: detector's quantum efficiency and makes the mottle of clinical films visible.
RADIOGRAPH_PHOTONS_PER_MM2 = 2.0e4
#: Tissue equalisation: the large-scale (Gaussian, this sigma in mm) part of ``-ln T`` is
#: compressed by this fraction, as clinical multi-frequency processing evens out mediastinum
#: and lungs.
EQUALISATION_SIGMA_MM = 20.0
EQUALISATION_STRENGTH = 0.5
#: Unsharp mask: detail below this sigma (mm) is boosted by this gain (edge enhancement).
UNSHARP_SIGMA_MM = 2.0
UNSHARP_GAIN = 0.6
#: Detector response: a sigmoid (film-like characteristic curve) over the display window with
#: this slope; the linear window's ends map to about 4% and 96% grey.
RESPONSE_SLOPE = 6.5


def quantum_noise(attenuation: np.ndarray, photons_unattenuated: float, rng: np.random.Generator) -> np.ndarray:
    """``-ln(N / N0)`` with Poisson counts ``N ~ Poisson(N0 exp(-L))``; ``N0`` photons per pixel.

    A pixel that counts no photon reads as half a photon (finite, the darkest grey).
    """
    counts = np.maximum(rng.poisson(photons_unattenuated * np.exp(-attenuation)), 0.5)
    return -np.log(counts / photons_unattenuated)


def radiograph_uint8(attenuation: np.ndarray, pixel_mm: float, window_percentiles: tuple[float, float]) -> np.ndarray:
    """A display closer to a processed clinical chest radiograph, from ``-ln T`` (uint8).

    1. Quantum noise: Poisson counts ``N ~ Poisson(N0 exp(-L))`` with ``N0`` =
       :data:`RADIOGRAPH_PHOTONS_PER_MM2` per mm^2 times the pixel area, back to ``-ln(N / N0)``.
       The generator is seeded from the image itself: the same CT gives the same film.
    2. Tissue equalisation and unsharp masking on the log image (parameters above).
    3. A sigmoid detector response over the same percentile window as the linear display.
    """
    from scipy import ndimage

    attenuation = np.asarray(attenuation, dtype=np.float64)
    rng = np.random.default_rng(zlib.crc32(np.ascontiguousarray(attenuation, dtype=np.float32).tobytes()))
    noisy = quantum_noise(attenuation, RADIOGRAPH_PHOTONS_PER_MM2 * pixel_mm**2, rng)
    background = ndimage.gaussian_filter(noisy, EQUALISATION_SIGMA_MM / pixel_mm, mode="nearest")
    fine = ndimage.gaussian_filter(noisy, UNSHARP_SIGMA_MM / pixel_mm, mode="nearest")
    processed = noisy - EQUALISATION_STRENGTH * (background - background.mean()) + UNSHARP_GAIN * (noisy - fine)
    lo, hi = np.percentile(processed, window_percentiles)
    centre, span = (lo + hi) / 2.0, (hi - lo if hi > lo else 1.0)
    grey = 1.0 / (1.0 + np.exp(-RESPONSE_SLOPE * (processed - centre) / span))
    return np.rint(grey * 255.0).astype(np.uint8)
