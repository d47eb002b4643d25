"""Reading 2D lesion annotations on chest X-rays: VIA polygons, COCO polygons/RLE, label masks.

Coordinates are image pixels: x is the column (0 at the image's left edge), y the row (0 at the
top edge). Polygons are rasterised with pycocotools, whose area for an axis-aligned square with
integer corners (x0, y0)-(x1, y1) is exactly (x1 - x0) * (y1 - y0) px. Vertices outside the
image are clipped to it, and each clipping is reported through ``warn``.

VIA (VGG Image Annotator) JSON, as written by VIA 1 and 2 "export annotations (as json)" and as
published in rvignav/CT2Xray (``xrays_only/train/via_region_data.json``):
``{"<filename><size>": {"filename": str, "size": int, "regions": [...] | {"0": ...},
"file_attributes": {...}}}`` where each region holds ``shape_attributes`` with ``name``
"polygon" (``all_points_x``, ``all_points_y``) or "rect" (``x``, ``y``, ``width``, ``height``)
and optional ``region_attributes``. ``regions`` is a list in VIA 2 and a dict keyed "0", "1",
... in VIA 1. A VIA project file (``_via_img_metadata`` key) is accepted too. The ``size``
field is not checked against the file: CT2Xray writes a constant 12442 for every image.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from pycocotools import mask as mask_utils

from chexmix_dataset.dataset.lesions import LesionInstance
from chexmix_dataset.errors import ChexmixInputError
from chexmix_dataset.projector.components import connected_components
from chexmix_dataset.sources.base import SkippedItem
from chexmix_dataset.xray.images import IMAGE_SUFFIXES, SIXTEEN_BIT_MODES, image_size, open_upright, read_grey_image  # noqa: F401

# Region attribute keys read as the lesion type, in this order; CT2Xray's "type" is "unknown".
LESION_TYPE_KEYS = ("lesion_type", "lesion", "label", "class")
DEFAULT_LESION_TYPE = "lesion"


@dataclass(frozen=True)
class PolygonRegion:
    """One annotated lesion outline in image pixels (x = column, y = row)."""

    xs: tuple[float, ...]
    ys: tuple[float, ...]
    lesion_type: str = DEFAULT_LESION_TYPE


@dataclass(frozen=True)
class RLERegion:
    """One lesion given as a COCO RLE ({"size": [h, w], "counts": list | str})."""

    rle: tuple[tuple[str, object], ...]  # frozen form of the dict, so cases stay hashable
    lesion_type: str = DEFAULT_LESION_TYPE

    def as_dict(self) -> dict:
        return dict(self.rle)


Region = PolygonRegion | RLERegion


# ----------------------------------------------------------------------------- rasterising ---

def rasterise_polygon(region: PolygonRegion, height: int, width: int, where: str,
                      warn: Callable[[str], None]) -> np.ndarray | None:
    """The (height, width) bool mask of a polygon, clipped to the image; None if nothing is left.

    ``where`` names the polygon in warnings (e.g. "xray.png polygon 2").
    """
    xs = np.asarray(region.xs, dtype=np.float64)
    ys = np.asarray(region.ys, dtype=np.float64)
    if xs.size < 3:
        warn(f"{where}: polygon has {xs.size} vertices (needs 3); dropped")
        return None
    outside = (xs < 0) | (xs > width) | (ys < 0) | (ys > height)
    if outside.any():
        warn(f"{where}: {int(outside.sum())} of {xs.size} polygon vertices lie outside the "
             f"{width}x{height} px image; clipped to the image")
    coords = np.stack([np.clip(xs, 0, width), np.clip(ys, 0, height)], axis=1).ravel().tolist()
    rle = mask_utils.merge(mask_utils.frPyObjects([coords], height, width))
    mask = mask_utils.decode(rle).astype(bool)
    if not mask.any():
        warn(f"{where}: polygon covers no pixel of the {width}x{height} px image; dropped")
        return None
    return mask


def rasterise_rle(region: RLERegion, height: int, width: int, where: str,
                  warn: Callable[[str], None]) -> np.ndarray | None:
    rle = region.as_dict()
    size = [int(v) for v in rle.get("size", [])]
    if size != [height, width]:
        raise ChexmixInputError(f"{where}: RLE size {size} does not match the image's [{height}, {width}] (h, w)")
    counts = rle["counts"]
    if isinstance(counts, (list, tuple)):  # uncompressed RLE, as COCO writes for iscrowd
        coco_rle = mask_utils.frPyObjects({"size": size, "counts": [int(c) for c in counts]}, height, width)
    else:
        coco_rle = {"size": size, "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    mask = mask_utils.decode(coco_rle).astype(bool)
    if not mask.any():
        warn(f"{where}: RLE mask is empty; dropped")
        return None
    return mask


def rasterise_regions(regions: Iterable[Region], height: int, width: int, image_name: str,
                      warn: Callable[[str], None]) -> list[LesionInstance]:
    """One LesionInstance per region that covers at least one pixel."""
    instances = []
    for index, region in enumerate(regions):
        where = f"{image_name} region {index}"
        if isinstance(region, PolygonRegion):
            mask = rasterise_polygon(region, height, width, where, warn)
        else:
            mask = rasterise_rle(region, height, width, where, warn)
        if mask is not None:
            instances.append(LesionInstance(mask=mask, lesion_type=region.lesion_type))
    return instances


def load_annotated_image(image_path: str, regions: tuple[Region, ...],
                         warn: Callable[[str], None]) -> tuple[np.ndarray, list[LesionInstance]]:
    """``CXRCase.load`` for polygon/RLE annotations: bind with functools.partial(path, regions)."""
    image = read_grey_image(image_path)
    height, width = image.shape
    return image, rasterise_regions(regions, height, width, Path(image_path).name, warn)


# Formats whose stored values are not the values written (WebP may be lossy; we cannot tell cheaply).
LOSSY_FORMATS = frozenset({"JPEG", "MPO", "JPEG2000", "WEBP"})


@dataclass(frozen=True)
class MaskLevels:
    """A lesion mask reduced to one channel: ``values`` on a scale from 0 to ``full_scale``."""

    values: np.ndarray  # (height, width) int64
    full_scale: int     # 1 (bilevel), 255 (8-bit) or 65535 (16-bit)
    lossy: bool         # stored in a lossy format (JPEG, ...): values carry compression noise
    described: str      # e.g. "8-bit JPEG", "16-bit PNG", "RGB PNG"


def mask_levels(image: Image.Image, stored_format: str, name: str, what: str = "lesion mask") -> MaskLevels:
    """One channel of a mask image as stored: bilevel, grey (8/16-bit), palette or colour.

    Colour (and palette) masks are reduced to their brightest channel, weighted by opacity, so
    red, white or any saturated colour on black (or on transparent) is foreground. A mask whose
    colour is black everywhere but whose alpha varies is read from its alpha channel.
    """
    lossy = stored_format in LOSSY_FORMATS
    kind = stored_format or "image"
    mode = image.mode
    if mode == "1":
        return MaskLevels(np.asarray(image, dtype=np.int64), 1, lossy, f"bilevel {kind}")
    if mode == "L":
        return MaskLevels(np.asarray(image, dtype=np.int64), 255, lossy, f"8-bit {kind}")
    if mode in SIXTEEN_BIT_MODES or mode == "I":
        values = np.asarray(image, dtype=np.int64)
        if values.min(initial=0) < 0 or values.max(initial=0) > 65535:
            raise ChexmixInputError(f"{what} of mode {mode} holds values outside 0..65535", name)
        return MaskLevels(values, 65535, lossy, f"16-bit {kind}")
    if mode in ("LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"):
        rgba = np.asarray(image.convert("RGBA"), dtype=np.int64)
        colour, alpha = rgba[..., :3].max(axis=2), rgba[..., 3]
        values = alpha if not colour.any() else (colour * alpha + 127) // 255
        return MaskLevels(values, 255, lossy, f"{'palette' if mode.startswith('P') else mode} {kind}")
    raise ChexmixInputError(f"{what} of mode {mode} is not supported; save it as 8- or 16-bit grey PNG", name)


def _components(foreground: np.ndarray, lesion_type: str) -> list[LesionInstance]:
    """One instance per 8-connected component of ``foreground``."""
    components = connected_components(foreground)  # full connectivity: 8 neighbours in 2D
    return [LesionInstance(mask=components.labels == k, lesion_type=lesion_type)
            for k in range(1, components.count + 1)]


def binary_foreground(levels: MaskLevels, name: str, warn: Callable[[str], None], what: str,
                      subject: str = "it") -> np.ndarray:
    """(H, W) bool foreground of a binary mask: a losslessly stored two-valued mask as it is,
    anything else binarised at half of its storage range, with a warning naming the file."""
    distinct = np.unique(levels.values)
    if not levels.lossy and distinct.size <= 2:
        return levels.values != 0
    threshold = levels.full_scale // 2 + 1
    if distinct.size > 2:
        why = "as JPEG-like compression leaves" if levels.lossy else "not a two-valued mask"
        warn(f"{name}: {levels.described} {what} holds {distinct.size} distinct values ({why}); "
             f"{subject} was binarised at {threshold} (half of 0..{levels.full_scale})")
    return levels.values >= threshold


def _open_mask_upright(mask_path: str | Path, image_shape: tuple[int, ...], what: str, image_name: str = ""):
    """(PIL image, stored format) of a mask read upright; it must have its image's (H, W) size in px."""
    mask_image, stored_format = open_upright(mask_path)
    if (mask_image.height, mask_image.width) != tuple(image_shape[:2]):
        image = f"its image {image_name}" if image_name else "its image"
        raise ChexmixInputError(f"{what} is {mask_image.width}x{mask_image.height} px but {image} is "
                                f"{image_shape[1]}x{image_shape[0]} px", mask_path)
    return mask_image, stored_format


