"""Options shared by the subcommands that build a CheXMix config (build, export, show, bench)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import datasets

from chexmix_dataset.commands.project import add_geometry_arguments, geometry_options
from chexmix_dataset.dataset.builder import CONFIG_NAMES, PAPER_CT_FRACTION, CheXMix, default_config, make_builder


def add_dataset_arguments(parser: argparse.ArgumentParser, config_required: bool = True) -> None:
    group = parser.add_argument_group("dataset")
    group.add_argument("--config", choices=CONFIG_NAMES, required=config_required, default=None if config_required else "sample",
                       help="CheXMix config")
    group.add_argument("--data-dir", type=Path, default=None,
                       help="local sources in their public layouts (default: download; 'sample' needs none)")
    group.add_argument("--split", default="60/40",
                       help="train/test ratio, patient-level: 60/40 (default), 80/20, ...; or 'official': the "
                            "sources' own split (qata_cov19, covid_qu_ex)")
    group.add_argument("--seed", type=int, default=0, help="seed of the split and the mix (0)")
    group.add_argument("--ct-fraction", type=float, default=None,
                       help=f"share of training CXRs replaced by CT projections (mixed, sample; default {PAPER_CT_FRACTION:.4f})")
    group.add_argument("--mode", choices=("physics", "seed"), default=None, help="projector mode (physics)")
    group.add_argument("--size", type=int, default=None, help="projection size in px (the config's: 512; sample 256)")
    add_geometry_arguments(group, defaults_from_config=True)
    group.add_argument("--device", default=None, help="projector device: cpu (numpy, default) or cuda / cuda:N (torch)")
    group.add_argument("--sources", default=None, help="comma-separated source adapters (default: the config's)")
    group.add_argument("--num-proc", type=int, default=None, help="processes for generation")
    group.add_argument("--cache-dir", type=Path, default=None, help="datasets cache folder")
    group.add_argument("--mirror", default=None, metavar="BASE",
                       help="fetch each download https://HOST/PATH from BASE/HOST/PATH "
                            "(default: $CHEXMIX_MIRROR; '' for none)")


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """``--engine local|ray`` and ``--address``: where the work runs (see :mod:`..distributed`)."""
    group = parser.add_argument_group("engine")
    group.add_argument("--engine", choices=("local", "ray"), default="local",
                       help="local: this machine; ray: one Ray task per item or run on a Ray cluster "
                            "(pip install 'chexmix[distributed]'; default: %(default)s)")
    group.add_argument("--address", default=None, metavar="ADDR",
                       help="Ray cluster to use, e.g. ray://HEAD:10001 (default: start a local Ray instance "
                            "on 127.0.0.1 with all CPUs, or --num-proc of them where the command has it)")


def builder_from_args(args: argparse.Namespace) -> CheXMix:
    """The configured builder the arguments describe (nothing is built yet)."""
    changed = {key: value for key, value in (("mode", args.mode), ("size_px", args.size), ("device", args.device))
               if value is not None}
    changed.update(geometry_options(args))
    projector = dataclasses.replace(default_config(args.config).projector, **changed)
    options = dict(split=args.split, seed=args.seed, ct_fraction=args.ct_fraction, projector=projector,
                   cache_dir=args.cache_dir)
    if args.mirror is not None:
        options["mirror"] = args.mirror
    if args.sources:
        options["sources"] = tuple(s.strip() for s in args.sources.split(",") if s.strip())
    return make_builder(args.config, args.data_dir, **options)


def load_dataset_from_args(args: argparse.Namespace) -> datasets.DatasetDict:
    """Build (or reuse) the config the arguments describe and return its DatasetDict."""
    builder = builder_from_args(args)
    builder.download_and_prepare(num_proc=args.num_proc)
    return builder.as_dataset()
