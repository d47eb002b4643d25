"""``chexmix build --config C``: build a config and print a per-split summary."""

from __future__ import annotations

import argparse
from collections import Counter

import datasets

from ..builder import image_id_for
from ..composition import describe_composition, split_composition
from ..sources.download import download_records, format_record
from ..splits import SplitPlan
from .dataset_args import add_dataset_arguments, builder_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataset_arguments(parser)


def summarise(dataset: datasets.DatasetDict, plan: SplitPlan) -> str:
    """Images, lesions, patients and sources per split; skipped items and why."""
    lines = []
    skipped = [f"skipped {item.item}: {item.reason}" for item in plan.skipped]
    planned = {"train": plan.train, "test": plan.test}
    for split, rows in dataset.items():
        columns = rows.select_columns(["image_id", "origin", "patient_id", "objects"])
        lesions = sum(len(objects["id"]) for objects in columns["objects"])
        origins = Counter(columns["origin"])
        lines.append(
            f"{split:>5}: {len(rows)} images, {lesions} lesions, {len(set(columns['patient_id']))} patients; "
            + ", ".join(f"{origin} {count}" for origin, count in sorted(origins.items()))
        )
        lines.append(f"{'':>7}{describe_composition(split_composition(rows))}")
        produced = set(columns["image_id"])
        skipped += [f"skipped {image_id_for(item)}: could not be loaded (see the warning above)"
                    for item in planned.get(split, []) if image_id_for(item) not in produced]
    lines += skipped
    lines += source_table(dataset, plan)
    lines += [f"note: {note}" for note in plan.notes]
    lines.append(f"skipped items: {len(skipped)}")
    return "\n".join(lines)


def source_table(dataset: datasets.DatasetDict, plan: SplitPlan) -> list[str]:
    """One table line per origin over all splits: images, lesions, patients, licences; then
    the items each source adapter skipped, counted by adapter (their reasons are listed above)."""
    stats: dict[str, dict] = {}
    for rows in dataset.values():
        columns = rows.select_columns(["origin", "patient_id", "license", "objects"])
        for origin, patient, licence, objects in zip(columns["origin"], columns["patient_id"], columns["license"],
                                                     columns["objects"]):
            entry = stats.setdefault(origin, {"images": 0, "lesions": 0, "patients": set(), "licences": Counter()})
            entry["images"] += 1
            entry["lesions"] += len(objects["id"])
            entry["patients"].add(patient)
            entry["licences"][licence or "unknown"] += 1
    width = max([len("source"), *map(len, stats)])
    lines = [f"{'source':<{width}}  images  lesions  patients  licence"]
    for origin, entry in sorted(stats.items()):
        licences = ", ".join(f"{licence} ({count})" for licence, count in sorted(entry["licences"].items()))
        lines.append(f"{origin:<{width}}  {entry['images']:>6}  {entry['lesions']:>7}  {len(entry['patients']):>8}  "
                     f"{licences}")
    by_adapter = Counter(item.source or "unknown source" for item in plan.skipped)
    lines += [f"{adapter} skipped {count} item(s) (reasons above)" for adapter, count in sorted(by_adapter.items())]
    return lines


def run(args: argparse.Namespace) -> int:
    builder = builder_from_args(args)
    builder.download_and_prepare(num_proc=args.num_proc)
    dataset = builder.as_dataset()
    print(f"CheXMix {args.config} (split {args.split}, seed {args.seed}) in {builder.cache_dir}")
    # Planning again only reads metadata: the download manager download_and_prepare made reuses
    # the recorded downloads without the network, so the summary is the same whether the rows
    # were just generated or reused from the cache.
    plan = builder.plan(builder.dl_manager)
    for record in download_records(builder):
        print(format_record(record))
    print(summarise(dataset, plan))
    return 0
