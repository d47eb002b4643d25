"""``chexmix publish``: build CheXMix configs and push them to the Hugging Face Hub as Parquet.

    chexmix publish --repo-id ORG/NAME [--config mixed,sample] [--data-dir D] [--private]
                    [--local-dir DIR] [--include-licence LICENCE[,...]] [dataset options of chexmix build]

The dataset options (``--split``, ``--seed``, ``--mirror``, ...) are those of ``chexmix build``
and apply to every config published; ``--config`` (also spelled ``--configs``) takes a list.
``--local-dir DIR`` writes the same repository tree to DIR and pushes nothing; load it back
with ``datasets.load_dataset(DIR, "mixed")``. The token comes from ``HF_TOKEN`` or the login
cache (``hf auth login``) and is never printed.

Rows whose licence forbids redistributing derivatives (ND) or is unknown stop the publish with one
line naming those licences and their row counts; ``--include-licence CC-BY-NC-ND-3.0,unknown``
publishes them anyway, for publishers who hold the right to (see :mod:`chexmix_dataset.hub.publish`).
"""

from __future__ import annotations

import argparse

from chexmix_dataset.commands.dataset_args import add_dataset_arguments, builder_options_from_args, check_dataset_args
from chexmix_dataset.hub.publish import check_configs, publish
from chexmix_dataset.hub.tree import TARGET_SHARD_BYTES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo-id", required=True, metavar="ORG/NAME", help="Hub dataset repository (required)")
    parser.add_argument("--private", action="store_true",
                        help="create the repository as private (new repos only; default: public)")
    parser.add_argument("--local-dir", default=None, metavar="DIR",
                        help="write the repository tree to DIR instead of pushing (no token needed; default: push)")
    parser.add_argument("--include-licence", "--include-license", dest="include_licence", default="",
                        metavar="LICENCE[,...]",
                        help="publish rows under these no-derivatives or unknown licences too (default: none, "
                             "such rows are refused)")
    add_dataset_arguments(parser, many_configs=True)
    parser.epilog = (f"Parquet shards hold about {TARGET_SHARD_BYTES // 1_000_000} MB of data each, "
                     "small enough to stream.")


def run(args: argparse.Namespace) -> int:
    include = [name.strip() for name in args.include_licence.split(",") if name.strip()]
    check_configs(args.config)
    check_dataset_args(args, args.config)

    num_proc = {} if args.num_proc is None else {"num_proc": args.num_proc}
    options = {config: {**builder_options_from_args(args, config), **num_proc} for config in args.config}
    result = publish(args.repo_id, args.config, data_dir=args.data_dir, private=args.private,
                     local_dir=args.local_dir, include_licences=include, config_options=options)
    if result.local_dir is not None:
        print(f"wrote {len(result.files)} files to {result.local_dir}")
    elif result.commit_url is None:
        print(f"{args.repo_id} is already up to date; no commit made")
    else:
        print(f"pushed {len(result.changed)} changed file(s) in one commit: {result.commit_url}")
    return 0
