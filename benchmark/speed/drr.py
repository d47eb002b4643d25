"""CheXMix cone beam against DiffDRR: same phantom, matched geometry, NCC and time ratio.

DiffDRR (Gopalakrishnan & Golland) is installed on demand (``pip install diffdrr``); it is not
a dependency of CheXMix. Both render the line integral of the same attenuation volume
(``mu = max(mu_water * (1 + HU / 1000), 0)`` per mm, written into DiffDRR's density buffer so
that its HU-to-density mapping plays no part) on the same detector: DiffDRR's ``sdd``,
``height`` and ``delx``, orientation "AP" with the source ``sod`` mm from the isocentre
(rotation 0, translation (0, sod, 0)), which is CheXMix's ``beam="AP"`` with the same SID and
SOD. Targets (issue 11): NCC >= 0.99; on a 2-core CPU >= 50x faster than DiffDRR's Siddon at
512 x 512 (so under 0.8 s) and faster than its trilinear renderer at 200 x 200; on a GPU no
slower than DiffDRR's GPU time.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from benchmark.speed import print_table, synchronised
from benchmark.speed.projector import best_of
from chexmix_dataset.ct.volume import CTVolume
from chexmix_dataset.phantoms import chest_phantom
from chexmix_dataset.projector import (
    MU_WATER_60KEV_PER_MM,
    ConeGeometry,
    ProjectorOptions,
    cone_geometry,
    cone_line_integral,
    project_volume,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shape", type=int, nargs=3, default=(512, 512, 133), metavar=("NX", "NY", "NZ"))
    parser.add_argument("--sizes", type=int, nargs="+", default=(200, 512), help="detector sizes in px (200 512)")
    parser.add_argument("--renderers", nargs="*", default=("siddon", "trilinear"), choices=("siddon", "trilinear"),
                        help="DiffDRR's renderers to compare (siddon trilinear); none: time CheXMix alone, "
                             "e.g. on a machine where DiffDRR cannot be installed")
    parser.add_argument("--sdd", type=float, default=1020.0, help="source-to-detector distance, mm (1020)")
    parser.add_argument("--sod", type=float, default=850.0, help="source-to-isocentre distance, mm (850)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (both renderers on it)")
    parser.add_argument("--repeats", type=int, default=3, help="best of N for CheXMix (3); DiffDRR: best of --drr-repeats")
    parser.add_argument("--drr-repeats", type=int, default=1)
    parser.add_argument("--patch-size", type=int, default=128,
                        help="DiffDRR renders in patches of this many px a side (bounds its memory; 0: whole)")


def ncc(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised cross-correlation of two images (1: identical up to gain and offset)."""
    a = a.astype(np.float64) - a.mean()
    b = b.astype(np.float64) - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def _diffdrr(hu: np.ndarray, mu: np.ndarray, affine: np.ndarray, args, size: int, delx: float, renderer: str):
    try:
        import torchio
        from diffdrr.data import read
        from diffdrr.drr import DRR
    except ImportError as exc:  # pragma: no cover - optional
        raise SystemExit(f"DiffDRR is not installed ({exc}); pip install diffdrr") from exc
    subject = read(torchio.ScalarImage(tensor=torch.from_numpy(hu[None].astype(np.float32)), affine=affine),
                   orientation="AP")
    patch = args.patch_size if args.patch_size and size > args.patch_size else None
    drr = DRR(subject, sdd=args.sdd, height=size, delx=delx, renderer=renderer, patch_size=patch).to(args.device)
    drr.density.copy_(torch.from_numpy(mu))
    rotation = torch.zeros(1, 3, device=args.device)
    translation = torch.tensor([[0.0, args.sod, 0.0]], device=args.device)

    def render():
        with torch.no_grad():
            return drr(rotation, translation, parameterization="euler_angles", convention="ZXY")
    return render


