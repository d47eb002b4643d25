"""Build speed: per-volume ``ct_projections`` rows against nibabel's load; num_proc 2 vs 1.

Per volume, "row" is everything the builder does for one CT (load CT and mask, reorient,
project, lesion instances, RLE, PNG encoding of image and mask as ``datasets`` stores them)
and the baseline is nibabel reading the same CT and mask files into arrays. Targets: row <= 1.3x
the load; ``num_proc=2`` >= 1.7x faster than 1 over at least 8 volumes.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from benchmark.speed import print_table
from chexmix_dataset.dataset.builder import _row_for, make_builder
from chexmix_dataset.dataset.features import FEATURES
from chexmix_dataset.phantoms import write_phantoms
from chexmix_dataset.projector import ProjectorOptions
from chexmix_dataset.sources import folders


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, default=16,
                        help="phantom CT volumes (16: each split shards evenly over 2 processes)")
    parser.add_argument("--shape", type=int, nargs=3, default=(512, 512, 133), metavar=("NX", "NY", "NZ"))
    parser.add_argument("--size", type=int, default=512, help="projection size in px (512)")


def _nibabel_load(case) -> None:
    np.asanyarray(nib.load(str(case.ct_path)).dataobj)
    np.asanyarray(nib.load(str(case.mask_path)).dataobj)


def _build(data_dir: Path, cache_dir: Path, projector: ProjectorOptions, num_proc: int | None) -> float:
    builder = make_builder("ct_projections", data_dir, sources=("ct_folder",), projector=projector,
                           cache_dir=cache_dir)
    start = time.perf_counter()
    builder.download_and_prepare(num_proc=num_proc)
    return time.perf_counter() - start


def run(args: argparse.Namespace) -> int:
    projector = ProjectorOptions(size_px=args.size)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        write_phantoms(data_dir, args.n, seed=0, shape=tuple(args.shape))
        cases = folders.CT_FOLDER.scan(data_dir).ct_cases
        rows = []
        for case in cases:
            start = time.perf_counter()
            _nibabel_load(case)
            load = time.perf_counter() - start
            start = time.perf_counter()
            FEATURES.encode_example(_row_for(case, projector))
            row = time.perf_counter() - start
            rows.append({"volume": case.case_id, "nibabel load s": f"{load:.3f}", "row s": f"{row:.3f}",
                         "row / load": f"{row / load:.2f}"})
        ratios = [float(r["row / load"]) for r in rows]
        print(f"{args.n} phantom CTs {tuple(args.shape)} (.nii.gz), projection {args.size} px")
        print_table(rows, ["volume", "nibabel load s", "row s", "row / load"])
        print(f"median row / load: {np.median(ratios):.2f} (target <= 1.3)\n")

        one = _build(data_dir, Path(tmp) / "cache1", projector, None)
        two = _build(data_dir, Path(tmp) / "cache2", projector, 2)
        print_table([{"num_proc": "1", "seconds": f"{one:.2f}", "speed-up": "1.00"},
                     {"num_proc": "2", "seconds": f"{two:.2f}", "speed-up": f"{one / two:.2f}"}],
                    ["num_proc", "seconds", "speed-up"])
        print(f"num_proc=2 speed-up: {one / two:.2f}x over {args.n} volumes (target >= 1.7)")
    return 0
