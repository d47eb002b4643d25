"""Publishing CheXMix configs as a Hugging Face Hub dataset repository.

The repository layout, written identically by ``--local-dir`` and by a push::

    README.md                                              dataset card: YAML header + body
    data/{config}/{split}-{index:05d}-of-{count:05d}.parquet   rows with PNG bytes embedded

The README's YAML header is DATASET_CARD.md's header (license, task_categories, tags, ...)
with two generated entries: ``configs`` (which Parquet files make which split of which config;
one config is ``default: true``) and ``dataset_info`` (features, split sizes). That is all
``datasets.load_dataset(repo_or_folder, config)`` needs: no loading script, no CheXMix import.

Shards aim at :data:`TARGET_SHARD_BYTES` (500 MB, the ``datasets`` default) of Arrow data each,
a size that streams comfortably and stays well under the Hub's per-file limits; a split's rows
are divided evenly between its shards, so one may exceed the target by about a row.

Licences: every row carries its source's licence. Rows whose licence forbids redistributing
derivatives (an ``ND`` term, e.g. CC BY-NC-ND 3.0) or is unknown are refused (the whole publish
stops with one line naming those licences and their row counts) unless ``include_licences``
(``--include-licence``) names each of them. The README's licence section and its YAML
``license_details`` are generated from the rows actually published (:func:`licence_rows`).

A push is one commit holding every file whose content differs from the Hub's copy (compared by
LFS sha256 or git blob id) and deletions of files under ``data/`` that this publish no longer
produces. Parquet is written deterministically, so re-publishing unchanged content makes no
commit at all.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import datasets
import yaml
from datasets.table import embed_table_storage
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, DatasetCard, HfApi, get_token
from huggingface_hub.errors import HfHubHTTPError, HFValidationError
from huggingface_hub.errors import HTTPError as HubTransportError  # httpx's (1.x) or requests' (0.x) base error
from huggingface_hub.hf_api import RepoFile
from huggingface_hub.utils import validate_repo_id
from huggingface_hub.utils.sha import git_hash, sha_fileobj
from tqdm.auto import tqdm

from chexmix_dataset import __version__
from chexmix_dataset.atomic import atomic_dir, check_replaceable
from chexmix_dataset.dataset.builder import CONFIG_NAMES, load_chexmix
from chexmix_dataset.errors import ChexmixInputError, first_line
from chexmix_dataset.hub.licences import (  # noqa: F401
    check_publishable,
    licence_details,
    licence_rows,
    licence_section,
    publication_problem,
    with_licence_section,
)

DEFAULT_CONFIG = "mixed"
TARGET_SHARD_BYTES = 500_000_000
CARD_FIGURE = "docs/projection.png"
CARD_FILENAME = "DATASET_CARD.md"
NO_TOKEN_MESSAGE = "no Hugging Face token: set HF_TOKEN or run `hf auth login`"
REQUIRED_CARD_FIELDS = ("license", "task_categories")
EXPORT_NAMES = frozenset({"README.md", "data", "docs"})  # the top level of a tree written by write_hub_tree


_NAME_RE = re.compile(r"^\w+(\.\w+)*$")  # what `datasets` accepts as a split name; used for configs too


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


# --- the repository tree ------------------------------------------------------------------------


def shard_count(dataset: datasets.Dataset, target_bytes: int = TARGET_SHARD_BYTES) -> int:
    """Number of Parquet shards that brings each one to about ``target_bytes`` of Arrow data or less."""
    # _estimate_nbytes counts images stored as file paths at their file size, as push_to_hub does.
    return max(1, math.ceil(dataset._estimate_nbytes() / target_bytes))


def shard_path(config: str, split: str, index: int, count: int) -> str:
    """Repository path of one Parquet shard, in the Hub's ``{split}-{i:05d}-of-{n:05d}`` naming."""
    return f"data/{config}/{split}-{index:05d}-of-{count:05d}.parquet"


