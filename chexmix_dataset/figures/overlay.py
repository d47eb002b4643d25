"""Lesion outlines drawn on grey images: one overlay image, or a titled grid of dataset rows.

Images are (height, width) arrays, row 0 at the top, column 0 at the left (radiograph layout:
the patient's right on the image's left). Colours are RGB uint8, one per lesion type, shared by
:func:`draw_overlay` (``chexmix project``'s overlay.png) and :func:`save_grid` (``chexmix show``).
"""

from __future__ import annotations

import io
import os
import zlib
from typing import Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from chexmix_dataset.atomic import atomic_file
from chexmix_dataset.dataset.lesions import LesionInstance, decode_rle

RGB = tuple[int, int, int]

# Okabe-Ito colours, readable by colour-blind viewers and distinct from grey anatomy.
LESION_COLOURS: dict[str, RGB] = {
    "ground_glass": (240, 228, 66),  # yellow
    "consolidation": (213, 94, 0),  # vermillion
    "infection": (204, 121, 167),  # reddish purple
    "lesion": (86, 180, 233),  # sky blue
}
_SPARE_COLOURS: tuple[RGB, ...] = ((0, 158, 115), (230, 159, 0), (0, 114, 178), (255, 255, 255))


def lesion_colour(lesion_type: str) -> RGB:
    """The outline colour of a lesion type; unknown types get a stable colour from a spare set."""
    if lesion_type in LESION_COLOURS:
        return LESION_COLOURS[lesion_type]
    # crc32, not hash(): the colour of a type must not change between runs.
    return _SPARE_COLOURS[zlib.crc32(lesion_type.encode()) % len(_SPARE_COLOURS)]


def _as_instances(lesions: Sequence[LesionInstance] | np.ndarray, shape: tuple[int, int]) -> list[LesionInstance]:
    if isinstance(lesions, np.ndarray):
        if lesions.shape != shape:
            raise ValueError(f"mask shape {lesions.shape} differs from image shape {shape}")
        return [LesionInstance(mask=lesions > 0, lesion_type="lesion")] if lesions.any() else []
    for instance in lesions:
        if instance.mask.shape != shape:
            raise ValueError(f"lesion mask shape {instance.mask.shape} differs from image shape {shape}")
    return list(lesions)


def outline(mask: np.ndarray, thickness_px: int = 1) -> np.ndarray:
    """The band of ``thickness_px`` pixels just inside a binary mask's edge, as a bool (H, W) array.

    Pixels on the image border count as edge, so a lesion cut by the border is outlined there too.
    """
    if thickness_px < 1:
        raise ValueError(f"outline thickness must be at least 1 px, got {thickness_px}")
    mask = mask.astype(bool)
    # Erosion by the 4-neighbour cross, outside the image counting as background (scipy's
    # binary_erosion with border_value=0), in numpy: outlines are drawn by `chexmix project`,
    # which does not import scipy.
    inner = mask
    for _ in range(thickness_px):
        padded = np.pad(inner, 1, constant_values=False)
        inner = (padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1]
                 & padded[1:-1, :-2] & padded[1:-1, 2:])
    return mask & ~inner


def _legend_font(size_px: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size_px)
    except (TypeError, ImportError, OSError):  # Pillow without FreeType: fixed-size bitmap font
        return ImageFont.load_default()


