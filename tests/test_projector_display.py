"""The optional radiograph-like display: quantum noise statistics, determinism, defaults untouched."""

from __future__ import annotations

import numpy as np
import pytest

from chexmix_dataset.errors import ChexmixInputError
from chexmix_dataset.phantoms import chest_phantom
from chexmix_dataset.projector import ProjectorOptions, project_volume
from chexmix_dataset.projector.display import quantum_noise


@pytest.mark.parametrize("line_integral, photons", [(1.0, 2000.0), (3.0, 40000.0)])
def test_quantum_noise_has_poisson_statistics(line_integral, photons):
    field = np.full((400, 400), line_integral)
    noisy = quantum_noise(field, photons, np.random.default_rng(0))
    detected = photons * np.exp(-line_integral)
    # -ln(N / N0) around L: standard deviation 1 / sqrt(N) for N detected photons (delta method).
    assert noisy.mean() == pytest.approx(line_integral, abs=5 / np.sqrt(detected * field.size) + 1 / detected)
    assert noisy.std() == pytest.approx(1 / np.sqrt(detected), rel=0.03)


def test_radiograph_display_is_optional_deterministic_and_keeps_the_line_integral():
    ct = chest_phantom(1, shape=(64, 64, 40)).as_ct_volume("phantom")
    linear = project_volume(ct, ProjectorOptions(size_px=96))
    film = project_volume(ct, ProjectorOptions(size_px=96, display="radiograph"))
    again = project_volume(ct, ProjectorOptions(size_px=96, display="radiograph"))
    np.testing.assert_array_equal(film.image, again.image)
    np.testing.assert_array_equal(film.line_integral, linear.line_integral)
    assert film.image.shape == linear.image.shape and not np.array_equal(film.image, linear.image)
    # Dense is still bright: the display keeps the order of the smoothed attenuation.
    order = np.corrcoef(film.image.ravel().astype(float), linear.image.ravel().astype(float))[0, 1]
    assert order > 0.8
    with pytest.raises(ChexmixInputError, match="seed mode keeps the published display"):
        ProjectorOptions(mode="seed", display="radiograph")
