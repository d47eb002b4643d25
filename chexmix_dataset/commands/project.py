"""``chexmix project CT [MASK] --out DIR``: one CT to a frontal X-ray with lesion instances."""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from ..atomic import atomic_dir, check_replaceable, write_json
from ..lesions import coco_object, union_mask
from ..overlay import draw_overlay
from ..projection import MAX_SIZE_PX, ProjectorOptions, project_volume
from ..volume import SLICE_ORDERS, load_ct


OUTPUT_NAMES = ("xray.png", "mask.png", "overlay.png", "instances.json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ct", type=Path, help="CT: NIfTI file in HU (scaled or not), a folder of DICOM CT slices "
                        "(one series), or a folder of axial slice images (8-bit grey or 16-bit stored values)")
    parser.add_argument("mask", type=Path, nargs="?",
                        help="lesion label mask on the CT's grid: NIfTI (any CT), or a slice folder (slice-folder CTs)")
    parser.add_argument("--out", type=Path, required=True, help="output folder; a previous output there is replaced whole, a folder of other files is refused")
    parser.add_argument("--mode", choices=("physics", "seed"), default="physics",
                        help="physics (Beer-Lambert, default) or seed (the published algorithm)")
    parser.add_argument("--size", type=int, default=512,
                        help=f"physics mode: longer image side in px, 8 to {MAX_SIZE_PX} (512)")
    parser.add_argument("--min-lesion-mm", type=float, default=None,
                        help="least path through a lesion for a lesion pixel, mm (default: one voxel)")
    parser.add_argument("--min-area-mm2", type=float, default=4.0,
                        help="drop projected lesions smaller than this, mm^2 (4)")
    parser.add_argument("--slice-spacing", type=float, nargs=3, default=(1.0, 1.0, 1.0),
                        metavar=("ROW_MM", "COL_MM", "SLICE_MM"),
                        help="voxel size assumed for slice folders, each positive (1 1 1)")
    parser.add_argument("--slice-order", choices=SLICE_ORDERS, default="inferior-first",
                        help="slice folders: the first file in natural name order is the most inferior slice "
                        "(inferior-first, default, as the published tool assumes) or the most superior "
                        "(superior-first, the usual DICOM export order); NIfTI and DICOM carry their own")
    parser.add_argument("--slice-hu-intercept", type=float, default=None, metavar="HU",
                        help="16-bit slice folders: HU = value + HU (default -1024 for unsigned values, "
                        "0 for signed); 8-bit slices are display grey mapped to -1000..1000 HU")


def run(args: argparse.Namespace) -> int:
    check_replaceable(args.out, OUTPUT_NAMES)  # before the work: fail fast on a folder of other files
    options = ProjectorOptions(mode=args.mode, size_px=args.size, min_lesion_mm=args.min_lesion_mm,
                               min_area_mm2=args.min_area_mm2)
    ct = load_ct(args.ct, args.mask, slice_spacing_mm=tuple(args.slice_spacing), slice_order=args.slice_order,
                 slice_hu_intercept=args.slice_hu_intercept)
    projection = project_volume(ct, options)
    height, width = projection.image.shape
    with atomic_dir(args.out, replaces=OUTPUT_NAMES) as tmp:
        Image.fromarray(projection.image).save(tmp / "xray.png")
        Image.fromarray(union_mask(projection.instances, (height, width))).save(tmp / "mask.png")
        Image.fromarray(draw_overlay(projection.image, projection.instances)).save(tmp / "overlay.png")
        write_json(tmp / "instances.json", {
            "ct": str(args.ct),
            "mask": None if args.mask is None else str(args.mask),
            "mode": options.mode,
            "width": width,
            "height": height,
            "pixel_spacing_mm": list(projection.pixel_spacing_mm),
            "instances": [coco_object(inst, i) for i, inst in enumerate(projection.instances)],
        })
    types = sorted({inst.lesion_type for inst in projection.instances})
    print(f"{args.out}: {width}x{height} px X-ray ({options.mode}), {len(projection.instances)} lesion "
          f"instance(s){' (' + ', '.join(types) + ')' if types else ''}")
    return 0
