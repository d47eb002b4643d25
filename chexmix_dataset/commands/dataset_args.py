"""Options shared by the subcommands that build CheXMix configs (build, show, export, publish, bench).

:func:`add_dataset_arguments` adds the one "dataset" argument group; every option there means the
same thing in each of those commands and reaches the builder through :func:`builder_options_from_args`.
Options whose default the config decides (or that a command must know were not given, as
``bench --paper`` does for ``--split``) default to None; their help states the value used then.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Sequence

import datasets

from chexmix_dataset.commands.project import add_geometry_arguments, geometry_options
from chexmix_dataset.dataset.builder import (
    CONFIG_NAMES,
    PAPER_CT_FRACTION,
    CheXMix,
    default_config,
    load_chexmix,
    make_builder,
)
from chexmix_dataset.dataset.splits import SPLIT_FORMS
from chexmix_dataset.errors import ChexmixInputError

DEFAULT_SPLIT = "60/40"
DEFAULT_SEED = 0
MIXING_CONFIGS = ("mixed", "sample")  # the configs whose training CXRs --ct-fraction replaces
OFFLINE_CONFIGS = ("sample",)  # built from phantoms: they read no --data-dir


def config_name(text: str) -> str:
    """``--config C``: one of :data:`CONFIG_NAMES` (a usage error naming the choices otherwise)."""
    if text not in CONFIG_NAMES:
        raise argparse.ArgumentTypeError(f"unknown --config {text!r}; choose one of {', '.join(CONFIG_NAMES)}")
    return text


def config_list(text: str) -> list[str]:
    """``--config mixed,sample`` (publish): the names, in order, each once. The command checks
    them (``publish`` with :func:`chexmix_dataset.hub.publish.check_configs`)."""
    return list(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))


def add_dataset_arguments(parser: argparse.ArgumentParser, config_required: bool = True,
                          many_configs: bool = False, config_help: str | None = None) -> argparse._ArgumentGroup:
    """The "dataset" group: which config, from which data, split how, projected how.

    ``config_required=False`` leaves ``--config`` None when not given and lets the command check
    it together with its other options (``bench`` with ``--paper``/``--sweep``); ``many_configs``
    makes it a comma-separated list defaulting to every config (``publish``).
    """
    group = parser.add_argument_group("dataset", "which CheXMix config to build and how (the same options for "
                                      "build, show, export, publish and bench)")
    if many_configs:
        group.add_argument("--config", "--configs", dest="config", type=config_list, default=list(CONFIG_NAMES),
                           metavar="C[,C...]",
                           help=f"comma-separated CheXMix configs (default: {','.join(CONFIG_NAMES)})")
    else:
        group.add_argument("--config", type=config_name if config_required else str, required=config_required,
                           default=None,
                           metavar="{" + ",".join(CONFIG_NAMES) + "}",
                           help=config_help or f"CheXMix config: {', '.join(CONFIG_NAMES)} (required)")
    group.add_argument("--data-dir", type=Path, default=None,
                       help="local copies of the sources in their public layouts, one sub-folder per source "
                            "(default: download them; 'sample' reads none)")
    group.add_argument("--split", default=None,
                       help=f"the train/test ratio, patient-level (the built dataset's two splits are named "
                            f"'train' and 'test'): {SPLIT_FORMS} (the sources' own split: qata_cov19, "
                            f"covid_qu_ex) (default: {DEFAULT_SPLIT})")
    group.add_argument("--seed", type=int, default=None,
                       help=f"seed of the split and the mix (default: {DEFAULT_SEED})")
    group.add_argument("--ct-fraction", type=float, default=None,
                       help=f"share of training CXRs replaced by CT projections, {' and '.join(MIXING_CONFIGS)} "
                            f"only (default: {PAPER_CT_FRACTION:.4f}, the paper's 5/6)")
    group.add_argument("--mode", choices=("physics", "seed"), default=None,
                       help="projector mode: physics (Beer-Lambert) or seed (the published algorithm) "
                            "(default: physics)")
    group.add_argument("--size", type=int, default=None,
                       help="projection size in px (default: the config's, 512; sample 256)")
    add_geometry_arguments(group, defaults_from_config=True)
    group.add_argument("--projector-device", default=None, metavar="cpu|cuda",
                       help="where the projector renders: cpu (numpy) or cuda / cuda:N (torch) (default: cpu)")
    group.add_argument("--sources", default=None,
                       help="comma-separated source adapters (default: the config's own)")
    group.add_argument("--num-proc", type=int, default=None,
                       help="processes for generating the rows (default: one)")
    group.add_argument("--cache-dir", type=Path, default=None,
                       help="datasets cache folder (default: the datasets library's, ~/.cache/huggingface/datasets)")
    group.add_argument("--mirror", default=None, metavar="BASE",
                       help="fetch each download https://HOST/PATH from BASE/HOST/PATH "
                            "(default: $CHEXMIX_MIRROR; '' for none)")
    return group


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """``--engine local|ray`` and ``--address``: where the work runs (see :mod:`..distributed`)."""
    group = parser.add_argument_group("engine")
    group.add_argument("--engine", choices=("local", "ray"), default="local",
                       help="local: this machine; ray: one Ray task per item or run on a Ray cluster "
                            "(pip install 'chexmix[distributed]'; default: %(default)s)")
    group.add_argument("--address", default=None, metavar="ADDR",
                       help="Ray cluster to use, e.g. ray://HEAD:10001 (default: start a local Ray instance "
                            "on 127.0.0.1 with all CPUs, or --num-proc of them where the command has it)")


def check_dataset_args(args: argparse.Namespace, configs: Sequence[str]) -> None:
    """Refuse dataset options that none of ``configs`` can honour; warn about ones they ignore.

    Raises:
        ChexmixInputError: ``--ct-fraction`` outside [0, 1] or for configs that mix nothing,
            ``--num-proc`` below 1.
    """
    if args.ct_fraction is not None and not set(configs) & set(MIXING_CONFIGS):
        raise ChexmixInputError(f"--ct-fraction replaces training CXRs by CT projections, which only "
                                f"{' and '.join(MIXING_CONFIGS)} do; --config {','.join(configs)} has none to replace")
    if args.ct_fraction is not None and not 0.0 <= args.ct_fraction <= 1.0:  # before any download
        raise ChexmixInputError(f"--ct-fraction must be in [0, 1], got {args.ct_fraction}")
    if args.num_proc is not None and args.num_proc < 1:
        raise ChexmixInputError(f"--num-proc must be at least 1, got {args.num_proc}")
    if args.data_dir is not None and set(configs) <= set(OFFLINE_CONFIGS):
        print(f"warning: --data-dir {args.data_dir} is not used: --config {','.join(configs)} is built from "
              "phantoms and reads no source data", file=sys.stderr)


def builder_options_from_args(args: argparse.Namespace, config: str) -> dict:
    """:func:`make_builder` keyword options for ``config`` from the options that were given.

    Options left out keep the builder's defaults, so ``bench`` can add its own per run; ``split``
    (:data:`DEFAULT_SPLIT` when not given) is always there.
    """
    options: dict = {"split": DEFAULT_SPLIT if args.split is None else args.split}
    changed = {key: value for key, value in (("mode", args.mode), ("size_px", args.size),
                                             ("device", args.projector_device)) if value is not None}
    changed.update(geometry_options(args))
    if changed:
        options["projector"] = dataclasses.replace(default_config(config).projector, **changed)
    for name in ("seed", "ct_fraction", "cache_dir", "mirror"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    if args.sources:
        options["sources"] = tuple(s.strip() for s in args.sources.split(",") if s.strip())
    if config not in MIXING_CONFIGS:
        options.pop("ct_fraction", None)  # refused by check_dataset_args unless another config mixes
    return options


def check_engine_args(args: argparse.Namespace) -> None:
    """``--address`` only with ``--engine ray`` (see :func:`add_engine_arguments`)."""
    if args.address and args.engine != "ray":
        raise ChexmixInputError("--address names a Ray cluster: use it with --engine ray")


def builder_from_args(args: argparse.Namespace) -> CheXMix:
    """The configured builder of ``--config`` the arguments describe (nothing is built yet)."""
    check_dataset_args(args, [args.config])
    return make_builder(args.config, args.data_dir, **builder_options_from_args(args, args.config))


def load_dataset_from_args(args: argparse.Namespace) -> datasets.DatasetDict:
    """Build (or reuse) the config the arguments describe and return its DatasetDict."""
    check_dataset_args(args, [args.config])
    return load_chexmix(args.config, args.data_dir, num_proc=args.num_proc,
                        **builder_options_from_args(args, args.config))
