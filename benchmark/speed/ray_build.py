"""Ray engine speed: the same ``ct_projections`` build locally and as Ray tasks (docs/scaling.md).

Times, on the same phantom CTs: one row (load, project, encode) in this process; the local
builder (``num_proc`` 1); ``build_with_ray`` on a local instance with ``--cpus`` CPUs, split into
Ray's start and the build itself (planning, tasks, Parquet). The per-item Ray overhead is what
a cluster adds to each volume on top of the row itself.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmark.speed import phantom_ct_folder, print_table
from chexmix_dataset.dataset.builder import _row_for, make_builder
from chexmix_dataset.dataset.distributed import build_with_ray, require_ray
from chexmix_dataset.dataset.features import FEATURES
from chexmix_dataset.projector import ProjectorOptions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, default=8, help="phantom CT volumes (8)")
    parser.add_argument("--shape", type=int, nargs=3, default=(512, 512, 133), metavar=("NX", "NY", "NZ"))
    parser.add_argument("--size", type=int, default=512, help="projection size in px (512)")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance (2)")


def run(args: argparse.Namespace) -> int:
    projector = ProjectorOptions(size_px=args.size)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        cases = phantom_ct_folder(data_dir, args.n, args.shape)

        def builder(name: str):
            return make_builder("ct_projections", data_dir, sources=("ct_folder",), projector=projector,
                                cache_dir=Path(tmp) / name, split="50/50")

        start = time.perf_counter()
        for case in cases:
            FEATURES.encode_example(_row_for(case, projector))
        rows = (time.perf_counter() - start) / len(cases)

        start = time.perf_counter()
        builder("local").download_and_prepare()
        local = time.perf_counter() - start

        ray = require_ray(local_only=True)
        start = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        startup = time.perf_counter() - start
        try:
            start = time.perf_counter()
            build_with_ray(builder("ray"), Path(tmp) / "hub")
            on_ray = time.perf_counter() - start
        finally:
            ray.shutdown()

        print(f"{args.n} phantom CTs {tuple(args.shape)} (.nii.gz), projection {args.size} px, "
              f"Ray instance of {args.cpus} CPUs")
        table = [
            {"what": "one row in this process", "seconds": f"{rows:.3f}", "per volume s": f"{rows:.3f}"},
            {"what": "local build (num_proc 1)", "seconds": f"{local:.2f}", "per volume s": f"{local / args.n:.3f}"},
            {"what": "Ray start (local instance)", "seconds": f"{startup:.2f}", "per volume s": "-"},
            {"what": f"Ray build ({args.cpus} CPUs)", "seconds": f"{on_ray:.2f}",
             "per volume s": f"{on_ray / args.n:.3f}"},
        ]
        print_table(table, ["what", "seconds", "per volume s"])
        print(f"Ray build speed-up over the local build: {local / on_ray:.2f}x; "
              f"Ray CPU-seconds per volume: {on_ray * args.cpus / args.n:.3f} (row alone {rows:.3f})")
    return 0
