"""Export a CheXMix DatasetDict as COCO instance segmentation (one annotation file per split).

Layout (what torchvision's ``CocoDetection(root=images/{split}, annFile=...)`` and detectron2's
``register_coco_instances`` read)::

    out_dir/images/{split}/{image_id}.png          8-bit grey, as stored in the dataset
    out_dir/annotations/instances_{split}.json

Masks are COCO compressed RLE with ``iscrowd = 0`` (one annotation per lesion instance), boxes
are ``[x, y, width, height]`` in px with the origin at the top-left image corner. Each image
keeps CheXMix provenance as extra keys (``chexmix_image_id``, ``source``, ``origin``,
``patient_id``, ``license_name``); its COCO ``license`` is an id into ``licenses``.
"""

from __future__ import annotations

import os
from pathlib import Path

import datasets

from chexmix_dataset import __version__
from chexmix_dataset.atomic import atomic_dir, write_json
from chexmix_dataset.dataset.features import CATEGORY_NAMES
from chexmix_dataset.export.common import check_out_dir, grey_png, image_file_name, iter_rows

CATEGORIES = [{"id": index + 1, "name": name, "supercategory": "lung"} for index, name in enumerate(CATEGORY_NAMES)]


#: what an export holds at its top level: an existing folder holding only these is replaced.
TOP_LEVEL = ("images", "annotations")

def coco_split(dataset: datasets.DatasetDict, split: str, image_dir: Path) -> dict:
    """Write one split's PNGs into ``image_dir`` and return its COCO annotation dict."""
    image_dir.mkdir(parents=True, exist_ok=True)
    images, annotations, license_ids = [], [], {}
    for row in iter_rows(dataset, split, desc="COCO"):
        file_name = image_file_name(row["image_id"], split)
        png, width, height = grey_png(row, split)
        (image_dir / file_name).write_bytes(png)
        license_id = license_ids.setdefault(row["license"], len(license_ids) + 1)
        # COCO ids start at 1: COCOeval treats a matched ground-truth id of 0 as "unmatched".
        image_id = len(images) + 1
        images.append({
            "id": image_id, "file_name": file_name, "width": width, "height": height, "license": license_id,
            "chexmix_image_id": row["image_id"], "source": row["source"], "origin": row["origin"],
            "patient_id": row["patient_id"], "license_name": row["license"], "view_deg": row.get("view_deg"),
        })
        objects = row["objects"]
        for k in range(len(objects["id"])):
            annotations.append({
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": int(objects["category"][k]) + 1,
                "segmentation": {"size": [int(v) for v in objects["segmentation"][k]["size"]],
                                 "counts": objects["segmentation"][k]["counts"]},
                "area": float(objects["area"][k]),
                "bbox": [float(v) for v in objects["bbox"][k]],
                "iscrowd": 0,
                "lesion_type": objects["lesion_type"][k],
            })
    return {
        "info": {"description": f"CheXMix {split} split: chest X-rays and CT projections with lung lesions",
                 "version": __version__, "contributor": "CheXMix exporter"},
        "licenses": [{"id": i, "name": name, "url": ""} for name, i in license_ids.items()],
        "categories": CATEGORIES,
        "images": images,
        "annotations": annotations,
    }


def export_coco(dataset: datasets.DatasetDict, out_dir: str | os.PathLike, *, overwrite: bool = False
                ) -> dict[str, Path]:
    """Write every split of ``dataset`` as COCO under ``out_dir``, which appears all at once.

    Returns:
        split name -> path of its ``annotations/instances_{split}.json`` (in the final ``out_dir``).
    Raises:
        ChexmixInputError: ``out_dir`` exists and not ``overwrite``, or a row is inconsistent.
    """
    out_dir = check_out_dir(out_dir, overwrite)
    with atomic_dir(out_dir, replaces=TOP_LEVEL) as tmp:
        for split in dataset:
            coco = coco_split(dataset, split, tmp / "images" / split)
            write_json(tmp / "annotations" / f"instances_{split}.json", coco)
    return {split: out_dir / "annotations" / f"instances_{split}.json" for split in dataset}
