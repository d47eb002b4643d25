"""``chexmix project CT MASK`` end to end against a bare ``nibabel.load(f).get_fdata()`` of the CT.

Both run as fresh processes (interpreter start and imports included), best of ``--repeats``, on
a phantom CT (.nii.gz, int16) and its lesion mask written by nibabel. ``chexmix project`` reads
the CT and the mask, projects both and writes four files; the baseline only reads the CT as
float64, as most scripts do. Target (issue 11): end to end <= 0.7x the baseline.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmark.speed import print_table
from chexmix_dataset.phantoms import chest_phantom, write_phantom_nifti

TARGET_RATIO = 0.7


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shape", type=int, nargs=3, default=(512, 512, 133), metavar=("NX", "NY", "NZ"))
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per command; the best counts (3)")


def _best_seconds(command: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return min(times)


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        ct, mask = Path(tmp) / "ct.nii.gz", Path(tmp) / "mask.nii.gz"
        write_phantom_nifti(chest_phantom(0, tuple(args.shape)), ct, mask)
        baseline = _best_seconds([sys.executable, "-c", f"import nibabel; nibabel.load({str(ct)!r}).get_fdata()"],
                                 args.repeats)
        project = _best_seconds([sys.executable, "-m", "chexmix_dataset.cli", "project", str(ct), str(mask),
                                 "--out", str(Path(tmp) / "out")], args.repeats)
    ratio = project / baseline
    print(f"phantom CT {tuple(args.shape)} int16 .nii.gz + mask, best of {args.repeats} fresh processes")
    print_table([{"command": "python -c nibabel.load(ct).get_fdata()", "seconds": f"{baseline:.2f}", "x baseline": "1.00"},
                 {"command": "chexmix project ct mask --out out", "seconds": f"{project:.2f}",
                  "x baseline": f"{ratio:.2f}"}], ["command", "seconds", "x baseline"])
    print(f"end to end / baseline: {ratio:.2f} (target <= {TARGET_RATIO}): {'PASS' if ratio <= TARGET_RATIO else 'FAIL'}")
    return 0