def run(args: argparse.Namespace) -> int:
    phantom = chest_phantom(0, shape=tuple(args.shape), lesions=True)
    ct = CTVolume(phantom.hu, phantom.spacing_mm, phantom.affine, phantom.labels, True, "phantom")
    mu = np.maximum(MU_WATER_60KEV_PER_MM * (1.0 + phantom.hu.astype(np.float32) / 1000.0), 0.0).astype(np.float32)
    voxels = ct.voxels if args.device == "cpu" else torch.from_numpy(ct.voxels).to(args.device)
    project_device = "cpu" if args.device == "cpu" else args.device
    rows, passes = [], []
    print(f"Phantom {tuple(args.shape)} int16 with {phantom.lesion_count} lesion(s), spacing {tuple(round(s, 3) for s in phantom.spacing_mm)} mm; "
          f"sdd {args.sdd:g} mm, sod {args.sod:g} mm, AP; device {args.device}; torch threads {torch.get_num_threads()}.")
    for size in args.sizes:
        # A square detector holding the whole CT (CheXMix's default field), shared by both.
        field = cone_geometry(ct.shape, ct.spacing_mm, ProjectorOptions(geometry="cone", beam="AP", sid_mm=args.sdd,
                                                                        sod_mm=args.sod, size_px=size))
        delx = field.pixel_mm
        geometry = ConeGeometry(args.sdd, args.sod, "AP", delx, (size, size))
        ours = cone_line_integral(voxels, ct.spacing_mm, geometry, MU_WATER_60KEV_PER_MM)
        ours_s = best_of(args.repeats, synchronised(args.device, lambda: cone_line_integral(
            voxels, ct.spacing_mm, geometry, MU_WATER_60KEV_PER_MM)))
        options = ProjectorOptions(geometry="cone", beam="AP", sid_mm=args.sdd, sod_mm=args.sod, detector_pixel_mm=delx,
                                   size_px=size, device=project_device)
        full_s = best_of(args.repeats, synchronised(args.device, lambda: project_volume(ct, options)))
        rows.append({"renderer": "CheXMix cone (line integral)", "size": size, "seconds": f"{ours_s:.3f}"})
        rows.append({"renderer": "CheXMix project_volume (image + lesions)", "size": size, "seconds": f"{full_s:.3f}"})
        for renderer in args.renderers:
            render = _diffdrr(phantom.hu, mu, phantom.affine, args, size, delx, renderer)
            theirs = render()[0, 0].cpu().numpy()
            theirs_s = best_of(args.drr_repeats, synchronised(args.device, render))
            score = ncc(ours, theirs)
            rows.append({"renderer": f"DiffDRR {renderer}", "size": size, "seconds": f"{theirs_s:.3f}",
                         "NCC vs CheXMix": f"{score:.5f}", "gain (DiffDRR / CheXMix)": f"{theirs_s / ours_s:.1f}x",
                         "mean ratio": f"{theirs.mean() / ours.mean():.4f}"})
            passes.append((f"NCC >= 0.99 ({renderer}, {size} px)", score >= 0.99, f"{score:.4f}"))
            if renderer == "siddon" and size == 512:
                if args.device == "cpu":
                    passes.append(("CPU: >= 50x faster than Siddon at 512", theirs_s / ours_s >= 50,
                                   f"{theirs_s / ours_s:.1f}x"))
                    passes.append(("CPU: under 0.8 s at 512", ours_s < 0.8, f"{ours_s:.3f} s"))
                else:
                    passes.append(("GPU: no slower than Siddon at 512", ours_s <= theirs_s, f"{theirs_s / ours_s:.1f}x"))
            if renderer == "trilinear" and size == 200:
                passes.append(("faster than trilinear at 200", ours_s < theirs_s, f"{theirs_s / ours_s:.1f}x"))
    print_table(rows, ["renderer", "size", "seconds", "NCC vs CheXMix", "gain (DiffDRR / CheXMix)", "mean ratio"])
    for name, ok, value in passes:
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {value}")
    return 0
