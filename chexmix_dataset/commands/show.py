"""``chexmix show --config C --out grid.png``: a grid of one split's images with lesion outlines.

``--compare-display`` builds the config twice, with the linear window and with ``--display
radiograph``, and draws each CT projection of the split in both, side by side (same CT, view
and geometry; real CXRs are left out, since the display mapping is a projector option).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from chexmix_dataset.errors import ChexmixInputError
from chexmix_dataset.figures.overlay import save_grid


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from chexmix_dataset.commands.dataset_args import (
        add_dataset_arguments,  # imports the builder: only when `show` is used
    )

    parser.add_argument("--out", type=Path, required=True, help="PNG to write (atomically)")
    # --split is the dataset's train/test ratio (dataset options), hence --subset here.
    parser.add_argument("--subset", default="test",
                        help="which of the built dataset's two splits to draw: train or test (default: test); "
                             "--split sets the ratio between them")
    parser.add_argument("--n", type=int, default=16,
                        help="images to draw, spread evenly over the split (default: %(default)s)")
    parser.add_argument("--cols", type=int, default=4, help="tiles per grid row (default: %(default)s)")
    parser.add_argument("--compare-display", action="store_true",
                        help="draw each CT projection twice, side by side: the linear window and --display "
                             "radiograph (CXRs are left out; default: off)")
    add_dataset_arguments(parser)


def spread_indices(n_rows: int, n: int) -> list[int]:
    """``n`` row indices spread evenly from the first row to the last (all rows if fewer)."""
    if n >= n_rows:
        return list(range(n_rows))
    return sorted({int(i) for i in np.linspace(0, n_rows - 1, n).round()})


def run(args: argparse.Namespace) -> int:
    from chexmix_dataset.commands.dataset_args import load_dataset_from_args

    if args.n < 1 or args.cols < 1:
        raise ChexmixInputError(f"--n and --cols must be at least 1 (got {args.n}, {args.cols})")
    if args.out.suffix.lower() != ".png":
        raise ChexmixInputError("--out must be a .png file", args.out)
    if args.compare_display:
        return _compare_displays(args)
    split = _split(load_dataset_from_args(args), args)
    indices = spread_indices(len(split), args.n)
    save_grid(split.select(indices), args.out, n_cols=args.cols,
              title=f"CheXMix {args.config} / {args.subset}: {len(indices)} of {len(split)} images")
    print(f"{args.out}: {len(indices)} of {len(split)} {args.subset} images")
    return 0


def _split(dataset, args: argparse.Namespace):
    if args.subset not in dataset:
        raise ChexmixInputError(f"no split {args.subset!r} in config {args.config!r}; "
                                f"choose one of {', '.join(dataset)}")
    split = dataset[args.subset]
    if len(split) == 0:
        raise ChexmixInputError(f"split {args.subset!r} of config {args.config!r} is empty")
    return split


def _prepared_split(builder, args: argparse.Namespace):
    builder.download_and_prepare(num_proc=args.num_proc)
    return _split(builder.as_dataset(), args)


def _compare_displays(args: argparse.Namespace) -> int:
    from chexmix_dataset.commands.dataset_args import builder_from_args

    if args.display is not None:
        raise ChexmixInputError(f"--compare-display draws both displays; drop --display {args.display}")
    # Both builders first: options the radiograph display refuses (e.g. --mode seed) fail before any build.
    builders = [builder_from_args(argparse.Namespace(**{**vars(args), "display": display}))
                for display in ("linear", "radiograph")]
    linear = _prepared_split(builders[0], args)
    projections = [i for i, source in enumerate(linear["source"]) if source == "ct_projection"]
    if not projections:  # known after the first build: the second is not started
        raise ChexmixInputError(f"split {args.subset!r} of config {args.config!r} has no CT projections to compare")
    radiograph = _prepared_split(builders[1], args)
    pairs = [projections[i] for i in spread_indices(len(projections), max(1, args.n // 2))]
    rows, titles = [], []
    for index in pairs:
        plain, processed = linear[index], radiograph[index]
        if plain["image_id"] != processed["image_id"]:  # both builds plan the same split and views
            raise ChexmixInputError(f"the two builds disagree on row {index}: {plain['image_id']} vs "
                                    f"{processed['image_id']}")
        rows += [plain, processed]
        titles += [f"{plain['image_id']}\nlinear window", f"{plain['image_id']}\n--display radiograph"]
    save_grid(rows, args.out, n_cols=2 * max(1, args.cols // 2), tile_titles=titles,
              title=f"CheXMix {args.config} / {args.subset}: {len(pairs)} CT projection(s), "
                    "linear vs radiograph display")
    print(f"{args.out}: {len(pairs)} of {len(projections)} {args.subset} CT projections, each in both displays")
    return 0
