"""``chexmix build --config C``: build a config and print a per-split summary."""

from __future__ import annotations

import argparse
from collections import Counter

import datasets

from ..builder import image_id_for
from ..splits import SplitPlan
from .dataset_args import add_dataset_arguments, builder_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataset_arguments(parser)


def summarise(dataset: datasets.DatasetDict, plan: SplitPlan) -> str:
    """Images, lesions, patients and sources per split; skipped items and why."""
    lines = []
    planned = {"train": plan.train, "test": plan.test}
    for split, rows in dataset.items():
        columns = rows.select_columns(["image_id", "source", "origin", "patient_id", "objects"])
        lesions = sum(len(objects["id"]) for objects in columns["objects"])
        origins = Counter(columns["origin"])
        lines.append(
            f"{split:>5}: {len(rows)} images, {lesions} lesions, {len(set(columns['patient_id']))} patients; "
            + ", ".join(f"{origin} {count}" for origin, count in sorted(origins.items()))
        )
        produced = set(columns["image_id"])
        missing = [item for item in planned.get(split, []) if image_id_for(item) not in produced]
        for item in missing:
            lines.append(f"       skipped {image_id_for(item)}: could not be loaded (see the warning above)")
    for skipped in plan.skipped:
        lines.append(f"skipped {skipped.item}: {skipped.reason}")
    for note in plan.notes:
        if not note.startswith("skipped "):
            lines.append(f"note: {note}")
    total_skipped = sum(1 for line in lines if "skipped " in line)
    lines.append(f"skipped items: {total_skipped}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    builder = builder_from_args(args)
    builder.download_and_prepare(num_proc=args.num_proc)
    dataset = builder.as_dataset()
    print(f"CheXMix {args.config} (split {args.split}, seed {args.seed}) in {builder.cache_dir}")
    # Planning again only reads metadata (downloads come from datasets' cache), so the summary
    # is the same whether the rows were just generated or reused from the cache.
    download_config = datasets.DownloadConfig(cache_dir=builder._cache_downloaded_dir)
    dl_manager = datasets.DownloadManager(dataset_name="chexmix", download_config=download_config)
    print(summarise(dataset, builder.plan(dl_manager)))
    return 0
