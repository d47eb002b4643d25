"""``chexmix publish``: build CheXMix configs and push them to the Hugging Face Hub as Parquet.

    chexmix publish --repo-id ORG/NAME [--configs mixed,sample] [--data-dir D] [--private]
                    [--local-dir DIR] [--include-licence LICENCE[,...]]

``--local-dir DIR`` writes the same repository tree to DIR and pushes nothing; load it back
with ``datasets.load_dataset(DIR, "mixed")``. The token comes from ``HF_TOKEN`` or the login
cache (``hf auth login``) and is never printed.

Rows whose licence forbids redistributing derivatives (ND) or is unknown stop the publish with one
line naming those licences and their row counts; ``--include-licence CC-BY-NC-ND-3.0,unknown``
publishes them anyway, for publishers who hold the right to (see :mod:`chexmix_dataset.hub.publish`).
"""

from __future__ import annotations

import argparse

from chexmix_dataset.dataset.builder import CONFIG_NAMES
from chexmix_dataset.hub.publish import publish
from chexmix_dataset.hub.tree import TARGET_SHARD_BYTES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo-id", required=True, metavar="ORG/NAME", help="Hub dataset repository")
    parser.add_argument("--configs", default=",".join(CONFIG_NAMES),
                        help=f"comma-separated configs to publish (default: {','.join(CONFIG_NAMES)})")
    parser.add_argument("--data-dir", default=None, metavar="D", help="downloaded source data, as for `chexmix build`")
    parser.add_argument("--private", action="store_true", help="create the repository as private (new repos only)")
    parser.add_argument("--local-dir", default=None, metavar="DIR",
                        help="write the repository tree to DIR instead of pushing (no token needed)")
    parser.add_argument("--include-licence", "--include-license", dest="include_licence", default="",
                        metavar="LICENCE[,...]",
                        help="publish rows under these no-derivatives or unknown licences too (refused by default)")
    parser.epilog = (f"Parquet shards hold about {TARGET_SHARD_BYTES // 1_000_000} MB of data each, "
                     "small enough to stream.")


def run(args: argparse.Namespace) -> int:
    configs = [name.strip() for name in args.configs.split(",") if name.strip()]
    include = [name.strip() for name in args.include_licence.split(",") if name.strip()]
    result = publish(args.repo_id, configs, data_dir=args.data_dir, private=args.private, local_dir=args.local_dir,
                     include_licences=include)
    if result.local_dir is not None:
        print(f"wrote {len(result.files)} files to {result.local_dir}")
    elif result.commit_url is None:
        print(f"{args.repo_id} is already up to date; no commit made")
    else:
        print(f"pushed {len(result.changed)} changed file(s) in one commit: {result.commit_url}")
    return 0
