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

from chexmix_dataset.commands.dataset_args import DEFAULT_SPLIT, MIXING_CONFIGS, check_engine_args
from chexmix_dataset.dataset.splits import is_official, parse_split
from chexmix_dataset.errors import ChexmixInputError

CONFIGS = ("xrays_only", "mixed", "ct_projections", "sample")
PAPER_GRID = (("60/40", True), ("80/20", True), ("80/20", False))
DEFAULT_MODELS = "mask_rcnn,unet"
SWEEP_PARAMETER = "ct-fraction"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from chexmix_dataset.commands.dataset_args import add_dataset_arguments, add_engine_arguments

    # Every help line states its default. --config and --split default to None, meaning "not
    # given", so that --paper and --sweep (which fix them) can refuse them.
    add_dataset_arguments(parser, config_required=False, config_help=(
        f"CheXMix config to train and test on: {', '.join(CONFIGS)} (default: none; required unless --paper, "
        "which runs xrays_only and mixed, or --sweep, which runs mixed)"))
    group = parser.add_argument_group("training")
    group.add_argument("--aug", action=argparse.BooleanOptionalAction, default=None,
                       help="augment training images (small rotations, scaling, brightness/contrast; default: on)")
    group.add_argument("--models", default=DEFAULT_MODELS,
                       help=f"comma-separated NAME[:VARIANT], e.g. mask_rcnn:resnet50,unet "
                            f"(default: {DEFAULT_MODELS})")
    group.add_argument("--weights", default="none",
                       help="imagenet, coco, none (train from scratch), last (resume the runs in --out), PATH of a "
                            "checkpoint (last.pt/best.pt), a model folder (a run's model/), its model.safetensors or hub:ORG/NAME "
                            "(default: %(default)s)")
    group.add_argument("--epochs", type=int, default=30, help="training epochs per run (default: %(default)s)")
    group.add_argument("--seeds", type=int, default=1,
                       help="train each model with seeds 0..K-1 (default: %(default)s)")
    group.add_argument("--image-size", type=int, default=512,
                       help="square training size in px (default: %(default)s)")
    group.add_argument("--batch-size", type=int, default=2, help="images per training step (default: %(default)s)")
    group.add_argument("--device", default="auto",
                       help="where models train: auto (CUDA when available), cpu or cuda (default: %(default)s; "
                            "the projector's is --projector-device)")
    group.add_argument("--workers", type=int, help="DataLoader workers (default: 0 on CPU, up to 8 on CUDA)")
    group.add_argument("--paper", action="store_true",
                       help="run the paper's grid of training settings (default: off)")
    group.add_argument("--sweep", metavar=f"{SWEEP_PARAMETER}=F1,F2,...",
                       help="replacement curve: train on --config mixed or sample with each share of the training "
                            "CXRs replaced by CT projections, e.g. ct-fraction=0,0.5,0.833,1 (default: no sweep)")
    group.add_argument("--out", type=Path, required=True,
                       help="folder for results.json, results.md, figures/ and runs/ (checkpoints and model "
                            "files; the plan printed first gives their sizes) (required)")
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
    if is_official(split):
        raise ChexmixInputError("--split official is for build, show, export and publish; chexmix bench labels, "
                                "compares and resumes its runs by a ratio: give one such as 60/40")
    train_fraction = parse_split(split)  # its error names --split and the accepted forms
    return f"{100 * train_fraction:.4g}/{100 * (1 - train_fraction):.4g}"


def load_config(config: str, data_dir: Path | None, split: str, num_proc: int | None = None, **options: object
                ) -> tuple[datasets.DatasetDict, list[dict]]:
    """The builder's DatasetDict for ``config`` at ``split``, and the records (URL, sha256, bytes)
    of what it downloaded. ``options``: :func:`make_builder` options (seed 0 unless given)."""
    from chexmix_dataset.dataset.builder import make_builder
    from chexmix_dataset.sources.download import download_records

    builder = make_builder(config, data_dir, split=split, **options)
    builder.download_and_prepare(num_proc=num_proc)
    return builder.as_dataset(), download_records(builder)