def read_region_mask(mask_path: str | Path, image_shape: tuple[int, int], warn: Callable[[str], None],
                     what: str = "lung mask") -> np.ndarray:
    """(H, W) bool region of a binary mask file that is not a lesion (e.g. a collection's lung
    mask), read upright as its image is; it must have the image's size (H, W) in px."""
    mask_image, stored_format = _open_mask_upright(mask_path, tuple(image_shape), what)
    levels = mask_levels(mask_image, stored_format, mask_path, what)
    return binary_foreground(levels, Path(mask_path).name, warn, what)


def binary_mask_instances(levels: MaskLevels, name: str, warn: Callable[[str], None]) -> list[LesionInstance]:
    """Lesions of a mask without declared label values, all of type "lesion".

    A losslessly stored mask of two values (0 and any other: 0/1, 0/255, 0/65535, ...) is binary
    as it is. Anything else (JPEG noise, anti-aliased edges, a label mask nobody declared) is
    binarised at half of its storage range (128 for 8-bit, 32768 for 16-bit), and a warning
    naming the file says so.
    """
    foreground = binary_foreground(levels, name, warn, "lesion mask",
                                   "no lesion_types.json declares label values, so it")
    if foreground.mean() > 0.5:
        warn(f"{name}: lesion mask marks {foreground.mean():.0%} of the image as lesion; is it inverted "
             "(lesions must be the bright or non-zero value)?")
    return _components(foreground, DEFAULT_LESION_TYPE)


