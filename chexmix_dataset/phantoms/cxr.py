"""2D stand-ins for real annotated chest X-rays: :class:`CXRStandin` and :func:`cxr_standin`.

They are drawn directly in 2D, in radiological display (the patient's right on the image's
left, superior at the top, dense structures bright), from ``numpy.random.default_rng(seed)``.
Their look deliberately differs from CT projections, as real radiographs do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from chexmix_dataset.dataset.lesions import LesionInstance
from chexmix_dataset.errors import ChexmixInputError
from chexmix_dataset.phantoms.seeds import seeded_rng


def standin_patient_id(seed: int) -> str:
    """The patient id of :func:`cxr_standin` ``(seed)``, without drawing the image."""
    return f"standin-{seed:04d}"


@dataclass
class CXRStandin:
    """A synthetic frontal chest radiograph standing in for a real annotated CXR.

    Attributes:
        image: (height, width) uint8, radiological display (patient's right on the image's
            left, superior at the top, dense = bright).
        instances: the lesions, each with its own (height, width) bool mask; they never overlap.
        patient_id: e.g. "standin-0007".
    """

    image: np.ndarray
    instances: list[LesionInstance]
    patient_id: str


def _curve_distance(u: np.ndarray, v: np.ndarray, u_knots: np.ndarray, v_knots: np.ndarray) -> np.ndarray:
    """Approximate distance (mm) from pixels to the curve v(u) through the knots, inf outside its u range."""
    v_curve = np.interp(u, u_knots, v_knots)
    slope = np.gradient(v_knots, u_knots)
    cos = 1.0 / np.sqrt(1.0 + np.interp(u, u_knots, slope) ** 2)
    inside = (u >= u_knots.min()) & (u <= u_knots.max())
    return np.where(inside, np.abs(v - v_curve) * cos, np.inf)


def _bone_band(distance_mm: np.ndarray, half_width_mm: float) -> np.ndarray:
    """Projected density of a tubular bone: brighter at its cortical edges."""
    t = np.clip(distance_mm / half_width_mm, 0.0, 1.0)
    return np.where(distance_mm < half_width_mm, 0.65 + 0.35 * t**2, 0.0)


def cxr_standin(seed: int, size: int = 512) -> CXRStandin:
    """A synthetic PA chest radiograph with 0-4 lesion masks, drawn directly in 2D.

    Its look deliberately differs from CT projections (gamma, detector noise, blur, collimation
    border, patient size and position). The image is ``size`` x ``size`` px over roughly a
    430 mm detector.
    """
    if size < 64:
        raise ChexmixInputError(f"stand-in size must be at least 64 px, got {size}")
    rng = seeded_rng(seed)
    mm_per_px = 430.0 / size
    scale = rng.uniform(0.85, 1.05)
    shift = rng.uniform(-15.0, 15.0, 2)
    angle = np.deg2rad(rng.uniform(-3.0, 3.0))
    rows, cols = np.mgrid[:size, :size].astype(np.float32)
    px_u = (cols - size / 2) * mm_per_px - shift[0]
    px_v = (rows - size / 2) * mm_per_px - shift[1] + 15.0
    # Patient frame (mm): u to the image right (patient's left), v downwards.
    u = (np.cos(angle) * px_u + np.sin(angle) * px_v) / scale
    v = (-np.sin(angle) * px_u + np.cos(angle) * px_v) / scale

    half_width = np.interp(v, [-260, -190, -150, -120, 0, 200], [55, 60, 175, 178, 165, 158])
    tissue = 190.0 * np.sqrt(np.clip(1.0 - (u / half_width) ** 2, 0.0, 1.0))  # soft tissue path, mm

    # Lung fields: apex caps, lateral rib margins, diaphragm domes (right dome higher).
    dome_right = rng.uniform(75.0, 100.0)
    dome_left = dome_right + rng.uniform(10.0, 22.0)
    dome = np.where(u < 0, dome_right - 0.009 * (u + 70.0) ** 2, dome_left - 0.009 * (u - 70.0) ** 2)
    apex = -150.0 + 0.012 * (np.abs(u) - 70.0) ** 2
    lateral = np.interp(v, [-200, -100, 0, 200], [95, 140, 148, 150])
    field = (v > apex) & (v < dome) & (np.abs(u) < lateral) & (np.abs(u) > 24.0)
    heart = (((u - 28.0) * np.cos(0.5) + (v - 55.0) * np.sin(0.5)) / 82.0) ** 2 \
        + ((-(u - 28.0) * np.sin(0.5) + (v - 55.0) * np.cos(0.5)) / 62.0) ** 2 < 1.0
    aortic_knob = (u - 32.0) ** 2 + (v + 65.0) ** 2 < 17.0**2
    mediastinum = (np.abs(u - 3.0) < np.interp(v, [-160, -40, 40], [22, 30, 34])) | aortic_knob
    lung = field & ~heart & ~mediastinum
    lung_depth = 175.0 * ndimage.gaussian_filter(lung.astype(np.float32), sigma=14.0 / mm_per_px)

    # Branching lung vessels from the hila, as faint tubes.
    vessels = np.zeros_like(u)
    for hilum_u, direction_side in ((-48.0, -1.0), (52.0, 1.0)):
        stack = [(np.array([hilum_u, -10.0]), np.array([direction_side * np.cos(a), np.sin(a)]), 40.0, 4.0, 0)
                 for a in (-1.2, -0.4, 0.3, 1.0)]
        while stack:
            start, direction, length, radius, depth = stack.pop()
            end = start + direction * length
            seg = end - start
            t = np.clip(((u - start[0]) * seg[0] + (v - start[1]) * seg[1]) / (seg @ seg), 0.0, 1.0)
            distance = np.hypot(u - start[0] - t * seg[0], v - start[1] - t * seg[1])
            vessels = np.maximum(vessels, np.clip(1.0 - distance / radius, 0.0, 1.0) * radius * 2.0)
            if depth < 4:
                for turn in (-1.0, 1.0):
                    a = turn * rng.uniform(0.25, 0.6)
                    rotated = np.array([np.cos(a) * direction[0] - np.sin(a) * direction[1],
                                        np.sin(a) * direction[0] + np.cos(a) * direction[1]])
                    stack.append((end, rotated, length * 0.75, radius * 0.7, depth + 1))

    # Bones: posterior ribs (distinct), anterior ribs (faint), clavicles, spine, humeral heads.
    bone = np.zeros_like(u)
    for k in range(10):
        v0 = -150.0 + 23.0 * k
        width = float(np.interp(v0, [-150, -60, 100], [95, 138, 150]))
        x = np.linspace(0.0, 1.0, 24)
        posterior_v = v0 - 14.0 * np.sin(np.pi * 0.7 * x) + 22.0 * x**3
        anterior_v = posterior_v[-1] + 48.0 * (1.0 - x) ** 0.9
        for s in (-1.0, 1.0):
            knots_u = s * (16.0 + (width - 16.0) * x)
            order = np.argsort(knots_u)
            bone += _bone_band(_curve_distance(u, v, knots_u[order], posterior_v[order]), 5.5) * 9.0
            anterior_u = s * (35.0 + (width - 35.0) * x)
            keep = x > 0.15
            order = np.argsort(anterior_u[keep])
            bone += _bone_band(_curve_distance(u, v, anterior_u[keep][order], anterior_v[keep][order]), 5.0) * 4.5
    for s in (-1.0, 1.0):
        x = np.linspace(0.0, 1.0, 24)
        knots_u = s * (20.0 + 135.0 * x)
        knots_v = -135.0 - 28.0 * x + 6.0 * np.sin(2 * np.pi * x)
        order = np.argsort(knots_u)
        bone += _bone_band(_curve_distance(u, v, knots_u[order], knots_v[order]), 7.5) * 14.0
    vertebra = np.mod(v + 200.0, 24.0) > 5.0
    spine = np.where(np.abs(u) < 21.0, 7.0 * (0.4 + 0.6 * vertebra) * np.sqrt(np.clip(1 - (u / 21.0) ** 2, 0, 1)), 0.0)
    spine += 4.0 * (np.abs(np.abs(u) - 13.0) < 3.5) * vertebra * (np.mod(v + 200.0, 24.0) < 15.0)
    bone += ndimage.gaussian_filter(spine, sigma=1.5 / mm_per_px)

    # Gastric bubble under the left dome.
    bubble = ((u - 75.0) / 32.0) ** 2 + ((v - dome_left - 26.0) / 15.0) ** 2 < 1.0

    # Lesions: hazy patches inside the lung fields, each its own non-overlapping mask.
    instances: list[LesionInstance] = []
    lesion_density = np.zeros_like(u)
    n_lesions = 0 if rng.random() < 0.2 else int(rng.integers(1, 5))
    lung_px = np.argwhere(ndimage.binary_erosion(lung, iterations=2))
    weights = None
    if len(lung_px):
        lower = (rows[lung_px[:, 0], lung_px[:, 1]] / size) ** 2
        weights = lower / lower.sum()
    taken = np.zeros(lung.shape, dtype=bool)
    attempts = 0
    while len(instances) < n_lesions and weights is not None and attempts < 50:
        attempts += 1
        centre = lung_px[rng.choice(len(lung_px), p=weights)]
        radius_px = rng.uniform(8.0, 30.0) / mm_per_px
        blob = np.zeros(lung.shape, dtype=bool)
        for _ in range(rng.integers(2, 5)):
            cy, cx = centre + rng.normal(0.0, radius_px / 2, 2)
            ay, ax = radius_px * rng.uniform(0.5, 1.0, 2)
            blob |= ((rows - cy) / ay) ** 2 + ((cols - cx) / ax) ** 2 < 1.0
        blob &= lung
        labelled, count = ndimage.label(blob)
        if count == 0:
            continue
        blob = labelled == 1 + int(np.argmax(np.bincount(labelled.ravel())[1:]))
        if blob.sum() < 12 or np.any(taken & ndimage.binary_dilation(blob, iterations=3)):
            continue
        taken |= blob
        lesion_type = "ground_glass" if rng.random() < 0.6 else "consolidation"
        strength = 0.35 if lesion_type == "ground_glass" else 0.8
        haze = ndimage.gaussian_filter(blob.astype(np.float32), sigma=2.0 / mm_per_px)
        lesion_density += strength * np.maximum(haze, 0.6 * blob) * 0.85 * lung_depth
        instances.append(LesionInstance(mask=blob, lesion_type=lesion_type))

    # Attenuation (water-equivalent mm) -> log-detector display, with a radiograph's own look.
    mu = 0.02
    density = mu * (tissue - 0.85 * lung_depth - 30.0 * bubble * (tissue > 0) + 0.9 * vessels + lesion_density) + mu * 2.2 * bone
    density = ndimage.gaussian_filter(density, sigma=rng.uniform(0.6, 1.2) * size / 512)
    density += rng.normal(0.0, 0.025, density.shape) * np.sqrt(1.0 + density)
    display = np.clip(density / rng.uniform(3.9, 4.6), 0.0, 1.0) ** rng.uniform(0.8, 1.1)
    display = 0.04 + 0.92 * display + 0.03 * (rows / size)  # anode heel: brighter towards the feet
    border = int(rng.integers(0, size // 24 + 1))
    if border:
        collimated = np.ones(display.shape, dtype=bool)
        collimated[border:-border, border:-border] = False
        display[collimated] = 0.85 + 0.05 * display[collimated]
        for instance in instances:
            instance.mask[collimated] = False
    image = np.clip(display * 255.0, 0, 255).astype(np.uint8)
    instances = [instance for instance in instances if instance.mask.any()]
    return CXRStandin(image=image, instances=instances, patient_id=standin_patient_id(seed))