def plan_cells(args: argparse.Namespace) -> list[tuple[str, str, str, bool, dict]]:
    """(training dataset, config, split, augment, builder options) of every cell; loads nothing."""
    if args.config is not None and args.config not in CONFIGS:
        raise ChexmixInputError(f"unknown --config {args.config!r}; choose one of {', '.join(CONFIGS)}")
    if args.sweep is not None:
        if args.paper:
            raise ChexmixInputError("--paper and --sweep are separate experiments; give one of them")
        if args.ct_fraction is not None:
            raise ChexmixInputError("--sweep sets the CT fraction of each run; drop --ct-fraction")
        config = "mixed" if args.config is None else args.config
        if config not in MIXING_CONFIGS:
            raise ChexmixInputError(f"--sweep replaces training CXRs by CT projections, which only "
                                    f"{' and '.join(MIXING_CONFIGS)} do; --config {config} cannot")
        fractions = parse_sweep(args.sweep)
        split = split_label(DEFAULT_SPLIT if args.split is None else args.split)
        return [(f"CT fraction {fraction:.3g}", config, split, args.aug is not False, {"ct_fraction": fraction})
                for fraction in fractions]
    if not args.paper:
        if args.config is None:
            raise ChexmixInputError(f"--config is required (one of {', '.join(CONFIGS)}) unless --paper is given")
        split = split_label(DEFAULT_SPLIT if args.split is None else args.split)
        return [(args.config, args.config, split, args.aug is not False, {})]
    fixed = [name for name, value in (("--split", args.split), ("--aug/--no-aug", args.aug),
                                      ("--ct-fraction", args.ct_fraction)) if value is not None]
    if fixed:
        raise ChexmixInputError(f"--paper runs its own grid of splits, augmentation and mixes; drop {' and '.join(fixed)}")
    if args.config == "sample":
        sources = (("X-rays only", "sample", {"ct_fraction": 0}), ("Mixed", "sample", {}))
    elif args.config in (None, "mixed", "xrays_only"):
        sources = (("X-rays only", "xrays_only", {}), ("Mixed", "mixed", {}))
    else:
        raise ChexmixInputError(f"--paper compares xrays_only with mixed; --config {args.config} has no place in it")
    return [(label, config, split, augment, extra) for split, augment in PAPER_GRID for label, config, extra in sources]


def row_options(args: argparse.Namespace, config: str) -> tuple[tuple[str, str], ...]:
    """The given dataset options that change a config's rows (not where they are cached or
    fetched from), as (name, text) pairs: what results.json records and resuming must repeat."""
    from chexmix_dataset.commands.dataset_args import builder_options_from_args

    given = builder_options_from_args(args, config)
    return tuple((name, str(given[name])) for name in ("seed", "ct_fraction", "projector", "sources") if name in given)


def make_cells(plan: list[tuple[str, str, str, bool, dict]], args: argparse.Namespace) -> list:
    """The cells of a :func:`plan_cells` plan, each (config, split, options) loaded once, with the
    dataset options of ``args`` passed to the builder as ``chexmix build`` passes them."""
    from benchmark.grid import Cell
    from chexmix_dataset.commands.dataset_args import builder_options_from_args

    loaded: dict[tuple, tuple[datasets.DatasetDict, list[dict]]] = {}
    cells = []
    for label, config, split, augment, extra in plan:
        key = (config, split, tuple(sorted(extra.items())))
        if key not in loaded:
            given = builder_options_from_args(args, config)
            del given["split"]  # the cell's own (a --paper cell's may differ from --split)
            if args.num_proc is not None:
                given["num_proc"] = args.num_proc
            loaded[key] = load_config(config, args.data_dir, split, **given, **extra)
        dataset, downloads = loaded[key]
        ct_fraction = extra.get("ct_fraction", args.ct_fraction if config in MIXING_CONFIGS else None)
        cells.append(Cell(label, config, split, augment, dataset, ct_fraction=ct_fraction,
                          downloads=tuple(downloads), dataset_options=row_options(args, config)))
    return cells


def run(args: argparse.Namespace) -> int:
    from baselines import parse_model_spec
    from benchmark import ddp
    from benchmark.grid import BenchOptions
    from benchmark.harness import check_options, run_grid
    from chexmix_dataset.commands.dataset_args import check_dataset_args

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    for spec in models:
        parse_model_spec(spec)
    options = BenchOptions(epochs=args.epochs, image_size=args.image_size, batch_size=args.batch_size,
                           seeds=args.seeds, weights=args.weights, device=args.device, workers=args.workers)
    plan = plan_cells(args)
    check_dataset_args(args, sorted({config for _, config, _, _, _ in plan}))
    initial = check_options(options, models, args.out)  # before the (slow) data loading
    check_engine_args(args)
    ddp.check_launch(args.engine, args.batch_size)  # refused before the (slow) data loading
    ddp.init_from_env(args.device)  # under torchrun: join its processes (benchmark.ddp)
    with ddp.main_process_first():  # one process builds the datasets' cache, the others reuse it
        cells = make_cells(plan, args)
    results = run_grid(cells, models, options, args.out, initial=initial, engine=args.engine, address=args.address)
    if not ddp.is_main():
        return 0
    print((args.out / "results.md").read_text())
    print(f"wrote {args.out / 'results.json'}, {args.out / 'results.md'} and {args.out / 'figures'} "
          f"({len(results['runs'])} runs)")
    return 0