def _draw_legend(rgb: np.ndarray, lesion_types: Sequence[str]) -> np.ndarray:
    """Lesion-type keys in the top-left corner on a dark box, scaled to the image."""
    canvas = Image.fromarray(rgb)
    draw = ImageDraw.Draw(canvas, "RGBA")
    height, width = rgb.shape[:2]
    font_px = max(8, min(height, width) // 28)
    font = _legend_font(font_px)
    pad, swatch = font_px // 2, font_px
    labels = [name.replace("_", " ") for name in lesion_types]
    text_w = max(int(draw.textlength(label, font=font)) for label in labels)
    line_h = font_px + pad
    box = (pad, pad, 3 * pad + swatch + text_w + pad, pad + pad + len(labels) * line_h)
    if box[2] > width // 2 or box[3] > height // 2:
        return rgb  # a key covering half the image would hide more than it explains
    draw.rectangle(box, fill=(0, 0, 0, 160))
    for k, (name, label) in enumerate(zip(lesion_types, labels)):
        top = 2 * pad + k * line_h
        draw.rectangle((2 * pad, top, 2 * pad + swatch, top + swatch), outline=lesion_colour(name),
                       width=max(1, swatch // 5))
        draw.text((3 * pad + swatch, top + swatch / 2), label, fill=(255, 255, 255), font=font, anchor="lm")
    return np.asarray(canvas)


def draw_overlay(
    image: np.ndarray,
    lesions: Sequence[LesionInstance] | np.ndarray,
    *,
    thickness_px: int | None = None,
    fill_alpha: float = 0.15,
    legend: bool = True,
) -> np.ndarray:
    """Draw lesion outlines, coloured by lesion type, on a grey image.

    Args:
        image: (H, W) uint8 grey image.
        lesions: lesion instances with (H, W) masks, or one (H, W) union mask (any nonzero pixel
            is lesion, drawn as type "lesion").
        thickness_px: outline width in px; default about 1/256 of the shorter side, at least 1.
        fill_alpha: opacity of the lesion-coloured tint inside each lesion (0 for outlines only).
        legend: add a key of the lesion types present in the top-left corner.

    Returns:
        (H, W, 3) uint8 RGB image.
    """
    if image.ndim != 2 or image.dtype != np.uint8:
        raise ValueError(f"image must be a 2D uint8 array, got {image.dtype} {image.shape}")
    instances = _as_instances(lesions, image.shape)
    thickness = thickness_px or max(1, round(min(image.shape) / 256))
    rgb = np.repeat(image[..., None], 3, axis=2).astype(np.float32)
    for instance in instances:
        colour = np.asarray(lesion_colour(instance.lesion_type), dtype=np.float32)
        inside = instance.mask.astype(bool)
        rgb[inside] = (1 - fill_alpha) * rgb[inside] + fill_alpha * colour
    # Outlines after all tints, so that an overlapping lesion's tint cannot dim another's edge.
    for instance in instances:
        rgb[outline(instance.mask, thickness)] = lesion_colour(instance.lesion_type)
    rgb_uint8 = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    present = sorted({instance.lesion_type for instance in instances})
    return _draw_legend(rgb_uint8, present) if legend and present else rgb_uint8


def save_png(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a (H, W) grey or (H, W, 3) RGB uint8 array as a PNG, atomically."""
    if array.dtype != np.uint8 or array.ndim not in (2, 3):
        raise ValueError(f"expected a (H, W) or (H, W, 3) uint8 array, got {array.dtype} {array.shape}")
    with atomic_file(path, "wb") as handle:
        Image.fromarray(array).save(handle, format="PNG")


def row_instances(row: dict) -> list[LesionInstance]:
    """The lesion instances of a CheXMix row (``objects`` as a dict of lists, RLE masks)."""
    objects = row["objects"]
    return [LesionInstance(mask=decode_rle(segmentation), lesion_type=lesion_type)
            for segmentation, lesion_type in zip(objects["segmentation"], objects["lesion_type"])]


def save_grid(rows: Iterable[dict], path: str | os.PathLike, *, n_cols: int = 4, title: str | None = None,
              tile_inches: float = 3.0, dpi: int = 110, tile_titles: Sequence[str] | None = None) -> None:
    """Draw CheXMix rows as a grid of tiles with lesion outlines and write it as a PNG, atomically.

    Each tile shows the grey image with every lesion's outline (its 0.5 iso-line, so it stays
    visible when a large image is shrunk to a tile) in its lesion type's colour, and a title with
    the image id, source and lesion count (or ``tile_titles``, one per row). A legend lists the
    lesion types shown.
    """
    # matplotlib is slow to import; only `show` needs it.
    from matplotlib import patheffects
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    rows = list(rows)
    if not rows:
        raise ValueError("no rows to draw")
    if tile_titles is not None and len(tile_titles) != len(rows):
        raise ValueError(f"{len(tile_titles)} tile titles for {len(rows)} rows")
    n_cols = max(1, min(n_cols, len(rows)))
    n_rows = -(-len(rows) // n_cols)
    figure = Figure(figsize=(tile_inches * n_cols, tile_inches * n_rows + 0.9), dpi=dpi, layout="constrained")
    axes = figure.subplots(n_rows, n_cols, squeeze=False)
    types_shown: set[str] = set()
    # A dark halo under each outline keeps yellow readable on bright anatomy.
    halo = [patheffects.Stroke(linewidth=2.8, foreground=(0, 0, 0, 0.6)), patheffects.Normal()]
    for index, (ax, row) in enumerate(zip(axes.flat, rows)):
        image = np.asarray(row["image"].convert("L"))
        ax.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="antialiased")
        instances = row_instances(row)
        for instance in instances:
            if instance.mask.any():
                # Pad so that a lesion cut by the image border still gets a closed outline.
                padded = np.pad(instance.mask.astype(np.float32), 1)
                yy, xx = np.mgrid[-1:image.shape[0] + 1, -1:image.shape[1] + 1]
                contours = ax.contour(xx, yy, padded, levels=[0.5], linewidths=1.3,
                                      colors=[np.asarray(lesion_colour(instance.lesion_type)) / 255])
                contours.set_path_effects(halo)
                types_shown.add(instance.lesion_type)
        ax.set_xlim(-0.5, image.shape[1] - 0.5)
        ax.set_ylim(image.shape[0] - 0.5, -0.5)
        ax.set_title(tile_titles[index] if tile_titles is not None
                     else f"{row['image_id']}\n{row['source']} · {len(instances)} lesion(s)", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes.flat[len(rows):]:
        ax.set_axis_off()
    if types_shown:
        handles = [Line2D([], [], color=np.asarray(lesion_colour(name)) / 255, linewidth=2.5,
                          label=name.replace("_", " ")) for name in sorted(types_shown)]
        figure.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False,
                      title="lesion outlines")
    if title:
        figure.suptitle(title)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", facecolor="white")
    with atomic_file(path, "wb") as handle:
        handle.write(buffer.getvalue())
