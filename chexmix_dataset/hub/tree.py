"""The Hub dataset repository tree: Parquet shards with embedded images, and the README.

The layout, written identically by ``--local-dir``, ``chexmix build --engine ray --out`` and
before a push::

    README.md                                              dataset card (:mod:`.card`)
    data/{config}/{split}-{index:05d}-of-{count:05d}.parquet   rows with PNG bytes embedded
    docs/projection.png                                    the card's figure (from a source checkout)

Shards aim at :data:`TARGET_SHARD_BYTES` (500 MB, the ``datasets`` default) of Arrow data each,
a size that streams comfortably and stays well under the Hub's per-file limits; a split's rows
are divided evenly between its shards, so one may exceed the target by about a row. Parquet is
written deterministically: the same rows give byte-identical files.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
from pathlib import Path
from typing import Iterator, Mapping

import datasets
import pyarrow.compute as pc
from datasets.table import embed_table_storage
from tqdm.auto import tqdm

from chexmix_dataset.atomic import atomic_dir
from chexmix_dataset.errors import ChexmixInputError
from chexmix_dataset.hub.card import card_assets, parse_card, render_card
from chexmix_dataset.hub.licences import licence_rows

DEFAULT_CONFIG = "mixed"
TARGET_SHARD_BYTES = 500_000_000
EXPORT_NAMES = frozenset({"README.md", "data", "docs"})  # the top level of a tree written by write_hub_tree
IMAGE_BATCH_ROWS = 1000  # rows per batch when looking for images given by path

_NAME_RE = re.compile(r"^\w+(\.\w+)*$")  # what `datasets` accepts as a split name; used for configs too


def embedded_nbytes(dataset: datasets.Dataset) -> int:
    """Bytes of Arrow data ``dataset``'s rows will hold once their image files are embedded.

    Its rows' share of the backing Arrow table, plus, for each top-level Image column cell given
    by path only, the file's size in place of the path (as ``push_to_hub`` sizes its shards).
    """
    table = dataset.data  # the whole backing table; after select() or shuffle() only some rows are the dataset's
    nbytes = table.nbytes * len(dataset) // max(table.num_rows, 1)
    images = [name for name, feature in dataset.features.items() if isinstance(feature, datasets.Image)]
    if not images or not len(dataset):
        return nbytes
    for batch in dataset.select_columns(images).with_format("arrow").iter(batch_size=IMAGE_BATCH_ROWS):
        for name in images:
            column = batch.column(name)
            paths = pc.struct_field(column, "path")
            by_path = pc.and_(pc.and_(pc.is_valid(column), pc.is_null(pc.struct_field(column, "bytes"))),
                              pc.is_valid(paths))
            given = pc.filter(paths, by_path)
            nbytes += sum(os.path.getsize(path) for path in given.to_pylist()) - given.nbytes
    return nbytes


def shard_count(dataset: datasets.Dataset, target_bytes: int = TARGET_SHARD_BYTES) -> int:
    """Number of Parquet shards that brings each one to about ``target_bytes`` of Arrow data or less."""
    return max(1, math.ceil(embedded_nbytes(dataset) / target_bytes))


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
            card's figure (:func:`chexmix_dataset.hub.card.card_assets`).

    The README's ``license_details`` and licence section are generated from the rows' ``license``
    and ``origin`` columns (when every split has them); refusing rows is
    :func:`chexmix_dataset.hub.publish.publish`'s job.

    Returns:
        ``out_dir`` as a Path, holding README.md and ``data/{config}/{split}-*.parquet``.
    """
    check_layout(datasets_by_config)
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
                shard = with_embedded_files(dataset.shard(count, index, contiguous=True))
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


def check_layout(datasets_by_config: Mapping[str, datasets.DatasetDict]) -> None:
    """ChexmixInputError unless every config and split name is one the Hub can load, and each
    config's splits share one feature schema."""
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


def with_embedded_files(dataset: datasets.Dataset) -> datasets.Dataset:
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
