"""Build speed: per-volume ``ct_projections`` rows against nibabel's load; rows/s of CT-only and
CXR-only builds with num_proc 1 and 2 against the floor of decoding their inputs alone.

Per volume, "row" is everything the builder does for one CT (load CT and mask, reorient,
project, lesion instances, RLE, PNG encoding of image and mask as ``datasets`` stores them)
and the baseline is nibabel reading the same CT and mask files into arrays. Targets: row <= 1.3x
the load; ``num_proc=2`` >= 1.7x faster than 1 over at least 8 volumes.

Whole builds: ``ct_projections`` from a ``ct_folder`` of phantom CTs (.nii.gz) and
``xrays_only`` from a ``cxr_folder`` of CXR stand-ins (8-bit PNG images with 8-bit PNG masks,
written with PIL). The floor is decoding every input file once in one process (nibabel for the
CTs, PIL for the PNGs); "build / floor" says how many times slower than that floor a build
makes rows, split plan, Arrow writing and ``datasets`` bookkeeping included.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image

from benchmark.speed import phantom_ct_folder, print_table
from chexmix_dataset.dataset.builder import _row_for, make_builder
from chexmix_dataset.dataset.features import FEATURES
from chexmix_dataset.dataset.lesions import union_mask
from chexmix_dataset.phantoms import cxr_standin
from chexmix_dataset.projector import ProjectorOptions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, default=16,
                        help="phantom CT volumes (16: each split shards evenly over 2 processes)")
    parser.add_argument("--shape", type=int, nargs=3, default=(512, 512, 133), metavar=("NX", "NY", "NZ"))
    parser.add_argument("--size", type=int, default=512, help="projection size in px (512)")
    parser.add_argument("--n-cxr", type=int, default=200, help="CXR stand-ins for the CXR-only build (200)")
    parser.add_argument("--cxr-size", type=int, default=512, help="CXR stand-in size in px (512)")


def _nibabel_load(case) -> None:
    np.asanyarray(nib.load(str(case.ct_path)).dataobj)
    np.asanyarray(nib.load(str(case.mask_path)).dataobj)


def _build(config: str, source: str, data_dir: Path, cache_dir: Path, projector: ProjectorOptions,
           num_proc: int | None) -> tuple[float, int]:
    """Seconds to build ``config`` from ``source`` in ``data_dir``, and the rows it made."""
    builder = make_builder(config, data_dir, sources=(source,), projector=projector, cache_dir=cache_dir)
    start = time.perf_counter()
    builder.download_and_prepare(num_proc=num_proc)
    seconds = time.perf_counter() - start
    return seconds, sum(split.num_examples for split in builder.info.splits.values())


def write_cxr_folder(root: Path, n: int, size: int) -> list[Path]:
    """``n`` stand-ins as ``images/NAME.png`` + ``masks/NAME.png`` (the ``cxr_folder`` layout); the files."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    files = []
    for j in range(n):
        standin = cxr_standin(100_000 + j, size=size)
        lesion = union_mask(standin.instances, standin.image.shape)
        name = f"cxr_{j:04d}.png"
        Image.fromarray(standin.image).save(root / "images" / name)
        Image.fromarray(lesion).save(root / "masks" / name)
        files += [root / "images" / name, root / "masks" / name]
    return files


def _decode_pngs(files: list[Path]) -> None:
    for path in files:
        with Image.open(path) as image:
            np.asarray(image)


def _timed(function, *args) -> float:
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


def _rate_row(build: str, floor_s: float, n_inputs: int, builds: dict[int, tuple[float, int]]) -> dict:
    (one_s, rows), (two_s, _) = builds[1], builds[2]
    return {"build": build, "rows": rows, "floor rows/s": f"{n_inputs / floor_s:.1f}",
            "num_proc 1 rows/s": f"{rows / one_s:.1f}", "num_proc 2 rows/s": f"{rows / two_s:.1f}",
            "1 / floor": f"{one_s / floor_s:.2f}", "2 vs 1": f"{one_s / two_s:.2f}x"}


def run(args: argparse.Namespace) -> int:
    projector = ProjectorOptions(size_px=args.size)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        cases = phantom_ct_folder(data_dir, args.n, args.shape)
        rows = []
        for case in cases:
            load = _timed(_nibabel_load, case)
            row = _timed(lambda: FEATURES.encode_example(_row_for(case, projector)))
            rows.append({"volume": case.case_id, "nibabel load s": f"{load:.3f}", "row s": f"{row:.3f}",
                         "row / load": f"{row / load:.2f}"})
        ratios = [float(r["row / load"]) for r in rows]
        print(f"{args.n} phantom CTs {tuple(args.shape)} (.nii.gz), projection {args.size} px")
        print_table(rows, ["volume", "nibabel load s", "row s", "row / load"])
        print(f"median row / load: {np.median(ratios):.2f} (target <= 1.3)\n")

        cxr_dir = Path(tmp) / "cxr"
        cxr_files = write_cxr_folder(cxr_dir, args.n_cxr, args.cxr_size)
        ct_floor = sum(_timed(_nibabel_load, case) for case in cases)
        cxr_floor = _timed(_decode_pngs, cxr_files)
        ct_builds = {k: _build("ct_projections", "ct_folder", data_dir, Path(tmp) / f"ct{k}", projector,
                               k if k > 1 else None) for k in (1, 2)}
        cxr_builds = {k: _build("xrays_only", "cxr_folder", cxr_dir, Path(tmp) / f"cxr{k}", projector,
                                k if k > 1 else None) for k in (1, 2)}
        print(f"whole builds: {args.n} CTs -> ct_projections ({args.size} px); {args.n_cxr} CXR PNGs "
              f"({args.cxr_size} px, with masks) -> xrays_only; floor: decoding the inputs once, one process")
        print_table([_rate_row("CT-only", ct_floor, len(cases), ct_builds),
                     _rate_row("CXR-only", cxr_floor, args.n_cxr, cxr_builds)],
                    ["build", "rows", "floor rows/s", "num_proc 1 rows/s", "num_proc 2 rows/s", "1 / floor", "2 vs 1"])
        print(f"num_proc=2 speed-up: CT-only {ct_builds[1][0] / ct_builds[2][0]:.2f}x over {args.n} volumes "
              f"(target >= 1.7), CXR-only {cxr_builds[1][0] / cxr_builds[2][0]:.2f}x")
    return 0
