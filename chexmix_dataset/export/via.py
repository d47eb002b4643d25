"""Export a CheXMix DatasetDict in the VIA 2.0 polygon layout that Matterport Mask R-CNN reads.

The paper trained Matterport's Mask R-CNN through its balloon sample
(``samples/balloon/balloon.py``, ``BalloonDataset.load_balloon(dataset_dir, subset)``), which
reads ``dataset_dir/{train,val}/via_region_data.json`` with the images in the same folder.
CheXMix ``train`` becomes ``train/`` and ``test`` becomes ``val/``; any other split keeps its
own name (balloon.py never reads it)::

    out_dir/train/via_region_data.json    out_dir/train/{image_id}.png
    out_dir/val/via_region_data.json      out_dir/val/{image_id}.png

The JSON is a VIA 2.0 export: entries keyed by file name + file size in bytes, each with
``filename``, ``size``, ``file_attributes`` (CheXMix provenance) and ``regions``, a list of
``{"shape_attributes": {"name": "polygon", "all_points_x": [...], "all_points_y": [...]},
"region_attributes": {"lesion_type": ..., "instance_id": ...}}``.

Polygons are the outer outlines of each lesion mask, traced at the 0.5 iso-line between lesion
and background pixel centres (x right, y down, px, pixel centres at integers, as
``skimage.draw.polygon`` rasterises them), so coordinates are multiples of 0.5 and may reach
-0.5 or size - 0.5 at the image border. Holes in a lesion are filled; a lesion in several pieces
gives one region per piece, all with the same ``instance_id`` (balloon.py makes one instance per
region).

Images without lesions are kept in the JSON with ``regions: []``, as VIA itself does; note that
balloon.py skips them (``annotations = [a for a in annotations if a['regions']]``), so Matterport
never sees lesion-free images unless its loader is changed.
"""

from __future__ import annotations

import os
from pathlib import Path

import contourpy
import datasets
import numpy as np

from chexmix_dataset.atomic import atomic_dir, write_json
from chexmix_dataset.dataset.lesions import decode_rle
from chexmix_dataset.errors import ChexmixInputError
from chexmix_dataset.export.common import check_out_dir, grey_png, image_file_name, iter_rows

SUBSET_OF_SPLIT = {"train": "train", "test": "val"}
TOP_LEVEL = tuple(SUBSET_OF_SPLIT.values())


def _drop_collinear(ring: np.ndarray) -> np.ndarray:
    """Remove vertices that lie on the straight line through their neighbours (closed ring)."""
    previous, following = np.roll(ring, 1, axis=0), np.roll(ring, -1, axis=0)
    cross = ((ring[:, 0] - previous[:, 0]) * (following[:, 1] - ring[:, 1])
             - (ring[:, 1] - previous[:, 1]) * (following[:, 0] - ring[:, 0]))
    return ring[cross != 0]


def mask_to_polygons(mask: np.ndarray) -> list[np.ndarray]:
    """Outer outlines of a binary (H, W) mask: one (N, 2) float array of (x, y) px per piece.

    Vertices are in pixel-centre coordinates (pixel (row r, column c) is the point x = c, y = r);
    the outline runs half a pixel outside the outermost lesion pixel centres, so rasterising it
    by "pixel centre inside polygon" gives back the mask with its holes filled. Rings are open
    (the first vertex is not repeated) and have at least 3 vertices.
    """
    mask = np.asarray(mask).astype(bool)
    if not mask.any():
        return []
    height, width = mask.shape
    # Zero padding closes the outline of a lesion that touches the image border.
    padded = np.pad(mask.astype(np.float64), 1)
    generator = contourpy.contour_generator(np.arange(-1, width + 1), np.arange(-1, height + 1), padded,
                                            fill_type=contourpy.FillType.OuterOffset)
    points_per_piece, offsets_per_piece = generator.filled(0.5, 2.0)
    outlines = []
    for points, offsets in zip(points_per_piece, offsets_per_piece):
        outer = points[offsets[0]:offsets[1] - 1]  # the first ring is the outer one; drop the closing vertex
        outer = _drop_collinear(outer)
        if len(outer) >= 3:
            outlines.append(outer)
    return outlines


def via_regions(row: dict) -> list[dict]:
    """VIA 2.0 polygon regions for every lesion instance of a CheXMix row."""
    objects = row["objects"]
    regions = []
    for instance_id, segmentation, lesion_type in zip(objects["id"], objects["segmentation"],
                                                      objects["lesion_type"]):
        for outline in mask_to_polygons(decode_rle(segmentation)):
            regions.append({
                "shape_attributes": {"name": "polygon",
                                     "all_points_x": [float(x) for x in outline[:, 0]],
                                     "all_points_y": [float(y) for y in outline[:, 1]]},
                "region_attributes": {"lesion_type": lesion_type, "instance_id": int(instance_id)},
            })
    return regions


def via_subset(dataset: datasets.DatasetDict, split: str, subset_dir: Path) -> dict:
    """Write one split's PNGs into ``subset_dir`` and return its VIA 2.0 project dict."""
    subset_dir.mkdir(parents=True, exist_ok=True)
    entries = {}
    for row in iter_rows(dataset, split, desc="VIA"):
        file_name = image_file_name(row["image_id"], split)
        png, _, _ = grey_png(row, split)
        (subset_dir / file_name).write_bytes(png)
        entries[f"{file_name}{len(png)}"] = {
            "filename": file_name,
            "size": len(png),
            "regions": via_regions(row),
            "file_attributes": {key: row[key] for key in ("image_id", "source", "origin", "patient_id", "license")},
        }
    return entries


def export_via(dataset: datasets.DatasetDict, out_dir: str | os.PathLike, *, overwrite: bool = False
               ) -> dict[str, Path]:
    """Write ``dataset`` as Matterport/balloon VIA folders under ``out_dir``, which appears all at once.

    Returns:
        CheXMix split name -> path of its ``via_region_data.json`` (``train/``, ``val/``, ...).
    Raises:
        ChexmixInputError: ``out_dir`` exists and not ``overwrite``, two splits map to one folder,
            or a row is inconsistent.
    """
    out_dir = check_out_dir(out_dir, overwrite)
    subsets = {split: SUBSET_OF_SPLIT.get(split, split) for split in dataset}
    for split, subset in subsets.items():
        clashing = [other for other, other_subset in subsets.items() if other_subset == subset and other != split]
        if clashing:
            raise ChexmixInputError(f"splits {split!r} and {clashing[0]!r} would both be written to {subset}/")
    with atomic_dir(out_dir, replaces=set(subsets.values()) | set(TOP_LEVEL)) as tmp:
        for split, subset in subsets.items():
            write_json(tmp / subset / "via_region_data.json", via_subset(dataset, split, tmp / subset))
    return {split: out_dir / subset / "via_region_data.json" for split, subset in subsets.items()}
