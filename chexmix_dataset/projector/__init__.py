"""CT to frontal X-ray projection with projected lesion instances.

Modules, each readable on its own:

- :mod:`.options`: :class:`ProjectorOptions` (what is asked) and :class:`Projection` (what comes out).
- :mod:`.geometry`: source, detector and pose, in mm (parallel or cone beam; PA or AP).
- :mod:`.parallel`: the parallel-beam renderer (exact sums along anterior-posterior).
- :mod:`.chunks`: cache-sized chunks summed along anterior-posterior.
- :mod:`.cone`: the cone-beam renderer (shear-warp: per-slab scaling, one pass).
- :mod:`.seed`: the published algorithm, kept apart.
- :mod:`.lesions`: lesion instances along the same rays as the image.
- :mod:`.components`: 3D connected components (scipy.ndimage.label's, in numpy).
- :mod:`.display`: line integrals to 8-bit grey.
- :mod:`.backend`: the numpy/torch switch (CPU or CUDA, same functions).

Two modes:

``physics`` (default)
    Hounsfield units become linear attenuation ``mu = mu_water * (1 + HU / 1000)`` clipped at 0
    (1/mm). The line integral ``L = sum mu * dl`` (dl in mm along each ray) gives the
    Beer-Lambert transmission ``T = exp(-L)``. The image shows ``-ln T = L``, as a
    log-amplified detector does (dense = bright), windowed linearly between the 0.5th and
    99.8th percentiles of ``L`` and quantised to uint8. Parallel geometry resamples (bilinear)
    to square pixels whose longer side is ``size_px``; cone geometry renders on the detector's
    pixels directly. The default ``mu_water`` of 0.0206 /mm is water's attenuation at about
    60 keV, the effective energy of a 110-120 kVp chest radiograph.

``seed``
    The published algorithm of Ramesh, Rister & Rubin (arXiv:2105.08147), exactly; parallel
    geometry only (see :mod:`.seed`).
"""

from __future__ import annotations

from chexmix_dataset.ct.views import rotate_about_si, tilt_about_lr
from chexmix_dataset.ct.volume import CTVolume
from chexmix_dataset.projector.backend import to_device, to_numpy
from chexmix_dataset.projector.cone import cone_line_integral, cone_path_mm
from chexmix_dataset.projector.display import radiograph_uint8, window_uint8
from chexmix_dataset.projector.geometry import ConeGeometry, cone_geometry
from chexmix_dataset.projector.lesions import (
    lesion_box,
    lesion_components,
    lesion_path_maps,
    project_lesions,
    project_lesions_cone,
)
from chexmix_dataset.projector.options import (
    BEAMS,
    DEFAULT_SID_MM,
    DISPLAYS,
    GEOMETRIES,
    MAX_SIZE_PX,
    MU_WATER_60KEV_PER_MM,
    Projection,
    ProjectorOptions,
)
from chexmix_dataset.projector.parallel import line_integral_mm, resample, square_pixel_shape, to_radiograph_layout
from chexmix_dataset.projector.seed import (
    SEED_MIN_ROWS,
    _seed_column_sums,
    _seed_display,
    check_seed_geometry,
    seed_projection,
    seed_slices,
    volume_to_uint8,
)

__all__ = [
    "BEAMS", "DEFAULT_SID_MM", "DISPLAYS", "GEOMETRIES", "MAX_SIZE_PX", "MU_WATER_60KEV_PER_MM", "SEED_MIN_ROWS",
    "ConeGeometry", "Projection", "ProjectorOptions", "check_seed_geometry", "cone_geometry",
    "cone_line_integral", "cone_path_mm", "lesion_box", "lesion_components", "lesion_path_maps", "line_integral_mm",
    "project_volume", "radiograph_uint8", "resample", "seed_projection", "seed_slices", "square_pixel_shape",
    "to_radiograph_layout", "volume_to_uint8", "window_uint8",
]


def _hu_calibration(ct: CTVolume, options: ProjectorOptions) -> tuple[float, float]:
    """(scale, offset) with ``HU = voxels * scale + offset``."""
    scale, offset = ct.value_slope, ct.value_intercept
    if not ct.is_hounsfield:
        # 8-bit grey carries no calibration: grey 0..255 is taken as the documented HU range.
        lo, hi = options.slice_hu_range
        scale, offset = scale * (hi - lo) / 255.0, offset * (hi - lo) / 255.0 + lo
    return scale, offset


def _display(attenuation, pixel_mm: float, options: ProjectorOptions):
    if options.display == "radiograph":
        return radiograph_uint8(attenuation, pixel_mm, options.window_percentiles)
    return window_uint8(attenuation, options.window_percentiles)


def _parallel_physics(ct: CTVolume, options: ProjectorOptions) -> Projection:
    scale, offset = _hu_calibration(ct, options)
    voxels = to_device(ct.voxels, options.device)
    integral = to_numpy(line_integral_mm(voxels, ct.spacing_mm[1], options.mu_water_per_mm, scale, offset))
    native = to_radiograph_layout(integral)  # (nz, nx)
    shape, pixel_mm = square_pixel_shape(native.shape[0], native.shape[1], ct.spacing_mm[2], ct.spacing_mm[0],
                                         options.size_px)
    attenuation = resample(native, shape)
    image = _display(attenuation, pixel_mm, options)
    instances = project_lesions(ct, options, image.shape, pixel_mm * pixel_mm)
    return Projection(image=image, instances=instances, pixel_spacing_mm=(pixel_mm, pixel_mm),
                      line_integral=attenuation)


def _cone_physics(ct: CTVolume, options: ProjectorOptions) -> Projection:
    geometry = cone_geometry(ct.shape, ct.spacing_mm, options)
    scale, offset = _hu_calibration(ct, options)
    voxels = to_device(ct.voxels, options.device)
    attenuation = cone_line_integral(voxels, ct.spacing_mm, geometry, options.mu_water_per_mm, scale,
                                     offset).astype("float32")
    image = _display(attenuation, geometry.pixel_mm, options)
    instances = project_lesions_cone(ct, options, geometry)
    return Projection(image=image, instances=instances, pixel_spacing_mm=(geometry.pixel_mm, geometry.pixel_mm),
                      line_integral=attenuation)


def project_volume(ct: CTVolume, options: ProjectorOptions | None = None) -> Projection:
    """Project a RAS+ CT to a frontal X-ray with its lesion instances (see the package docstring).

    The patient is first turned by ``options.view_deg`` about the superior-inferior axis, then
    tilted by ``options.tilt_deg`` about the right-left axis.
    """
    options = options or ProjectorOptions()
    ct = tilt_about_lr(rotate_about_si(ct, options.view_deg), options.tilt_deg)
    if options.mode == "seed":
        check_seed_geometry(ct)
        image = _seed_display(to_radiograph_layout(_seed_column_sums(ct)))
        nz = ct.shape[2]
        row_mm = ct.spacing_mm[2] * nz / image.shape[0]
        spacing = (row_mm, ct.spacing_mm[0])
        instances = project_lesions(ct, options, image.shape, spacing[0] * spacing[1])
        return Projection(image=image, instances=instances, pixel_spacing_mm=spacing)
    if options.geometry == "cone":
        return _cone_physics(ct, options)
    return _parallel_physics(ct, options)
