"""CT to frontal X-ray projection, vectorised, with projected lesion instances.

Geometry: parallel rays along the anterior-posterior axis (axis 1 of a RAS+ volume, see
:mod:`.volume`). Images follow the radiological convention of a frontal chest X-ray: the
patient's right on the image's left (column 0 is the largest x) and superior at the top (row 0
is the largest z).

Two modes:

``physics`` (default)
    Hounsfield units become linear attenuation ``mu = mu_water * (1 + HU / 1000)`` clipped at 0
    (1/mm). The line integral ``L = sum_y mu * dy`` (dy in mm) gives the Beer-Lambert
    transmission ``T = exp(-L)``. The image shows ``-ln T = L``, as a log-amplified detector
    does (dense = bright), windowed linearly between the 0.5th and 99.8th percentiles of ``L``
    and quantised to uint8, then resampled (bilinear) to square pixels whose longer side is
    ``size_px``. The default ``mu_water`` of 0.0206 /mm is water's attenuation at about 60 keV,
    the effective energy of a 110-120 kVp chest radiograph.

``seed``
    The published algorithm of Ramesh, Rister & Rubin (arXiv:2105.08147), exactly: 8-bit axial
    slices, column sums along anterior-posterior, rows ordered superior at the top as in the
    paper's listing (``xray[len(images) - 1 - z][x] = sum``). The display step is that of the
    published ``main.py`` of rvignav/CT2Xray: ``p / max(p) * 255`` truncated to uint8, then
    stretched to 300 rows when shorter with PIL's default ``resize`` filter (bicubic for 8-bit
    images). main.py also mirrors left and right (``WIDTH - x - 1``); the paper's listing does
    not, and neither does CheXMix. Calibrated input (NIfTI, DICOM, 16-bit slices) is first
    scaled to 8 bits over the whole volume, ``rint((v - min) * 255 / (max - min))`` of the
    calibrated values ``v`` (float64); 8-bit slice folders are used as read. Pixels are not
    made square, as in the original. Only square axial slices are accepted: the published loop
    swaps PIL's width and height, so other slices come out scrambled (wider than tall) or
    crash it (taller than wide) while the lesion masks would keep the true geometry.

Lesions: a pixel is lesion where the ray's path through the lesion is at least
``min_lesion_mm`` (default: one voxel along anterior-posterior). Each 3D connected component
(26-connectivity) of each lesion label is projected on its own, so instances may overlap;
instances smaller than ``min_area_mm2`` on the image are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Literal

import numpy as np
from PIL import Image
from scipy import ndimage

from .errors import ChexmixInputError
from .lesions import LesionInstance
from .volume import CTVolume

MU_WATER_60KEV_PER_MM = 0.0206
SEED_MIN_ROWS = 300
# Longest image side: a 43 cm flat-panel detector at its finest 0.1 mm pitch is about 4300 px;
# beyond this a typo (--size 100000 would need 37 GiB) rather than a wish.
MAX_SIZE_PX = 4096
# Chunks of about 256 k voxels: temporaries stay in the CPU cache and never near the volume's size.
_CHUNK_VOXELS = 1 << 18


@dataclass(frozen=True)
class ProjectorOptions:
    """How to project a CT.

    Attributes:
        mode: "physics" (default) or "seed" (the published algorithm).
        size_px: physics mode: length in px of the image's longer side, 8 to 4096.
        mu_water_per_mm: linear attenuation of water (1/mm) in physics mode.
        window_percentiles: physics mode: percentiles of the line integral mapped to 0 and 255.
        slice_hu_range: HU assumed for grey 0 and 255 when a slice folder (no HU) is projected
            in physics mode.
        min_lesion_mm: least path length (mm) through a lesion for a lesion pixel; None means
            one voxel along anterior-posterior.
        min_area_mm2: instances whose projection covers less area are dropped.
        lesion_types: lesion label value -> name; unlisted labels are named "lesion".
    """

    mode: Literal["physics", "seed"] = "physics"
    size_px: int = 512
    mu_water_per_mm: float = MU_WATER_60KEV_PER_MM
    window_percentiles: tuple[float, float] = (0.5, 99.8)
    slice_hu_range: tuple[float, float] = (-1000.0, 1000.0)
    min_lesion_mm: float | None = None
    min_area_mm2: float = 4.0
    lesion_types: dict[int, str] = field(default_factory=lambda: {1: "ground_glass", 2: "consolidation"})

    def __post_init__(self) -> None:
        if self.mode not in ("physics", "seed"):
            raise ChexmixInputError(f"unknown projection mode {self.mode!r} (physics or seed)")
        if isinstance(self.size_px, bool) or not isinstance(self.size_px, (int, np.integer)):
            raise ChexmixInputError(f"image size must be a whole number of px, got {self.size_px!r}")
        if not 8 <= self.size_px <= MAX_SIZE_PX:
            raise ChexmixInputError(f"image size must be 8 to {MAX_SIZE_PX} px, got {self.size_px}")
        if self.min_lesion_mm is not None and self.min_lesion_mm <= 0:
            raise ChexmixInputError(f"--min-lesion-mm must be positive, got {self.min_lesion_mm}")


@dataclass(frozen=True)
class Projection:
    """A projected CT.

    Attributes:
        image: (height, width) uint8 frontal X-ray, radiological convention.
        instances: projected lesions, each with its own mask on ``image``'s grid.
        pixel_spacing_mm: (row, column) pixel size in mm.
        line_integral: physics mode: (height, width) float32 ``-ln T`` on ``image``'s grid.
    """

    image: np.ndarray
    instances: list[LesionInstance]
    pixel_spacing_mm: tuple[float, float]
    line_integral: np.ndarray | None = None


# --- summing along anterior-posterior, chunk by chunk ----------------------------------------

def _chunks(volume: np.ndarray) -> Iterator[tuple[int, int, tuple[slice, slice, slice]]]:
    """(axis, start, index) of cache-sized chunks cut along the axis with the largest stride.

    Cutting along the slowest axis keeps each chunk one contiguous block of memory.
    """
    axis = int(np.argmax(np.abs(volume.strides)))
    per_index = volume.size // max(volume.shape[axis], 1)
    step = max(1, _CHUNK_VOXELS // max(per_index, 1))
    for start in range(0, volume.shape[axis], step):
        index = [slice(None)] * 3
        index[axis] = slice(start, start + step)
        yield axis, start, tuple(index)  # type: ignore[misc]


def _reduce_ap(volume: np.ndarray, transform, out_dtype) -> np.ndarray:
    """``sum_y transform(volume[x, y, z])`` as an (nx, nz) array, never copying the whole volume."""
    nx, _, nz = volume.shape
    out = np.zeros((nx, nz), dtype=out_dtype)
    for axis, start, index in _chunks(volume):
        part = transform(volume[index]).sum(axis=1, dtype=out_dtype)
        if axis == 1:
            out += part
        elif axis == 0:
            out[start:start + part.shape[0]] = part
        else:
            out[:, start:start + part.shape[1]] = part
    return out


def line_integral_mm(voxels: np.ndarray, dy_mm: float, mu_water_per_mm: float,
                     hu_scale: float = 1.0, hu_offset: float = 0.0) -> np.ndarray:
    """``L[x, z] = sum_y max(mu_water * (1 + HU / 1000), 0) * dy``, an (nx, nz) float64 array.

    ``HU = voxels * hu_scale + hu_offset``; dy in mm, mu_water in 1/mm, L dimensionless.
    """
    ny = voxels.shape[1]
    per_hu = mu_water_per_mm / 1000.0 * dy_mm
    floor = _integer_floor(voxels.dtype, hu_scale, hu_offset)
    if floor is not None:
        # Integer voxels, HU = v + integer offset: clip v where HU is -1000 and sum exactly in
        # int32/int64, then shift once. Exact, and no float copy of any chunk.
        info = np.iinfo(voxels.dtype)
        buffer = [np.empty(0, dtype=voxels.dtype)]  # reused: a fresh temporary per chunk costs page faults

        def clip(part: np.ndarray) -> np.ndarray:
            if floor <= info.min or part.min() >= floor:  # nothing below -1000 HU (no padding)
                return part
            if buffer[0].size < part.size:
                buffer[0] = np.empty(part.size, dtype=voxels.dtype)
            return np.maximum(part, voxels.dtype.type(floor), out=buffer[0][: part.size].reshape(part.shape))

        bound = ny * max(abs(info.min), info.max)
        sums = _reduce_ap(voxels, clip, np.int64 if bound >= 2**31 else np.int32)
        hu_sums = sums.astype(np.float64) + float(hu_offset) * ny
    else:
        hu_sums = _reduce_ap(
            voxels,
            lambda part: np.maximum(part.astype(np.float64) * hu_scale + hu_offset, -1000.0),
            np.float64,
        )
    return (hu_sums + 1000.0 * ny) * per_hu


def _integer_floor(dtype: np.dtype, hu_scale: float, hu_offset: float) -> int | None:
    """The stored value at -1000 HU when the exact integer path applies, else None.

    Applies to integers of at most 16 bits with ``HU = v + k`` for an integer ``k`` (slope 1:
    HU stored as is, or DICOM/NIfTI intercepts such as -1024), and a floor the type can hold
    or lies below.
    """
    if dtype.kind not in "iu" or dtype.itemsize > 2 or hu_scale != 1.0 or hu_offset != int(hu_offset):
        return None
    floor = -1000 - int(hu_offset)
    return floor if floor <= np.iinfo(dtype).max else None


def to_radiograph_layout(ap_map: np.ndarray) -> np.ndarray:
    """(nx, nz) map -> (rows, cols) image: superior at top, patient's right on the left."""
    return ap_map[::-1, ::-1].T


