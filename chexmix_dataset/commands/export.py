"""``chexmix export {coco,via} --config C --out DIR``: write a config as COCO or as VIA folders.

``coco``: ``DIR/images/{split}/*.png`` + ``DIR/annotations/instances_{split}.json``.
``via``: ``DIR/train`` and ``DIR/val`` with ``via_region_data.json``, the layout that Matterport
Mask R-CNN's balloon sample (the paper's training code) reads. DIR appears only when complete.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from chexmix_dataset.atomic import check_replaceable
from chexmix_dataset.export import EXPORTERS, TOP_LEVEL
from chexmix_dataset.export.common import check_out_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from chexmix_dataset.commands.dataset_args import (
        add_dataset_arguments,  # imports the builder: only when `export` is used
    )

    parser.add_argument("format", choices=sorted(EXPORTERS), help="coco (instances_*.json, RLE masks) or via "
                        "(Matterport Mask R-CNN balloon layout, polygons)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (written atomically)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it holds a previous export (default: refuse)")
    add_dataset_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from chexmix_dataset.commands.dataset_args import load_dataset_from_args

    # Refuse a bad --out before building, which may mean downloads and hours of projecting.
    check_replaceable(check_out_dir(args.out, args.overwrite, "--overwrite"), TOP_LEVEL[args.format])
    dataset = load_dataset_from_args(args)
    paths = EXPORTERS[args.format](dataset, args.out, overwrite=args.overwrite)
    for split, path in paths.items():
        print(f"{split}: {len(dataset[split])} images -> {path}")
    if args.format == "via":
        empty = sum(1 for split in dataset for n in dataset[split]["objects"] if not n["id"])
        if empty:
            print(f"note: {empty} image(s) without lesions are listed with no regions; "
                  "Matterport's balloon loader skips them")
    return 0
