"""Reading 2D image files upright, as viewers (and annotation tools such as VIA) show them.

Phones, scanners and some exporters store pixels sideways with an EXIF Orientation tag; every
image CheXMix reads (CXRs, their masks, CT slice images) goes through :func:`open_upright`, so
pixel coordinates are those of the displayed image: x the column from the left edge, y the row
from the top edge, in px.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from chexmix_dataset.errors import ChexmixInputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

# EXIF Orientation values that swap width and height (rotations by 90 degrees, transpositions).
_SWAPPING_ORIENTATIONS = (5, 6, 7, 8)
_ORIENTATION_TAG = 0x0112
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")


def _png_exif_follows_pixels(path: str | Path) -> bool:
    """Whether a PNG has an eXIf chunk after its pixel data (PIL reads those only on load).

    Walks the chunk headers without decompressing anything.
    """
    with open(path, "rb") as handle:
        handle.seek(8)  # the PNG signature
        while True:
            header = handle.read(8)
            if len(header) < 8:
                return False
            length, kind = int.from_bytes(header[:4], "big"), header[4:]
            if kind == b"eXIf":
                return True
            if kind == b"IEND":
                return False
            handle.seek(length + 4, 1)  # chunk data and CRC


def _orientation(image: Image.Image, path: str | Path) -> int:
    """The EXIF Orientation (1-8; 1 = stored as displayed) of an open image, read from its header."""
    if image.format == "PNG" and "exif" not in image.info:
        if not _png_exif_follows_pixels(path):
            return 1
        image.load()
    return int(image.getexif().get(_ORIENTATION_TAG, 1) or 1)


def open_upright(path: str | Path) -> tuple[Image.Image, str]:
    """The decoded image of ``path`` as viewers (and VIA) display it (EXIF Orientation applied),
    and the file's format as PIL names it ("PNG", "JPEG", ...).

    Phones and some scanners store JPEGs sideways with an Orientation tag; polygons drawn in a
    viewer are in the displayed frame, so every pixel CheXMix reads is in that frame too.
    Unreadable files raise ChexmixInputError naming the file.
    """
    try:
        with Image.open(path) as image:
            image.load()
            return ImageOps.exif_transpose(image), (image.format or "").upper()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ChexmixInputError(f"cannot read image (corrupt or not an image?): {exc}", path) from None


def read_grey_image(path: str | Path) -> np.ndarray:
    """A (height, width) uint8 array of an image file, upright (EXIF Orientation applied).

    8-bit files are read as stored (colour converted to luminance by PIL's ITU-R 601 weights).
    16-bit (and 32-bit integer or float) files, as CXRs exported from DICOM often are, are mapped
    linearly from the image's own minimum..maximum to 0..255, rounded: a 12-bit exposure stored
    in 16 bits keeps its full contrast instead of landing in the bottom 16 grey levels, and the
    image's darkest and brightest pixels become 0 and 255. An image of one value becomes all 0.
    """
    path = Path(path)
    if not path.exists():
        raise ChexmixInputError("image file does not exist", path)
    image, _ = open_upright(path)
    try:
        if image.mode in (*SIXTEEN_BIT_MODES, "I", "F"):
            array = np.asarray(image, dtype=np.float64)
            low, high = float(array.min()), float(array.max())
            scale = 255.0 / (high - low) if high > low else 0.0
            return np.rint((array - low) * scale).astype(np.uint8)
        return np.asarray(image.convert("L"), dtype=np.uint8).copy()
    except (OSError, ValueError) as exc:
        raise ChexmixInputError(f"cannot convert image of mode {image.mode} to grey: {exc}", path) from None


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) in px as displayed (EXIF Orientation applied), from the file header.

    Corrupt files raise ChexmixInputError.
    """
    try:
        with Image.open(path) as image:
            width, height = image.size
            if _orientation(image, path) in _SWAPPING_ORIENTATIONS:
                width, height = height, width
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ChexmixInputError(f"cannot read image header (corrupt or not an image?): {exc}", path) from None
    return height, width
