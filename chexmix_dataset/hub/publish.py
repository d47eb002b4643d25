"""Publishing CheXMix configs as a Hugging Face Hub dataset repository (``chexmix publish``).

:func:`publish` checks everything it can before the slow build (repository id, configs, data
folder, output folder, dataset card, token and Hub access), builds the configs, refuses rows it
may not publish, writes the repository tree (:mod:`.tree`, with the card from :mod:`.card`)
and either leaves it in ``--local-dir`` or pushes it in one commit (:mod:`.push`).

Licences: every row carries its source's licence. Rows whose licence forbids redistributing
derivatives (an ``ND`` term, e.g. CC BY-NC-ND 3.0) or is unknown are refused (the whole publish
stops with one line naming those licences and their row counts) unless ``include_licences``
(``--include-licence``) names each of them (:mod:`.licences`).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import datasets

from chexmix_dataset.atomic import check_replaceable
from chexmix_dataset.dataset.builder import CONFIG_NAMES, load_chexmix
from chexmix_dataset.errors import ChexmixInputError
from chexmix_dataset.hub.card import parse_card, read_dataset_card
from chexmix_dataset.hub.licences import check_publishable, licence_rows
from chexmix_dataset.hub.push import check_repo_id, open_hub_repo, push_hub_tree, resolve_token
from chexmix_dataset.hub.tree import EXPORT_NAMES, TARGET_SHARD_BYTES, write_hub_tree


@dataclass(frozen=True)
class PublishResult:
    """What a publish did.

    Attributes:
        files: repository paths of the tree, e.g. ``data/mixed/train-00000-of-00001.parquet``.
        local_dir: the folder written with ``--local-dir``; None after a push.
        commit_url: the Hub commit; None with ``--local-dir`` or when the Hub was already up to date.
        changed: repository paths added, updated or deleted by the commit.
    """

    files: list[str]
    local_dir: Path | None
    commit_url: str | None
    changed: list[str]


def build_config(config: str, data_dir: str | os.PathLike | None, **options) -> datasets.DatasetDict:
    """One CheXMix config, built (or reused from the ``datasets`` cache) by the builder with
    :func:`~chexmix_dataset.dataset.builder.load_chexmix` ``options`` (split, seed, projector, ...)."""
    return load_chexmix(config, data_dir=data_dir, **options)


def check_configs(configs: Sequence[str]) -> list[str]:
    """``configs`` without duplicates, each one of :data:`CONFIG_NAMES`."""
    unknown = [config for config in configs if config not in CONFIG_NAMES]
    if unknown or not configs:
        raise ChexmixInputError(f"unknown config(s) {', '.join(unknown) or '(none given)'}; "
                                f"choose from {', '.join(CONFIG_NAMES)}")
    return list(dict.fromkeys(configs))


def publish(
    repo_id: str,
    configs: Sequence[str] = CONFIG_NAMES,
    data_dir: str | os.PathLike | None = None,
    private: bool = False,
    local_dir: str | os.PathLike | None = None,
    *,
    card_text: str | None = None,
    target_shard_bytes: int = TARGET_SHARD_BYTES,
    include_licences: Sequence[str] = (),
    config_options: Mapping[str, Mapping] | None = None,
) -> PublishResult:
    """Build ``configs`` and push them to the Hub dataset ``repo_id``, or write them to ``local_dir``.

    With ``local_dir`` nothing is pushed and no token is needed; the folder appears complete or
    not at all. Without it the tree is written to a temporary folder, pushed in one commit, and
    removed. ``card_text`` defaults to the packaged DATASET_CARD.md. Rows under a no-derivatives
    or unknown licence stop the publish before anything is written or pushed, unless
    ``include_licences`` names those licences (:func:`chexmix_dataset.hub.licences.check_publishable`).
    ``config_options``: config name -> builder options for it (what ``chexmix publish``'s dataset
    options ask for).
    """
    repo_id = check_repo_id(repo_id)
    configs = check_configs(configs)
    if data_dir is not None and not Path(data_dir).is_dir():
        raise ChexmixInputError("--data-dir does not exist or is not a folder", data_dir)
    if local_dir is not None:
        check_replaceable(local_dir, EXPORT_NAMES)  # before the slow build
    card_text = read_dataset_card() if card_text is None else card_text
    parse_card(card_text)
    token = None if local_dir is not None else resolve_token()
    api = None if token is None else open_hub_repo(repo_id, token=token, private=private)
    datasets_by_config = {config: build_config(config, data_dir, **(config_options or {}).get(config, {}))
                          for config in configs}
    check_publishable(licence_rows(datasets_by_config), include_licences)
    if local_dir is not None:
        tree = write_hub_tree(datasets_by_config, local_dir, card_text, target_shard_bytes=target_shard_bytes)
        return PublishResult(_tree_files(tree), tree, None, [])
    with tempfile.TemporaryDirectory(prefix="chexmix-publish-") as tmp:
        tree = write_hub_tree(datasets_by_config, Path(tmp) / "repo", card_text,
                              target_shard_bytes=target_shard_bytes)
        commit_url, changed = push_hub_tree(api, tree, repo_id, token=token)
        return PublishResult(_tree_files(tree), None, commit_url, changed)


def _tree_files(tree: Path) -> list[str]:
    return sorted(path.relative_to(tree).as_posix() for path in tree.rglob("*") if path.is_file())