def label_mask_instances(labels: np.ndarray, lesion_types: dict[int, str], name: str,
                         warn: Callable[[str], None]) -> list[LesionInstance]:
    """Instances of a label mask: each 8-connected component of each non-zero value is one lesion.

    Values are looked up in the declared ``lesion_types``. A mask of a single non-zero value
    that is not declared is binary (type "lesion"); other undeclared values are kept as
    ``label_{value}`` and a warning names them.
    """
    values = [int(v) for v in np.unique(labels) if v != 0]
    if len(values) == 1 and values[0] not in lesion_types:
        return _components(labels != 0, DEFAULT_LESION_TYPE)
    undeclared = [v for v in values if v not in lesion_types]
    if undeclared:
        warn(f"{name}: lesion mask holds values {', '.join(map(str, undeclared[:5]))}"
             f"{', ...' if len(undeclared) > 5 else ''} that lesion_types.json does not declare; "
             "kept as types label_VALUE")
    instances = []
    for value in values:
        instances.extend(_components(labels == value, lesion_types.get(value, f"label_{value}")))
    return instances


def mask_is_lossy(path: str | Path) -> bool:
    """Whether a mask file is stored in a lossy format (from its header)."""
    try:
        with Image.open(path) as image:
            return (image.format or "").upper() in LOSSY_FORMATS
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ChexmixInputError(f"cannot read lesion mask: {exc}", path) from None


