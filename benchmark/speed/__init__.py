"""Speed benchmarks, reported as ratios against a floor or a baseline measured in the same run.

    python -m benchmark.speed projector   # published loop vs seed vs physics vs numpy.sum floor; --device: torch path
    python -m benchmark.speed project     # chexmix project CT MASK end to end vs nibabel get_fdata, fresh processes
    python -m benchmark.speed build       # per-volume build vs nibabel load; num_proc 2 vs 1
    python -m benchmark.speed train       # harness images/s vs in-memory tensors (ceiling)
    python -m benchmark.speed drr         # cone beam vs DiffDRR (pip install diffdrr): NCC, time ratio
    python -m benchmark.speed ray         # the same build locally and as Ray tasks (docs/scaling.md)
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable

BENCHMARKS = {
    "projector": "benchmark.speed.projector",
    "project": "benchmark.speed.project",
    "build": "benchmark.speed.build",
    "train": "benchmark.speed.train",
    "drr": "benchmark.speed.drr",
    "ray": "benchmark.speed.ray_build",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark.speed", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="benchmark", required=True)
    chosen = (argv if argv is not None else sys.argv[1:])[:1]
    module = None
    for name, module_name in BENCHMARKS.items():
        sub_parser = sub.add_parser(name)
        if chosen == [name]:
            module = importlib.import_module(module_name)
            module.add_arguments(sub_parser)
    args = parser.parse_args(argv)
    return int(module.run(args) or 0)  # type: ignore[union-attr]


def synchronised(device: str, function: Callable[[], object]) -> Callable[[], object]:
    """``function``, then on a CUDA device a wait for its kernels: GPU work runs asynchronously,
    so a timer stopped without the wait would time the launch, not the work."""
    def run() -> object:
        out = function()
        if str(device).startswith("cuda"):
            import torch

            torch.cuda.synchronize()
        return out
    return run


def print_table(rows: list[dict], columns: list[str]) -> None:
    """A plain Markdown table, pasteable into notes."""
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns]
    print("| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(str(row.get(c, "")).ljust(w) for c, w in zip(columns, widths)) + " |")


def phantom_ct_folder(data_dir, n: int, shape: tuple[int, int, int]) -> list:
    """``n`` phantom CTs of ``shape`` voxels written as a ``ct_folder`` source into ``data_dir``; its cases."""
    from chexmix_dataset.phantoms import write_phantoms
    from chexmix_dataset.sources import folders

    write_phantoms(data_dir, n, seed=0, shape=tuple(shape))
    return folders.CT_FOLDER.scan(data_dir).ct_cases
