"""``chexmix phantom``: write synthetic chest CT phantoms (NIfTI CT + lesion label mask)."""

from __future__ import annotations

import argparse

from chexmix_dataset.errors import ChexmixInputError
from chexmix_dataset.phantoms import DEFAULT_SHAPE, FIELD_OF_VIEW_MM, write_phantoms


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder; gets ct/, mask/ and phantoms.json. A previous output of the same "
                        "--seed and --shape is replaced whole; a folder of other files or other phantoms is refused")
    parser.add_argument("--n", type=int, default=1, help="number of phantoms (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first phantom; phantom i uses seed + i (default: %(default)s)")
    parser.add_argument(
        "--shape", type=int, nargs=3, metavar=("NX", "NY", "NZ"), default=list(DEFAULT_SHAPE),
        help=f"voxels along x (Right), y (Anterior), z (Superior) over a fixed {FIELD_OF_VIEW_MM} mm "
             f"field of view (default {' '.join(map(str, DEFAULT_SHAPE))})",
    )


def run(args: argparse.Namespace) -> int:
    if args.n < 1:
        raise ChexmixInputError(f"--n must be at least 1, got {args.n}")
    pairs = write_phantoms(args.out, args.n, args.seed, tuple(args.shape))
    for ct_path, mask_path in pairs:
        print(f"{ct_path}  {mask_path}")
    print(f"wrote {len(pairs)} phantom(s) of shape {tuple(args.shape)} to {args.out}")
    return 0