LOSSY_LABELS_REASON = ("lesion_types.json declares label values, but this mask is stored lossily (JPEG/WebP), "
                       "which changes values; save label masks as PNG")


def load_masked_image(image_path: str, mask_path: str, lesion_types: tuple[tuple[int, str], ...],
                      warn: Callable[[str], None]) -> tuple[np.ndarray, list[LesionInstance]]:
    """``CXRCase.load`` for an image with a lesion mask of the same size (both read upright).

    Without declared ``lesion_types`` the mask is binary (:func:`binary_mask_instances`); with
    them it is a label mask (:func:`label_mask_instances`), which must be stored losslessly in
    one channel (grey or palette indices).
    """
    image = read_grey_image(image_path)
    name = Path(mask_path).name
    mask_image, stored_format = _open_mask_upright(mask_path, image.shape, "lesion mask", Path(image_path).name)
    if not lesion_types:
        return image, binary_mask_instances(mask_levels(mask_image, stored_format, mask_path), name, warn)
    if stored_format in LOSSY_FORMATS:
        raise ChexmixInputError(LOSSY_LABELS_REASON, mask_path)
    if mask_image.mode not in ("1", "L", "P", "I", *SIXTEEN_BIT_MODES):
        raise ChexmixInputError(f"lesion_types.json declares label values, but this mask is {mask_image.mode}; "
                                "label masks must be one channel (8/16-bit grey or palette indices)", mask_path)
    labels = np.asarray(mask_image, dtype=np.int64)
    return image, label_mask_instances(labels, dict(lesion_types), name, warn)


# ----------------------------------------------------------------------------------- VIA ---

def _lesion_type(region_attributes: object) -> str:
    if isinstance(region_attributes, dict):
        for key in LESION_TYPE_KEYS:
            value = region_attributes.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
    return DEFAULT_LESION_TYPE


def _via_region(region: object, where: str) -> Region | str:
    """A region, or the reason it cannot be used."""
    if not isinstance(region, dict) or not isinstance(region.get("shape_attributes"), dict):
        return "region has no shape_attributes"
    shape = region["shape_attributes"]
    lesion_type = _lesion_type(region.get("region_attributes"))
    name = shape.get("name")
    try:
        if name == "polygon":
            xs, ys = shape["all_points_x"], shape["all_points_y"]
            if len(xs) != len(ys):
                return f"polygon has {len(xs)} x but {len(ys)} y coordinates"
            return PolygonRegion(tuple(float(v) for v in xs), tuple(float(v) for v in ys), lesion_type)
        if name == "rect":
            x, y, w, h = (float(shape[k]) for k in ("x", "y", "width", "height"))
            return PolygonRegion((x, x + w, x + w, x), (y, y, y + h, y + h), lesion_type)
    except (KeyError, TypeError, ValueError) as exc:
        return f"malformed {name} shape ({exc.__class__.__name__}: {exc})"
    return f"unsupported VIA shape {name!r} (only polygon and rect are read)"


def _read_json(path: Path, what: str) -> object:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ChexmixInputError(f"{what} annotation file does not exist", path) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ChexmixInputError(f"cannot read {what} annotations as JSON: {exc}", path) from None


