"""``chexmix bench``: train and score lesion segmentation models on CheXMix configs.

The paper's Matterport commands map onto it: ``--dataset`` is ``--config`` (with ``--data-dir``),
``--weights imagenet|coco|last|PATH`` is the same, ``--aug y`` is ``--aug``. ``--paper`` runs the
paper's table: X-rays only and Mixed, each at 60/40 with augmentation, 80/20 with and 80/20
without, for every model. With ``--config sample`` the same grid runs on the bundled sample,
whose X-rays-only counterpart (``ct_fraction=0``: stand-in CXRs only, same test split) plays "X-rays only".
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import datasets

from chexmix_dataset.errors import ChexmixInputError

CONFIGS = ("xrays_only", "mixed", "ct_projections", "sample")
PAPER_GRID = (("60/40", True), ("80/20", True), ("80/20", False))
DEFAULT_MODELS = "mask_rcnn,unet"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help=f"CheXMix config to train and test on: {', '.join(CONFIGS)}")
    parser.add_argument("--data-dir", type=Path, help="folder the builder reads the sources from")
    parser.add_argument("--split", default="60/40", help="train/test percentages, e.g. 60/40 or 80/20")
    parser.add_argument("--aug", action=argparse.BooleanOptionalAction, default=True,
                        help="augment training images (small rotations, scaling, brightness/contrast)")
    parser.add_argument("--models", default=DEFAULT_MODELS,
                        help="comma-separated NAME[:VARIANT], e.g. mask_rcnn:resnet50,unet")
    parser.add_argument("--weights", default="none",
                        help="imagenet, coco, none, last (resume the runs in --out) or PATH of a checkpoint")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seeds", type=int, default=1, help="train each model with seeds 0..K-1")
    parser.add_argument("--image-size", type=int, default=512, help="square training size in px")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    parser.add_argument("--workers", type=int, help="DataLoader workers (default: 0 on CPU, up to 8 on CUDA)")
    parser.add_argument("--paper", action="store_true", help="run the paper's grid of training settings")
    parser.add_argument("--out", type=Path, required=True, help="folder for results, figures and checkpoints")


def parse_split(split: str) -> str:
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", split)
    if not match or int(match[1]) + int(match[2]) != 100 or 0 in (int(match[1]), int(match[2])):
        raise ChexmixInputError(f"--split {split!r} must be TRAIN/TEST percentages that sum to 100, "
                                "both above 0 (e.g. 60/40)")
    return f"{int(match[1])}/{int(match[2])}"


def load_config(config: str, data_dir: Path | None, split: str, **options: object) -> datasets.DatasetDict:
    """The builder's DatasetDict for ``config`` at ``split`` (the split drawn with seed 0)."""
    try:
        from chexmix_dataset.builder import load_chexmix
    except ImportError:
        raise ChexmixInputError("the CheXMix builder (chexmix_dataset.builder) is not available in this "
                                "installation") from None
    return load_chexmix(config, data_dir=data_dir, split=split, seed=0, **options)


def make_cells(args: argparse.Namespace) -> list:
    from .harness import Cell

    if args.config is not None and args.config not in CONFIGS:
        raise ChexmixInputError(f"unknown --config {args.config!r}; choose one of {', '.join(CONFIGS)}")
    if not args.paper:
        if args.config is None:
            raise ChexmixInputError(f"--config is required (one of {', '.join(CONFIGS)}) unless --paper is given")
        split = parse_split(args.split)
        return [Cell(args.config, args.config, split, args.aug, load_config(args.config, args.data_dir, split))]
    if args.config == "sample":
        sources = (("X-rays only", "sample", {"ct_fraction": 0}), ("Mixed", "sample", {}))
    elif args.config in (None, "mixed", "xrays_only"):
        sources = (("X-rays only", "xrays_only", {}), ("Mixed", "mixed", {}))
    else:
        raise ChexmixInputError(f"--paper compares xrays_only with mixed; --config {args.config} has no place in it")
    return [Cell(label, config, split, augment, load_config(config, args.data_dir, split, **extra))
            for split, augment in PAPER_GRID for label, config, extra in sources]


def run(args: argparse.Namespace) -> int:
    from baselines import parse_model_spec

    from .harness import BenchOptions, run_grid

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    for spec in models:
        parse_model_spec(spec)  # before the (slow) data loading
    options = BenchOptions(epochs=args.epochs, image_size=args.image_size, batch_size=args.batch_size,
                           seeds=args.seeds, weights=args.weights, device=args.device, workers=args.workers)
    results = run_grid(make_cells(args), models, options, args.out)
    print((args.out / "results.md").read_text())
    print(f"wrote {args.out / 'results.json'}, {args.out / 'results.md'} and {args.out / 'figures'} "
          f"({len(results['runs'])} runs)")
    return 0
