"""``chexmix bench``: train and score lesion segmentation models on CheXMix configs.

The paper's Matterport commands map onto it: ``--dataset`` is ``--config`` (with ``--data-dir``),
``--weights imagenet|coco|last|PATH`` is the same, ``--aug y`` is ``--aug``. ``--paper`` runs the
paper's table: X-rays only and Mixed, each at 60/40 with augmentation, 80/20 with and 80/20
without, for every model. With ``--config sample`` the same grid runs on the bundled sample,
whose X-rays-only counterpart (``ct_fraction=0``: stand-in CXRs only, same test split) plays "X-rays only".
``--sweep ct-fraction=0,0.5,0.833,1`` draws the replacement curve: each model trained on ``mixed``
(or ``sample``) with that share of the training CXRs replaced by CT projections, all scored on
the same test split (see figures/replacement_curve.png).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import datasets

from chexmix_dataset.dataset.splits import parse_split
from chexmix_dataset.errors import ChexmixInputError

CONFIGS = ("xrays_only", "mixed", "ct_projections", "sample")
PAPER_GRID = (("60/40", True), ("80/20", True), ("80/20", False))
DEFAULT_SPLIT = "60/40"
DEFAULT_MODELS = "mask_rcnn,unet"
SWEEP_CONFIGS = ("mixed", "sample")
SWEEP_PARAMETER = "ct-fraction"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Every help line states its default (explicitly, so that "not given" options read well).
    parser.add_argument("--config", help=f"CheXMix config to train and test on: {', '.join(CONFIGS)} "
                        "(default: none; required unless --paper, which runs xrays_only and mixed, "
                        "or --sweep, which runs mixed)")
    parser.add_argument("--data-dir", type=Path,
                        help="folder the builder reads the sources from (default: the builder's own)")
    # None marks "not given", so that --paper (which fixes both) can refuse them.
    parser.add_argument("--split", help=f"train/test split, e.g. 60/40, 70:30 or 0.6 (default: {DEFAULT_SPLIT})")
    parser.add_argument("--aug", action=argparse.BooleanOptionalAction, default=None,
                        help="augment training images (small rotations, scaling, brightness/contrast; default: on)")
    parser.add_argument("--models", default=DEFAULT_MODELS,
                        help=f"comma-separated NAME[:VARIANT], e.g. mask_rcnn:resnet50,unet "
                             f"(default: {DEFAULT_MODELS})")
    parser.add_argument("--weights", default="none",
                        help="imagenet, coco, none, last (resume the runs in --out), PATH of a checkpoint "
                             "(last.pt/best.pt), a model folder (a run's model/) or hub:ORG/NAME (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=30, help="training epochs per run (default: %(default)s)")
    parser.add_argument("--seeds", type=int, default=1,
                        help="train each model with seeds 0..K-1 (default: %(default)s)")
    parser.add_argument("--image-size", type=int, default=512, help="square training size in px (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=2, help="images per training step (default: %(default)s)")
    parser.add_argument("--device", default="auto",
                        help="auto (CUDA when available), cpu or cuda (default: %(default)s)")
    parser.add_argument("--workers", type=int, help="DataLoader workers (default: 0 on CPU, up to 8 on CUDA)")
    parser.add_argument("--paper", action="store_true",
                        help="run the paper's grid of training settings (default: off)")
    parser.add_argument("--sweep", metavar=f"{SWEEP_PARAMETER}=F1,F2,...",
                        help="replacement curve: train on --config mixed or sample with each share of the training "
                             "CXRs replaced by CT projections, e.g. ct-fraction=0,0.5,0.833,1 (default: no sweep)")
    parser.add_argument("--out", type=Path, required=True,
                        help="folder for results, figures and checkpoints (required)")
    from chexmix_dataset.commands.dataset_args import add_engine_arguments

    add_engine_arguments(parser)  # --engine ray: one Ray task per run (benchmark.ray_grid)


def parse_sweep(sweep: str) -> list[float]:
    """``ct-fraction=0,0.5,5/6,1`` -> [0.0, 0.5, 0.833..., 1.0]: distinct fractions in [0, 1]."""
    name, _, values = sweep.partition("=")
    if name.strip() != SWEEP_PARAMETER or not values.strip():
        raise ChexmixInputError(f"--sweep {sweep!r} must be {SWEEP_PARAMETER}=F1,F2,... like "
                                f"{SWEEP_PARAMETER}=0,0.5,0.833,1 (the only parameter a sweep varies)")
    fractions = []
    for text in values.split(","):
        numerator, slash, denominator = text.strip().partition("/")
        try:
            fraction = float(numerator) / float(denominator) if slash else float(numerator)
        except (ValueError, ZeroDivisionError):
            fraction = float("nan")
        if not 0.0 <= fraction <= 1.0:  # nan fails too
            raise ChexmixInputError(f"--sweep {SWEEP_PARAMETER} value {text.strip()!r} must be a fraction "
                                    "in [0, 1], e.g. 0.5 or 5/6")
        fractions.append(fraction)
    if len(set(fractions)) != len(fractions):
        raise ChexmixInputError(f"--sweep {sweep!r} names a fraction twice")
    return fractions


def split_label(split: str) -> str:
    """The TRAIN/TEST percentages of ``--split`` ("60/40", "70:30" or "0.6"), e.g. "70/30"."""
    try:
        train_fraction = parse_split(split)
    except ChexmixInputError:
        raise ChexmixInputError(f"--split {split!r} must be TRAIN/TEST like 60/40 or 70:30, or a train "
                                "fraction like 0.6, with both parts above 0") from None
    return f"{100 * train_fraction:.4g}/{100 * (1 - train_fraction):.4g}"


def load_config(config: str, data_dir: Path | None, split: str, **options: object
                ) -> tuple[datasets.DatasetDict, list[dict]]:
    """The builder's DatasetDict for ``config`` at ``split`` (the split drawn with seed 0), and the
    records (URL, sha256, bytes) of what it downloaded."""
    from chexmix_dataset.dataset.builder import make_builder
    from chexmix_dataset.sources.download import download_records

    builder = make_builder(config, data_dir, split=split, seed=0, **options)
    builder.download_and_prepare()
    return builder.as_dataset(), download_records(builder)


def plan_cells(args: argparse.Namespace) -> list[tuple[str, str, str, bool, dict]]:
    """(training dataset, config, split, augment, builder options) of every cell; loads nothing."""
    if args.config is not None and args.config not in CONFIGS:
        raise ChexmixInputError(f"unknown --config {args.config!r}; choose one of {', '.join(CONFIGS)}")
    if args.sweep is not None:
        if args.paper:
            raise ChexmixInputError("--paper and --sweep are separate experiments; give one of them")
        config = "mixed" if args.config is None else args.config
        if config not in SWEEP_CONFIGS:
            raise ChexmixInputError(f"--sweep replaces training CXRs by CT projections, which only "
                                    f"{' and '.join(SWEEP_CONFIGS)} do; --config {config} cannot")
        fractions = parse_sweep(args.sweep)
        split = split_label(DEFAULT_SPLIT if args.split is None else args.split)
        return [(f"CT fraction {fraction:.3g}", config, split, args.aug is not False, {"ct_fraction": fraction})
                for fraction in fractions]
    if not args.paper:
        if args.config is None:
            raise ChexmixInputError(f"--config is required (one of {', '.join(CONFIGS)}) unless --paper is given")
        split = split_label(DEFAULT_SPLIT if args.split is None else args.split)
        return [(args.config, args.config, split, args.aug is not False, {})]
    fixed = [name for name, value in (("--split", args.split), ("--aug/--no-aug", args.aug)) if value is not None]
    if fixed:
        raise ChexmixInputError(f"--paper runs its own grid of splits and augmentation; drop {' and '.join(fixed)}")
    if args.config == "sample":
        sources = (("X-rays only", "sample", {"ct_fraction": 0}), ("Mixed", "sample", {}))
    elif args.config in (None, "mixed", "xrays_only"):
        sources = (("X-rays only", "xrays_only", {}), ("Mixed", "mixed", {}))
    else:
        raise ChexmixInputError(f"--paper compares xrays_only with mixed; --config {args.config} has no place in it")
    return [(label, config, split, augment, extra) for split, augment in PAPER_GRID for label, config, extra in sources]


def make_cells(plan: list[tuple[str, str, str, bool, dict]], data_dir: Path | None) -> list:
    """The cells of a :func:`plan_cells` plan, each (config, split, options) loaded once."""
    from benchmark.grid import Cell

    loaded: dict[tuple, tuple[datasets.DatasetDict, list[dict]]] = {}
    cells = []
    for label, config, split, augment, extra in plan:
        key = (config, split, tuple(sorted(extra.items())))
        if key not in loaded:
            loaded[key] = load_config(config, data_dir, split, **extra)
        dataset, downloads = loaded[key]
        cells.append(Cell(label, config, split, augment, dataset, ct_fraction=extra.get("ct_fraction"),
                          downloads=tuple(downloads)))
    return cells


def run(args: argparse.Namespace) -> int:
    from baselines import parse_model_spec
    from benchmark import ddp
    from benchmark.grid import BenchOptions
    from benchmark.harness import check_options, run_grid

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    for spec in models:
        parse_model_spec(spec)
    options = BenchOptions(epochs=args.epochs, image_size=args.image_size, batch_size=args.batch_size,
                           seeds=args.seeds, weights=args.weights, device=args.device, workers=args.workers)
    plan = plan_cells(args)
    initial = check_options(options, models, args.out)  # before the (slow) data loading
    if args.address and args.engine != "ray":
        raise ChexmixInputError("--address names a Ray cluster: use it with --engine ray")
    ddp.init_from_env(args.device)  # under torchrun: join its processes (benchmark.ddp)
    with ddp.main_process_first():  # one process builds the datasets' cache, the others reuse it
        cells = make_cells(plan, args.data_dir)
    results = run_grid(cells, models, options, args.out, initial=initial, engine=args.engine, address=args.address)
    if not ddp.is_main():
        return 0
    print((args.out / "results.md").read_text())
    print(f"wrote {args.out / 'results.json'}, {args.out / 'results.md'} and {args.out / 'figures'} "
          f"({len(results['runs'])} runs)")
    return 0
