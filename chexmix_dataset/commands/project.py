"""``chexmix project CT [MASK] --out DIR``: one CT to a frontal X-ray with lesion instances."""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from chexmix_dataset.atomic import atomic_dir, check_replaceable, write_json
from chexmix_dataset.ct.volume import SLICE_ORDERS, load_ct
from chexmix_dataset.dataset.lesions import coco_object, union_mask
from chexmix_dataset.figures.overlay import draw_overlay
from chexmix_dataset.projector import (
    BEAMS,
    DEFAULT_SID_MM,
    DISPLAYS,
    GEOMETRIES,
    MAX_SIZE_PX,
    ProjectorOptions,
    project_volume,
)

OUTPUT_NAMES = ("xray.png", "mask.png", "overlay.png", "instances.json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ct", type=Path, help="CT: NIfTI file in HU (scaled or not), a folder of DICOM CT slices "
                        "(one series), or a folder of axial slice images (8-bit grey or 16-bit stored values)")
    parser.add_argument("mask", type=Path, nargs="?",
                        help="lesion label mask on the CT's grid: NIfTI (any CT), or a slice folder (slice-folder CTs)")
    parser.add_argument("--out", type=Path, required=True, help="output folder; a previous output there is replaced whole, a folder of other files is refused")
    parser.add_argument("--mode", choices=("physics", "seed"), default="physics",
                        help="physics (Beer-Lambert) or seed (the published algorithm) (default: %(default)s)")
    parser.add_argument("--size", type=int, default=512,
                        help=f"physics mode: longer image side in px, 8 to {MAX_SIZE_PX} (default: %(default)s)")
    parser.add_argument("--min-lesion-mm", type=float, default=None,
                        help="least path through a lesion for a lesion pixel, mm (default: one voxel)")
    parser.add_argument("--min-area-mm2", type=float, default=4.0,
                        help="drop projected lesions smaller than this, mm^2 (default: 4)")
    add_geometry_arguments(parser.add_argument_group("geometry"))
    parser.add_argument("--device", default="cpu", metavar="cpu|cuda",
                        help="where to render: cpu (numpy) or cuda / cuda:N (torch on that GPU) (default: %(default)s)")
    parser.add_argument("--slice-spacing", type=float, nargs=3, default=(1.0, 1.0, 1.0),
                        metavar=("ROW_MM", "COL_MM", "SLICE_MM"),
                        help="voxel size assumed for slice folders, mm, each positive (default: 1 1 1)")
    parser.add_argument("--slice-order", choices=SLICE_ORDERS, default="inferior-first",
                        help="slice folders: the first file in natural name order is the most inferior slice "
                        "(inferior-first, default, as the published tool assumes) or the most superior "
                        "(superior-first, the usual DICOM export order); NIfTI and DICOM carry their own")
    parser.add_argument("--slice-hu-intercept", type=float, default=None, metavar="HU",
                        help="16-bit slice folders: HU = value + HU (default -1024 for unsigned values, "
                        "0 for signed); 8-bit slices are display grey mapped to -1000..1000 HU")


def add_geometry_arguments(group: argparse._ActionsContainer, defaults_from_config: bool = False) -> None:
    """--geometry, --beam, --sid-mm, --sod-mm, --detector-pixel-mm, --view-deg, --tilt-deg (:class:`ProjectorOptions`).

    ``defaults_from_config``: leave every option unset (None) so that a config's projector keeps its own.
    """
    unset = None if defaults_from_config else argparse.SUPPRESS
    group.add_argument("--geometry", choices=GEOMETRIES, default=None if defaults_from_config else "parallel",
                       help="parallel rays along anterior-posterior, as the published tool, or cone "
                       "(point source, flat detector; physics mode) (default: parallel)")
    group.add_argument("--beam", choices=BEAMS, default=None if defaults_from_config else "PA",
                       help="cone: PA (source behind the patient) or AP (source in front, portable films) (default: PA)")
    group.add_argument("--sid-mm", type=float, default=unset,
                       help=f"cone: source-to-detector distance, mm (default: PA {DEFAULT_SID_MM['PA']:g}, "
                            f"AP {DEFAULT_SID_MM['AP']:g})")
    group.add_argument("--sod-mm", type=float, default=unset,
                       help="cone: source to the CT grid's centre, mm (default: SID - 150)")
    group.add_argument("--detector-pixel-mm", type=float, default=unset,
                       help="cone: detector pitch, mm (default: the whole CT over --size px)")
    group.add_argument("--display", choices=DISPLAYS, default=None if defaults_from_config else "linear",
                       help="physics mode: linear window of -ln T, or radiograph (quantum noise, tissue "
                       "equalisation, unsharp mask, film-like response) (default: linear)")
    group.add_argument("--view-deg", type=float, default=None if defaults_from_config else 0.0,
                       help="patient turned about the superior-inferior axis, degrees (default: 0; positive: right side forward)")
    group.add_argument("--tilt-deg", type=float, default=None if defaults_from_config else 0.0,
                       help="patient tilted about the right-left axis, degrees, at most 30 either way "
                            "(default: 0; positive: leaning back, as a lordotic view)")


GEOMETRY_OPTIONS = ("geometry", "beam", "sid_mm", "sod_mm", "detector_pixel_mm", "view_deg", "tilt_deg", "display")


def geometry_options(args: argparse.Namespace) -> dict:
    """The ProjectorOptions fields the geometry arguments set (unset ones left out)."""
    return {name: getattr(args, name) for name in GEOMETRY_OPTIONS if getattr(args, name, None) is not None}


def run(args: argparse.Namespace) -> int:
    check_replaceable(args.out, OUTPUT_NAMES)  # before the work: fail fast on a folder of other files
    options = ProjectorOptions(mode=args.mode, size_px=args.size, min_lesion_mm=args.min_lesion_mm,
                               min_area_mm2=args.min_area_mm2, device=args.device, **geometry_options(args))
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
            "geometry": _geometry_record(options),
            "display": options.display,
            "width": width,
            "height": height,
            "pixel_spacing_mm": list(projection.pixel_spacing_mm),
            "instances": [coco_object(inst, i) for i, inst in enumerate(projection.instances)],
        })
    types = sorted({inst.lesion_type for inst in projection.instances})
    print(f"{args.out}: {width}x{height} px X-ray ({options.mode}, {options.geometry}), {len(projection.instances)} lesion "
          f"instance(s){' (' + ', '.join(types) + ')' if types else ''}")
    return 0


def _geometry_record(options: ProjectorOptions) -> dict:
    """What instances.json says about the rays: the geometry, the beam and its distances in mm."""
    record = {"type": options.geometry, "view_deg": options.view_deg, "tilt_deg": options.tilt_deg}
    if options.geometry == "cone":
        record.update(beam=options.beam, sid_mm=options.source_to_detector_mm, sod_mm=options.source_to_isocentre_mm)
    return record