def write_hub_tree(
    datasets_by_config: Mapping[str, datasets.DatasetDict],
    out_dir: str | os.PathLike,
    card_text: str,
    *,
    default_config: str | None = None,
    target_shard_bytes: int = TARGET_SHARD_BYTES,
    assets: Mapping[str, Path] | None = None,
) -> Path:
    """Write the Hub dataset repository for these configs into ``out_dir``, atomically.

    Args:
        datasets_by_config: config name -> DatasetDict (split name -> Dataset).
        out_dir: the folder to create (replaced as a whole if it exists).
        card_text: DATASET_CARD.md: a YAML header with at least license and task_categories,
            then the Markdown body.
        default_config: the config ``load_dataset(repo)`` picks without a name; defaults to
            "mixed" when present, else the first config.
        target_shard_bytes: the Arrow size a shard aims at, in bytes; shards split a split's rows
            evenly, so one may exceed it by about a row.
        assets: files the card links to, as repository path -> local file; None means the
            card's figure (:func:`card_assets`).

    The README's ``license_details`` and licence section are generated from the rows' ``license``
    and ``origin`` columns (when every split has them); refusing rows is :func:`publish`'s job.

    Returns:
        ``out_dir`` as a Path, holding README.md and ``data/{config}/{split}-*.parquet``.
    """
    _check_layout(datasets_by_config)
    parse_card(card_text)  # fail on a bad card before the slow part
    default_config = default_config or (DEFAULT_CONFIG if DEFAULT_CONFIG in datasets_by_config
                                        else next(iter(datasets_by_config)))
    if default_config not in datasets_by_config:
        raise ChexmixInputError(f"default config {default_config!r} is not among the published configs")
    plan = [(config, split, dataset, shard_count(dataset, target_shard_bytes))
            for config, dataset_dict in datasets_by_config.items() for split, dataset in dataset_dict.items()]
    infos: dict[str, datasets.DatasetInfo] = {}
    with atomic_dir(out_dir, replaces=EXPORT_NAMES) as tmp, _datasets_progress_bars_off(), \
            tqdm(total=sum(count for *_, count in plan), unit="shard", desc="writing parquet shards") as bar:
        for config, split, dataset, count in plan:
            info = infos.setdefault(config, datasets.DatasetInfo(
                config_name=config, features=dataset.features, splits=datasets.SplitDict(),
                download_size=0, dataset_size=0))
            arrow_bytes = 0
            for index in range(count):
                path = tmp / shard_path(config, split, index, count)
                path.parent.mkdir(parents=True, exist_ok=True)
                shard = _with_embedded_files(dataset.shard(count, index, contiguous=True))
                shard.to_parquet(path)
                arrow_bytes += shard.data.nbytes
                info.download_size += path.stat().st_size
                bar.update()
            info.splits.add(datasets.SplitInfo(name=split, num_bytes=arrow_bytes, num_examples=len(dataset)))
            info.dataset_size += arrow_bytes
        has_licences = all("license" in dataset.column_names
                           for dataset_dict in datasets_by_config.values() for dataset in dataset_dict.values())
        readme = render_card(card_text, infos, default_config,
                             licence_rows(datasets_by_config) if has_licences else None)
        (tmp / "README.md").write_text(readme, encoding="utf-8")
        for repo_path, local in (card_assets() if assets is None else assets).items():
            (tmp / repo_path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(local, tmp / repo_path)
    return Path(out_dir)


def render_card(card_text: str, infos: Mapping[str, datasets.DatasetInfo], default_config: str,
                rows: Mapping[tuple[str, str], int] | None = None) -> str:
    """README.md: the card's YAML header plus generated ``configs`` and ``dataset_info``, then its body.

    ``rows`` (:func:`licence_rows`): when given, ``license_details`` and the body's licence
    section are generated from them.
    """
    card = parse_card(card_text)
    if rows is not None:
        card.data.license_details = licence_details(rows)
        card.text = with_licence_section(card.text, licence_section(rows))
    card.data.configs = [
        {
            "config_name": config,
            "data_files": [{"split": split, "path": f"data/{config}/{split}-*"} for split in info.splits],
            **({"default": True} if config == default_config else {}),
        }
        for config, info in infos.items()
    ]
    # config_name first, as the Hub writes it, so that a reader of the YAML sees which config it is.
    card.data.dataset_info = [{"config_name": config, **info._to_yaml_dict()} for config, info in infos.items()]
    return str(card)


def parse_card(card_text: str) -> DatasetCard:
    """The dataset card, checked for the metadata the Hub shows (license, task categories)."""
    try:
        card = DatasetCard(card_text)
    except (yaml.YAMLError, ValueError, TypeError) as exc:
        raise ChexmixInputError(f"YAML header is not valid: {first_line(exc)}", CARD_FILENAME) from None
    missing = [field for field in REQUIRED_CARD_FIELDS if not card.data.get(field)]
    if missing:
        raise ChexmixInputError(f"YAML header lacks {', '.join(missing)}", CARD_FILENAME)
    return card


def card_assets() -> dict[str, Path]:
    """The figure DATASET_CARD.md shows, from a source checkout (where maintainers publish)."""
    figure = Path(__file__).resolve().parents[2] / CARD_FIGURE  # the repository root, above chexmix_dataset/hub/
    return {CARD_FIGURE: figure} if figure.is_file() else {}


def read_dataset_card() -> str:
    """DATASET_CARD.md as shipped in the package, else from the repository root (a source checkout)."""
    from importlib import resources

    packaged = resources.files("chexmix_dataset").joinpath(CARD_FILENAME)
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    checkout = Path(__file__).resolve().parents[1] / CARD_FILENAME
    if checkout.is_file():
        return checkout.read_text(encoding="utf-8")
    raise ChexmixInputError("dataset card not found in the package or the source checkout", CARD_FILENAME)


def _check_layout(datasets_by_config: Mapping[str, datasets.DatasetDict]) -> None:
    if not datasets_by_config:
        raise ChexmixInputError("no configs to publish")
    for config, dataset_dict in datasets_by_config.items():
        # "data" is the folder holding every config; as a config name it would shadow them.
        if not _NAME_RE.match(config) or config == "data":
            raise ChexmixInputError(f"config name {config!r} cannot be a Hub config name")
        if not dataset_dict:
            raise ChexmixInputError(f"config {config!r} has no splits")
        first_features = next(iter(dataset_dict.values())).features
        for split, dataset in dataset_dict.items():
            if not _NAME_RE.match(split):
                raise ChexmixInputError(f"split name {split!r} of config {config!r} cannot be a Hub split name")
            # The card states one feature schema per config; load_dataset would fail on a mismatch.
            if dataset.features != first_features:
                raise ChexmixInputError(f"split {split!r} of config {config!r} has features unlike its other splits")


def _with_embedded_files(dataset: datasets.Dataset) -> datasets.Dataset:
    """The dataset with image files referenced by path replaced by their bytes, in memory."""
    return dataset.with_format("arrow").map(embed_table_storage, batched=True, keep_in_memory=True)


@contextlib.contextmanager
def _datasets_progress_bars_off() -> Iterator[None]:
    # One bar per shard is enough; datasets would add two more (map, parquet) for every shard.
    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()


# --- the Hub -------------------------------------------------------------------------------------


def check_repo_id(repo_id: str) -> str:
    """``repo_id`` if it is a valid ``ORG/NAME`` Hub repository id, else ChexmixInputError."""
    if repo_id.count("/") != 1:
        raise ChexmixInputError(f"malformed repo id {repo_id!r}: expected ORG/NAME")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise ChexmixInputError(f"malformed repo id {repo_id!r}: {first_line(exc)}") from None
    return repo_id


def resolve_token() -> str:
    """The Hugging Face token from ``HF_TOKEN`` or the login cache; never printed or logged."""
    token = os.environ.get("HF_TOKEN") or get_token()
    if not token:
        raise ChexmixInputError(NO_TOKEN_MESSAGE)
    return token


def plan_operations(
    tree_dir: str | os.PathLike, remote_files: Mapping[str, RepoFile]
) -> list[CommitOperationAdd | CommitOperationDelete]:
    """Commit operations that make the Hub repository hold exactly ``tree_dir``'s files.

    Adds every local file whose content the Hub lacks; deletes Hub files under ``data/`` that
    the tree no longer has. Other Hub files (.gitattributes, extra docs) are left alone.
    """
    tree_dir = Path(tree_dir)
    local = {path.relative_to(tree_dir).as_posix(): path for path in sorted(tree_dir.rglob("*")) if path.is_file()}
    additions = [CommitOperationAdd(path_in_repo=repo_path, path_or_fileobj=str(path))
                 for repo_path, path in local.items()
                 if repo_path not in remote_files or not _same_content(path, remote_files[repo_path])]
    deletions = [CommitOperationDelete(path_in_repo=repo_path) for repo_path in sorted(remote_files)
                 if repo_path.startswith("data/") and repo_path not in local]
    return [*additions, *deletions]


def open_hub_repo(repo_id: str, *, token: str, private: bool = False, repo_type: str = "dataset") -> HfApi:
    """A Hub client for ``repo_id``, creating the repository (a dataset unless told) if needed.

    ``private`` applies only to a repository created now. Called before any building so that a
    refused token or an unreachable Hub shows up at once, not after hours of projecting.
    """
    api = HfApi(token=token, library_name="chexmix", library_version=__version__)
    with _hub_errors(repo_id, token):
        api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
    return api


def push_hub_tree(api: HfApi, tree_dir: str | os.PathLike, repo_id: str, *, token: str, repo_type: str = "dataset",
                  commit_message: str = f"Publish CheXMix {__version__}") -> tuple[str | None, list[str]]:
    """Push ``tree_dir`` to the repository ``repo_id`` (a dataset unless told) in one commit.

    Returns the commit URL and the changed repository paths, or ``(None, [])`` when the Hub
    already holds identical files.
    """
    with _hub_errors(repo_id, token):
        remote = {entry.path: entry for entry in api.list_repo_tree(repo_id, repo_type=repo_type, recursive=True)
                  if isinstance(entry, RepoFile)}
    # Hashing local files is no Hub call: a local disk error must not read as a network failure.
    operations = plan_operations(tree_dir, remote)
    if not operations:
        return None, []
    with _hub_errors(repo_id, token):
        commit = api.create_commit(
            repo_id,
            operations,
            commit_message=commit_message,
            repo_type=repo_type,
        )
    return commit.commit_url, [operation.path_in_repo for operation in operations]


@contextlib.contextmanager
def _hub_errors(repo_id: str, token: str) -> Iterator[None]:
    """Turn network and HTTP failures into one ChexmixInputError line that never shows the token."""
    try:
        yield
    except (HubTransportError, OSError) as exc:
        raise ChexmixInputError(_hub_failure(repo_id, exc, token)) from None


def _same_content(local: Path, remote: RepoFile) -> bool:
    if remote.size != local.stat().st_size:
        return False
    if remote.lfs is not None:
        with local.open("rb") as handle:
            return sha_fileobj(handle).hex() == remote.lfs.sha256
    return git_hash(local.read_bytes()) == remote.blob_id


def _hub_failure(repo_id: str, exc: BaseException, token: str) -> str:
    status = getattr(getattr(exc, "response", None), "status_code", None) if isinstance(exc, HfHubHTTPError) else None
    if status == 401:
        reason = "the Hub refused the token (HTTP 401); check HF_TOKEN or run `hf auth login`"
    elif status == 403:
        reason = "the token may not create or write this repository (HTTP 403)"
    elif status is not None:
        reason = f"the Hub answered HTTP {status}: {first_line(exc)}"
    else:
        reason = f"cannot reach the Hugging Face Hub ({type(exc).__name__}: {first_line(exc)})"
    # Error texts from HTTP libraries can quote request headers; the token must never be shown.
    return f"{repo_id}: {reason}".replace(token, "<token>")


# --- the whole publish ---------------------------------------------------------------------------


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
    ``include_licences`` names those licences (:func:`check_publishable`). ``config_options``:
    config name -> builder options for it (what ``chexmix publish``'s dataset options ask for).
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