def resample(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resampling of a 2D float map to ``shape``, pixel edges aligned (grid mode)."""
    if image.shape == shape:
        return image.astype(np.float32, copy=True)
    zoom = (shape[0] / image.shape[0], shape[1] / image.shape[1])
    return ndimage.zoom(image.astype(np.float32), zoom, order=1, mode="nearest", grid_mode=True)


def square_pixel_shape(n_rows: int, n_cols: int, row_mm: float, col_mm: float, size_px: int
                       ) -> tuple[tuple[int, int], float]:
    """Output shape with square pixels and the longer physical side ``size_px``; and pixel mm."""
    height_mm, width_mm = n_rows * row_mm, n_cols * col_mm
    pixel_mm = max(height_mm, width_mm) / size_px
    return (max(1, round(height_mm / pixel_mm)), max(1, round(width_mm / pixel_mm))), pixel_mm


# --- the two modes --------------------------------------------------------------------------

def _uint8_scaling(vmin: float, vmax: float):
    scale = 255.0 / (vmax - vmin) if vmax > vmin else 0.0
    return lambda values: np.rint((values.astype(np.float64) - vmin) * scale).astype(np.uint8)


def volume_to_uint8(voxels: np.ndarray) -> np.ndarray:
    """Whole-volume min-max scaling to 8 bits: ``rint((v - min) * 255 / (max - min))``."""
    to_uint8 = _uint8_scaling(float(voxels.min()), float(voxels.max()))
    out = np.empty(voxels.shape, dtype=np.uint8)
    for _, _, index in _chunks(voxels):
        out[index] = to_uint8(voxels[index])
    return out


def _calibrated(values: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    """``values * slope + intercept`` in float64, in nibabel's order of operations (bit for bit)."""
    values = values.astype(np.float64)
    if slope != 1.0:
        values = values * slope
    if intercept != 0.0:
        values = values + intercept
    return values


def _seed_column_sums(ct: CTVolume) -> np.ndarray:
    """Square slices: sums over anterior-posterior of the 8-bit slices, an (nx, nz) int array.

    For square slices the published row cutting is the plain image, so the loop's column sums
    are sums along y. Calibrated volumes are scaled to 8 bits over their calibrated values
    ``v = stored * slope + intercept`` (float64, as nibabel computes them), so a scaled NIfTI
    gives the very image its float64 HU would. 8- and 16-bit volumes go through a lookup table
    over every stored code computed with that formula (same values, one gather per voxel).
    """
    voxels = ct.voxels
    if voxels.dtype == np.uint8 and not ct.is_hounsfield:
        return _reduce_ap(voxels, lambda part: part, np.int64)
    slope, intercept = ct.value_slope, ct.value_intercept
    low, high = (_calibrated(np.asarray([voxels.min(), voxels.max()]), slope, intercept))
    # The calibration is monotonic (and so is its rounding): the extremes come from the stored ones.
    to_uint8 = _uint8_scaling(float(min(low, high)), float(max(low, high)))
    if voxels.dtype.kind in "iu" and voxels.dtype.itemsize <= 2:
        unsigned = np.dtype(f"u{voxels.dtype.itemsize}")
        codes = np.arange(2 ** (8 * voxels.dtype.itemsize), dtype=unsigned).view(voxels.dtype)
        table = to_uint8(_calibrated(codes, slope, intercept))  # table[stored bits] = 8-bit value
        return _reduce_ap(voxels, lambda part: table[part.view(unsigned)], np.int64)
    return _reduce_ap(voxels, lambda part: to_uint8(_calibrated(part, slope, intercept)), np.int64)


def seed_slices(voxels_ras: np.ndarray, is_hounsfield: bool) -> np.ndarray:
    """The 8-bit axial slices the published tool reads: (rows, cols, slices), inferior first.

    Rows run anterior to posterior and columns from the patient's right to left, the usual
    display of an axial CT slice (and the layout :func:`.volume.slice_folder_affine` assumes).
    """
    u8 = volume_to_uint8(voxels_ras) if is_hounsfield or voxels_ras.dtype != np.uint8 else voxels_ras
    return u8[::-1, ::-1, :].transpose(1, 0, 2)


def seed_projection(slices: np.ndarray) -> np.ndarray:
    """The published column-sum loop, vectorised; returns the uint8 image.

    ``slices`` is (rows, cols, n_slices) uint8, inferior slice first. As in the original,
    each slice's row-major pixel list is cut into rows of ``height`` values (the code swaps PIL's
    width and height), which only matters for non-square slices.
    """
    rows, cols, n_slices = slices.shape
    if rows > cols:
        raise ChexmixInputError(
            f"seed mode reproduces the published loop, which fails on slices taller than wide "
            f"({cols} x {rows} px); use --mode physics"
        )
    per_slice = slices.transpose(2, 0, 1).reshape(n_slices, cols, rows)
    sums = per_slice.sum(axis=1, dtype=np.int64)  # (n_slices, rows)
    xray = np.zeros((n_slices, cols), dtype=np.float64)
    xray[::-1, :rows] = sums  # xray[n - 1 - z] = slice z's sums: superior at the top
    return _seed_display(xray)


def _seed_display(xray: np.ndarray) -> np.ndarray:
    """main.py's display: ``p / max * 255`` truncated to uint8; stretched to 300 rows when shorter.

    The stretch is PIL's default ``resize`` filter, which main.py relies on: bicubic for 'L'
    images (Pillow >= 7), named here so that a change of Pillow's default cannot change it.
    """
    peak = xray.max()
    image = (xray / peak * 255.0 if peak > 0 else xray).astype(np.uint8)  # truncation, as np.array(p, uint8)
    if image.shape[0] < SEED_MIN_ROWS:
        image = np.asarray(Image.fromarray(image).resize((image.shape[1], SEED_MIN_ROWS), Image.Resampling.BICUBIC))
    return image


def _physics_image(ct: CTVolume, options: ProjectorOptions) -> tuple[np.ndarray, np.ndarray, float]:
    scale, offset = ct.value_slope, ct.value_intercept
    if not ct.is_hounsfield:
        # 8-bit grey carries no calibration: grey 0..255 is taken as the documented HU range.
        lo, hi = options.slice_hu_range
        scale, offset = scale * (hi - lo) / 255.0, offset * (hi - lo) / 255.0 + lo
    integral = line_integral_mm(ct.voxels, ct.spacing_mm[1], options.mu_water_per_mm, scale, offset)
    native = to_radiograph_layout(integral)  # (nz, nx)
    shape, pixel_mm = square_pixel_shape(native.shape[0], native.shape[1], ct.spacing_mm[2], ct.spacing_mm[0],
                                         options.size_px)
    attenuation = resample(native, shape)
    lo_pct, hi_pct = np.percentile(attenuation, options.window_percentiles)
    span = hi_pct - lo_pct if hi_pct > lo_pct else 1.0
    image = np.rint(np.clip((attenuation - lo_pct) / span, 0.0, 1.0) * 255.0).astype(np.uint8)
    return image, attenuation, pixel_mm


def lesion_path_maps(labels: np.ndarray, dy_mm: float) -> list[tuple[int, np.ndarray]]:
    """Path length (mm) along anterior-posterior through each 3D lesion component.

    Returns ``(label value, (nx, nz) float32 path map)`` per component, components of each label
    value found with 26-connectivity, in label then component order.
    """
    structure = np.ones((3, 3, 3), dtype=bool)
    maps: list[tuple[int, np.ndarray]] = []
    # Work inside the lesions' bounding box: the component image is the only large temporary.
    # The box comes from the anterior-posterior maximum (one cheap pass over the labels).
    footprint = labels.max(axis=1)
    if not footprint.any():
        return maps
    xs, zs = np.nonzero(footprint.any(axis=1))[0], np.nonzero(footprint.any(axis=0))[0]
    ys = np.nonzero(labels[xs[0]:xs[-1] + 1, :, zs[0]:zs[-1] + 1].max(axis=(0, 2)))[0]
    box = (slice(xs[0], xs[-1] + 1), slice(ys[0], ys[-1] + 1), slice(zs[0], zs[-1] + 1))
    cropped = labels[box]
    for value in np.unique(cropped):
        if value == 0:
            continue
        try:
            components, count = ndimage.label(cropped == value, structure=structure, output=np.uint16)
        except RuntimeError:  # more than 65535 components
            components, count = ndimage.label(cropped == value, structure=structure)
        for index, sub in enumerate(ndimage.find_objects(components), start=1):
            if sub is None:
                continue
            voxel_count = (components[sub] == index).sum(axis=1, dtype=np.int32)
            path = np.zeros((labels.shape[0], labels.shape[2]), dtype=np.float32)
            path[box[0].start + sub[0].start: box[0].start + sub[0].stop,
                 box[2].start + sub[2].start: box[2].start + sub[2].stop] = voxel_count * dy_mm
            maps.append((int(value), path))
    return maps


def _project_lesions(ct: CTVolume, options: ProjectorOptions, out_shape: tuple[int, int],
                     pixel_area_mm2: float) -> list[LesionInstance]:
    if ct.lesion_labels is None:
        return []
    dy = ct.spacing_mm[1]
    threshold = (options.min_lesion_mm if options.min_lesion_mm is not None else dy) - 1e-6
    instances = []
    for value, path in lesion_path_maps(ct.lesion_labels, dy):
        native = to_radiograph_layout((path >= threshold).astype(np.float32))
        # Resample the binary mask as a fraction and keep pixels at least half covered.
        mask = resample(native, out_shape) >= 0.5
        if mask.sum() * pixel_area_mm2 < options.min_area_mm2 or not mask.any():
            continue
        instances.append(LesionInstance(mask=mask, lesion_type=options.lesion_types.get(value, "lesion")))
    return instances


def check_seed_geometry(ct: CTVolume) -> None:
    """Refuse volumes whose axial slices are not square for seed mode (module docstring)."""
    nx, ny, _ = ct.shape
    if nx != ny:
        shape = "wider than tall, which it scrambles" if nx > ny else "taller than wide, on which it fails"
        raise ChexmixInputError(
            f"seed mode needs square axial slices, got {nx} x {ny} px (width x height): the published loop "
            f"swaps width and height and these slices are {shape}, while the lesion masks keep the true "
            "geometry; use --mode physics",
            ct.path,
        )


def project_volume(ct: CTVolume, options: ProjectorOptions | None = None) -> Projection:
    """Project a RAS+ CT to a frontal X-ray with its lesion instances (see module docstring)."""
    options = options or ProjectorOptions()
    if options.mode == "seed":
        check_seed_geometry(ct)
        image = _seed_display(to_radiograph_layout(_seed_column_sums(ct)))
        nx, _, nz = ct.shape
        row_mm = ct.spacing_mm[2] * nz / image.shape[0]
        spacing = (row_mm, ct.spacing_mm[0])
        instances = _project_lesions(ct, options, image.shape, spacing[0] * spacing[1])
        return Projection(image=image, instances=instances, pixel_spacing_mm=spacing)
    image, attenuation, pixel_mm = _physics_image(ct, options)
    instances = _project_lesions(ct, options, image.shape, pixel_mm * pixel_mm)
    return Projection(image=image, instances=instances, pixel_spacing_mm=(pixel_mm, pixel_mm),
                      line_integral=attenuation)
