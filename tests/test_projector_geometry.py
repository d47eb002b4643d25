"""Cone-beam geometry, views and the torch path against analytic expectations."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy import ndimage

from chexmix_dataset.ct.volume import CTVolume
from chexmix_dataset.errors import ChexmixInputError
from chexmix_dataset.phantoms import chest_phantom
from chexmix_dataset.projector import (
    MU_WATER_60KEV_PER_MM as MU,
)
from chexmix_dataset.projector import (
    ConeGeometry,
    ProjectorOptions,
    cone_line_integral,
    cone_path_mm,
    line_integral_mm,
    project_volume,
)


def _ct(hu: np.ndarray, spacing=(1.0, 1.0, 1.0), labels=None) -> CTVolume:
    return CTVolume(hu, tuple(spacing), np.diag([*spacing, 1.0]), labels, True, "analytic")


def _phantom_ct(shape=(64, 64, 40), seed=3) -> CTVolume:
    p = chest_phantom(seed, shape=shape, lesions=True)
    return CTVolume(p.hu, p.spacing_mm, p.affine, p.labels, True, "phantom")


def _radius_mm(geometry: ConeGeometry) -> tuple[np.ndarray, np.ndarray]:
    """(row, col) mm of each image pixel from the principal point (image layout: flipped both ways)."""
    return -geometry.row_mm()[:, None], -geometry.column_mm()[None, :]


def test_uniform_slab_gives_mu_t_over_cos_theta():
    # Water slab 40 mm thick (y 30..69) across a wide grid of air; 1 mm voxels.
    nx, ny, nz = 300, 100, 240
    hu = np.full((nx, ny, nz), -1000, dtype=np.int16)
    hu[:, 30:70, :] = 0
    geometry = ConeGeometry(sid_mm=500.0, sod_mm=300.0, beam="PA", pixel_mm=2.0, shape=(200, 240))
    integral = cone_line_integral(hu, (1.0, 1.0, 1.0), geometry, MU)
    rows, cols = _radius_mm(geometry)
    cos_theta = 500.0 / np.sqrt(500.0**2 + rows**2 + cols**2)
    expected = MU * 40.0 / cos_theta
    # Only rays that stay inside the grid's x-z extent across the slab: the source sits at
    # y = 49.5 - 300 mm, so the slab's far face is 320 mm from it.
    inside = (np.abs(cols) < (nx / 2 - 2) * 500 / 320) & (np.abs(rows) < (nz / 2 - 2) * 500 / 320)
    assert inside.sum() > 1000
    assert np.max(np.abs(integral[inside] / expected[inside] - 1)) < 1e-5
    assert expected[inside].max() / expected[inside].min() > 1.01  # the obliquity is really tested


def _sphere(shape, centre_index, radius_mm):
    """Water sphere in air with a partial-volume edge (HU float32), and its label."""
    grid = np.indices(shape, dtype=np.float32)
    distance = np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, centre_index)))
    fraction = np.clip(radius_mm + 0.5 - distance, 0.0, 1.0)
    return (-1000.0 + 1000.0 * fraction).astype(np.float32), (distance <= radius_mm).astype(np.uint8)


@pytest.mark.parametrize("beam", ["PA", "AP"])
def test_sphere_is_magnified_by_sid_over_source_distance(beam):
    shape, radius = (96, 120, 96), 15.0
    centre = (47.5, 30.0, 47.5)  # on the central ray; 29.5 mm posterior of the grid's centre
    hu, labels = _sphere(shape, centre, radius)
    options = ProjectorOptions(geometry="cone", beam=beam, sid_mm=1000.0, sod_mm=600.0, detector_pixel_mm=0.5,
                               min_lesion_mm=0.5, min_area_mm2=0.0)
    projection = project_volume(_ct(hu, labels=labels), options)
    geometry = ConeGeometry(1000.0, 600.0, beam, 0.5, projection.image.shape)
    depth = 600.0 - 29.5 if beam == "PA" else 600.0 + 29.5  # source to the sphere's centre
    rows, cols = _radius_mm(geometry)
    rho = np.hypot(rows, cols)
    sin_alpha = np.sin(np.arctan(rho / 1000.0))
    # Chord of the ray at angle alpha to the line from the source to the sphere's centre.
    chord = 2 * np.sqrt(np.maximum(radius**2 - depth**2 * sin_alpha**2, 0.0))
    shadow_mm = 1000.0 * radius / np.sqrt(depth**2 - radius**2)  # the tangent cone on the detector
    within = rho < 0.9 * shadow_mm  # the rim's infinite slope makes any half-voxel blur look large
    assert np.max(np.abs(projection.line_integral - MU * chord)[within]) < 0.02 * MU * 2 * radius
    # Nothing beyond the shadow of the partial-volume edge (r + 0.5) widened by the taps (1 voxel).
    outer = 1000.0 * (radius + 1.5) / np.sqrt(depth**2 - (radius + 1.5) ** 2)
    assert projection.line_integral[rho > outer].max() < 1e-3 * MU * 2 * radius
    # The label holds voxels whose centres lie within the radius: a sphere half a voxel larger.
    label_radius = radius + 0.5
    label_shadow_mm = 1000.0 * label_radius / np.sqrt(depth**2 - label_radius**2)
    (mask,) = [instance.mask for instance in projection.instances]
    measured_mm = np.sqrt(mask.sum() / np.pi) * 0.5
    assert abs(measured_mm - label_shadow_mm) < 0.5  # one detector pixel
    assert abs(measured_mm - label_radius * 1000.0 / 600.0) > 1.0  # not the isocentre's magnification


def test_infinite_sid_converges_to_parallel():
    ct = _phantom_ct()
    sx, sy, sz = ct.spacing_mm
    geometry = ConeGeometry(sid_mm=1e9, sod_mm=1e9 - 150, beam="PA", pixel_mm=4.0, shape=(90, 100))
    cone = cone_line_integral(ct.voxels, ct.spacing_mm, geometry, MU)
    # Parallel rays: the line integral map sampled bilinearly at the detector pixels (zero outside).
    parallel = line_integral_mm(ct.voxels, sy, MU)
    x_index = (geometry.column_mm() + (ct.shape[0] - 1) / 2 * sx) / sx
    z_index = (geometry.row_mm() + (ct.shape[2] - 1) / 2 * sz) / sz
    xx, zz = np.meshgrid(x_index, z_index)
    oracle = ndimage.map_coordinates(parallel, [xx, zz], order=1, mode="grid-constant", cval=0.0)[::-1, ::-1]
    assert np.max(np.abs(cone - oracle)) < 1e-5 * oracle.max()
    # The lesion masks agree with the parallel ones up to their edge pixels: parallel mode counts
    # whole voxels then resamples, cone mode thresholds bilinear path lengths.
    ct = _phantom_ct((128, 128, 64))
    parallel_projection = project_volume(ct, ProjectorOptions(size_px=128))
    cone_projection = project_volume(ct, ProjectorOptions(size_px=128, geometry="cone", sid_mm=1e9, sod_mm=1e9 - 150))
    assert cone_projection.image.shape == parallel_projection.image.shape
    assert len(cone_projection.instances) == len(parallel_projection.instances) > 1
    for c, p in zip(cone_projection.instances, parallel_projection.instances):
        assert (c.mask & p.mask).sum() / (c.mask | p.mask).sum() > 0.8


def test_half_turn_mirrors_the_parallel_projection():
    ct = _phantom_ct()
    front = project_volume(ct, ProjectorOptions(size_px=64))
    back = project_volume(ct, ProjectorOptions(size_px=64, view_deg=180.0))
    np.testing.assert_array_equal(back.image, front.image[:, ::-1])
    # Components are numbered in scan order, which the turn changes: compare as sets.
    def instances(projection, mirror=False):
        return sorted((i.lesion_type, (i.mask[:, ::-1] if mirror else i.mask).tobytes()) for i in projection.instances)

    assert len(front.instances) > 1
    assert instances(back) == instances(front, mirror=True)


def test_half_turn_in_pa_is_the_mirrored_ap_film():
    # Turning the patient 180 degrees before a PA film puts the source in front of them: an AP film, seen from behind.
    ct = _phantom_ct()
    cone = dict(size_px=64, geometry="cone", sid_mm=1000.0)
    turned_pa = project_volume(ct, ProjectorOptions(beam="PA", view_deg=180.0, **cone))
    ap = project_volume(ct, ProjectorOptions(beam="AP", **cone))
    assert np.max(np.abs(turned_pa.line_integral - ap.line_integral[:, ::-1])) < 1e-4 * ap.line_integral.max()
    pa = project_volume(ct, ProjectorOptions(beam="PA", **cone))
    assert np.abs(pa.line_integral - ap.line_integral).max() > 0.05 * ap.line_integral.max()  # the beam matters


def test_lesion_masks_follow_the_image_rays():
    # A lesion made of dense tissue: its mask is exactly where the image's rays cross it.
    shape = (80, 80, 60)
    hu = np.full(shape, -1000, dtype=np.int16)
    labels = np.zeros(shape, dtype=np.uint8)
    labels[10:30, 5:25, 35:50] = 1
    labels[50:70, 55:75, 10:25] = 2
    hu[labels > 0] = 1000
    options = ProjectorOptions(geometry="cone", beam="AP", sid_mm=800.0, size_px=96, min_lesion_mm=1.0,
                               min_area_mm2=0.0)
    projection = project_volume(_ct(hu, labels=labels), options)
    union = np.logical_or.reduce([i.mask for i in projection.instances])
    # mu of 1000 HU is 2 mu_water: path = L / (2 mu_water) along the very same rays.
    np.testing.assert_array_equal(union, projection.line_integral / (2 * MU) >= 1.0 - 1e-3)
    assert sorted(i.lesion_type for i in projection.instances) == ["consolidation", "ground_glass"]


def test_cone_path_of_a_box_matches_the_full_render():
    ct = _phantom_ct()
    geometry = ConeGeometry(1000.0, 850.0, "AP", 8.0, (50, 60))
    box = ndimage.find_objects((ct.lesion_labels > 0).astype(np.uint8))[0]
    inside = ct.lesion_labels[box] > 0
    full = np.zeros(ct.shape, dtype=np.int16)
    full[box] = inside
    # mu_water 1000 /mm and HU = v - 1000: mu = v per mm, the indicator itself.
    whole = cone_line_integral(full, ct.spacing_mm, geometry, 1000.0, 1.0, -1000.0)
    boxed = cone_path_mm(inside, tuple(b.start for b in box), ct.shape, ct.spacing_mm, geometry)
    assert boxed.max() > 2 * ct.spacing_mm[1]
    np.testing.assert_allclose(boxed, whole, atol=1e-4 * whole.max())


def test_torch_cpu_path_matches_numpy():
    ct = _phantom_ct()
    geometry = ConeGeometry(1000.0, 850.0, "PA", 1.1, (48, 56))
    reference = cone_line_integral(ct.voxels, ct.spacing_mm, geometry, MU, 1.0, 0.0)
    via_torch = cone_line_integral(torch.from_numpy(ct.voxels), ct.spacing_mm, geometry, MU, 1.0, 0.0)
    # float32 sums in another order: within a few float32 roundings of the largest value.
    assert np.max(np.abs(via_torch - reference)) <= 8 * np.finfo(np.float32).eps * reference.max()
    exact = line_integral_mm(ct.voxels, ct.spacing_mm[1], MU)
    np.testing.assert_array_equal(line_integral_mm(torch.from_numpy(ct.voxels), ct.spacing_mm[1], MU).numpy(), exact)
    scaled = line_integral_mm(ct.voxels, ct.spacing_mm[1], MU, 0.5, -3.25)
    np.testing.assert_allclose(line_integral_mm(torch.from_numpy(ct.voxels), ct.spacing_mm[1], MU, 0.5, -3.25).numpy(),
                               scaled, rtol=1e-12)
    for geometry_name in ("parallel", "cone"):
        options = ProjectorOptions(size_px=64, geometry=geometry_name)
        numpy_result = project_volume(ct, options)
        torch_result = project_volume(ct, dataclasses.replace(options, device="torch:cpu"))
        assert np.max(np.abs(torch_result.line_integral - numpy_result.line_integral)) <= (
            8 * np.finfo(np.float32).eps * numpy_result.line_integral.max())
        assert len(torch_result.instances) == len(numpy_result.instances)


@pytest.mark.parametrize("options, fragment", [
    (dict(geometry="fan"), "unknown geometry"),
    (dict(geometry="cone", mode="seed"), "seed mode"),
    (dict(geometry="cone", sid_mm=1000.0, sod_mm=1200.0), "between source and detector"),
    (dict(geometry="cone", sid_mm=-5.0), "--sid-mm must be a positive number"),
    (dict(beam="LAT"), "unknown beam"),
    (dict(device="tpu"), "unknown device"),
    (dict(tilt_deg=45.0), "--tilt-deg must be within"),
    (dict(tilt_deg=float("nan")), "--tilt-deg must be within"),
])
def test_bad_geometry_options_are_refused(options, fragment):
    with pytest.raises(ChexmixInputError, match=fragment):
        ProjectorOptions(**options)


def test_source_inside_the_ct_is_refused():
    ct = _ct(np.zeros((8, 400, 8), dtype=np.int16))
    with pytest.raises(ChexmixInputError, match="source must lie outside the CT"):
        project_volume(ct, ProjectorOptions(geometry="cone", sid_mm=300.0, sod_mm=150.0))


def test_a_float_volume_is_left_untouched():
    hu = _phantom_ct().voxels.astype(np.float32)
    slab = np.ascontiguousarray(hu[:, 30:31, :])  # one slab: its (y, x, z) transpose is contiguous, no copy
    before, slab_before = hu.copy(), slab.copy()
    geometry = ConeGeometry(1000.0, 850.0, "PA", 8.0, (40, 40))
    for volume in (slab, hu, torch.from_numpy(slab), torch.from_numpy(hu)):
        cone_line_integral(volume, (5.0, 5.0, 5.0), geometry, MU)
    np.testing.assert_array_equal(hu, before)
    np.testing.assert_array_equal(slab, slab_before)


@pytest.mark.parametrize("geometry", ["parallel", "cone"])
def test_tilt_moves_an_anterior_bead_up_by_its_depth_times_sin(geometry):
    shape = (64, 64, 64)  # 1 mm voxels, centre at index 31.5
    centre = np.array([31.5, 31.5 + 20.0, 31.5])  # 20 mm anterior of the centre, mid-height
    hu, labels = _sphere(shape, centre, 3.0)
    ct = _ct(hu, labels=labels)

    def bead_row(tilt_deg: float) -> tuple[float, float]:
        projection = project_volume(ct, ProjectorOptions(size_px=64, geometry=geometry, tilt_deg=tilt_deg,
                                                         lesion_types={1: "bead"}))
        bright = projection.line_integral
        image_row = ndimage.center_of_mass(bright)[0]
        mask_row = ndimage.center_of_mass(projection.instances[0].mask)[0]
        return image_row, mask_row * projection.pixel_spacing_mm[0]

    (row0, mask0), (row10, mask10) = bead_row(0.0), bead_row(10.0)
    row_mm = project_volume(ct, ProjectorOptions(size_px=64, geometry=geometry)).pixel_spacing_mm[0]
    # Right-handed about +x: z' = y sin(t) + z cos(t), so the bead rises 20 sin(10 deg) = 3.47 mm
    # (rows run from superior to inferior). A PA cone beam (SID 1800 mm, source 1650 mm from the
    # grid's centre) magnifies the bead, 20 mm nearer the detector, by 1800 / 1670.
    rise_mm = 20.0 * np.sin(np.deg2rad(10.0))
    magnification = 1.0 if geometry == "parallel" else 1800.0 / (1650.0 + 20.0)
    assert (row0 - row10) * row_mm == pytest.approx(rise_mm * magnification, abs=0.3)
    assert (mask0 - mask10) == pytest.approx((row0 - row10) * row_mm, abs=1.0)  # the mask follows the image
