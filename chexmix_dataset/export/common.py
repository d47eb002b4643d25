"""What both exporters share: checking rows, naming image files, encoding PNGs."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Iterator

import datasets
from tqdm.auto import tqdm

from chexmix_dataset.errors import ChexmixInputError


def check_out_dir(out_dir: str | os.PathLike, overwrite: bool, overwrite_option: str = "overwrite=True") -> Path:
    """Refuse an existing ``out_dir`` unless ``overwrite`` or empty: the export replaces it entirely.

    Even with ``overwrite``, only a previous export is replaced (:func:`..atomic.atomic_dir`);
    an empty folder (made beforehand, as job scripts do) is used as every command uses it.
    ``overwrite_option``: how the caller asks for ``overwrite`` (``--overwrite`` on the command line).
    """
    out_dir = Path(out_dir)
    empty_folder = out_dir.is_dir() and not any(out_dir.iterdir())
    if out_dir.exists() and not overwrite and not empty_folder:
        raise ChexmixInputError(f"output folder already exists (give {overwrite_option} to replace it)", out_dir)
    return out_dir


def image_file_name(image_id: str, split: str) -> str:
    """``{image_id}.png``, refusing ids that are not a plain file name."""
    if not image_id or image_id in (".", "..") or "/" in image_id or "\\" in image_id or "\0" in image_id:
        raise ChexmixInputError(f"split {split!r}: image_id {image_id!r} cannot be used as a file name")
    return f"{image_id}.png"


def grey_png(row: dict, split: str) -> tuple[bytes, int, int]:
    """The row's image as PNG bytes (8-bit grey), with its width and height in px.

    Raises ChexmixInputError if the image disagrees with the row's ``width``/``height`` or with a
    lesion mask's size, since such a row would give a COCO/VIA file that trains on wrong labels.
    """
    image = row["image"]
    if image.mode != "L":
        image = image.convert("L")
    width, height = image.size
    if (width, height) != (row["width"], row["height"]):
        raise ChexmixInputError(f"split {split!r}, image {row['image_id']!r}: image is {width}x{height} px "
                                f"but the row says {row['width']}x{row['height']}")
    for size in row["objects"]["segmentation"]:
        if list(size["size"]) != [height, width]:
            raise ChexmixInputError(f"split {split!r}, image {row['image_id']!r}: a lesion mask is "
                                    f"{size['size'][1]}x{size['size'][0]} px, the image {width}x{height}")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue(), width, height


def iter_rows(dataset: datasets.DatasetDict, split: str, desc: str) -> Iterator[dict]:
    """Rows of one split with a progress bar, refusing duplicate image ids (they share a file)."""
    seen: set[str] = set()
    for row in tqdm(dataset[split], desc=f"{desc} {split}", unit="image"):
        if row["image_id"] in seen:
            raise ChexmixInputError(f"split {split!r}: image_id {row['image_id']!r} appears twice")
        seen.add(row["image_id"])
        yield row