def read_via(path: Path) -> tuple[dict[str, tuple[Region, ...]], list[SkippedItem]]:
    """VIA annotations of one JSON file: {image filename: regions}, and what could not be read."""
    data = _read_json(path, "VIA")
    if isinstance(data, dict) and isinstance(data.get("_via_img_metadata"), dict):
        data = data["_via_img_metadata"]
    if not isinstance(data, dict):
        raise ChexmixInputError("not a VIA annotation file: expected a JSON object keyed by filename+size", path)
    annotations: dict[str, tuple[Region, ...]] = {}
    skipped: list[SkippedItem] = []
    for key, entry in data.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("filename"), str):
            skipped.append(SkippedItem(f"{Path(path).name}: {key}", "VIA entry has no filename"))
            continue
        filename = entry["filename"]
        raw_regions = entry.get("regions") or []
        if isinstance(raw_regions, dict):  # VIA 1 keys regions "0", "1", ...
            raw_regions = [raw_regions[k] for k in sorted(raw_regions, key=lambda k: int(k) if str(k).isdigit() else 0)]
        regions = []
        for index, raw in enumerate(raw_regions):
            region = _via_region(raw, f"{filename} region {index}")
            if isinstance(region, str):
                skipped.append(SkippedItem(f"{filename} region {index}", region))
            else:
                regions.append(region)
        if filename in annotations:
            skipped.append(SkippedItem(f"{Path(path).name}: {filename}",
                                       "image annotated twice in the same file; first entry kept"))
            continue
        annotations[filename] = tuple(regions)
    return annotations, skipped


# ---------------------------------------------------------------------------------- COCO ---

def read_coco(path: Path) -> tuple[dict[str, tuple[Region, ...]], list[SkippedItem]]:
    """COCO instance annotations: {image file_name: regions}; images without annotations map to ()."""
    data = _read_json(path, "COCO")
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("annotations"), list):
        raise ChexmixInputError("not a COCO annotation file: needs 'images' and 'annotations' lists", path)
    categories = {c.get("id"): str(c.get("name", DEFAULT_LESION_TYPE)) for c in data.get("categories", [])
                  if isinstance(c, dict)}
    names = {im.get("id"): im.get("file_name") for im in data["images"] if isinstance(im, dict)}
    regions: dict[str, list[Region]] = {name: [] for name in names.values() if isinstance(name, str)}
    skipped: list[SkippedItem] = []
    for ann in data["annotations"]:
        name = names.get(ann.get("image_id")) if isinstance(ann, dict) else None
        item = f"{Path(path).name}: annotation {ann.get('id') if isinstance(ann, dict) else '?'}"
        if name is None:
            skipped.append(SkippedItem(item, "annotation refers to an image id not in 'images'"))
            continue
        # CheXMix's own COCO export keeps the lesion type per annotation; others have categories.
        lesion_type = ann.get("lesion_type") or categories.get(ann.get("category_id"), DEFAULT_LESION_TYPE)
        segmentation = ann.get("segmentation")
        if isinstance(segmentation, list) and segmentation:
            for polygon in segmentation:
                if not isinstance(polygon, list) or len(polygon) < 6 or len(polygon) % 2:
                    skipped.append(SkippedItem(item, "polygon needs an even number (>= 6) of coordinates"))
                    continue
                regions[name].append(PolygonRegion(tuple(float(v) for v in polygon[0::2]),
                                                   tuple(float(v) for v in polygon[1::2]), lesion_type))
        elif isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
            counts = segmentation["counts"]
            frozen = (("size", tuple(int(v) for v in segmentation["size"])),
                      ("counts", tuple(counts) if isinstance(counts, list) else counts))
            regions[name].append(RLERegion(frozen, lesion_type))
        else:
            skipped.append(SkippedItem(item, "annotation has no polygon or RLE segmentation"))
    return {name: tuple(r) for name, r in regions.items()}, skipped
