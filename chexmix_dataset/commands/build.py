"""``chexmix build --config C``: build a config and print a per-split summary.

``--out DIR`` also writes the rows in the Hub layout ``chexmix publish --local-dir`` writes
(``datasets.load_dataset(DIR, C)`` reads it). ``--engine ray --out DIR`` projects the items as
Ray tasks (:mod:`chexmix_dataset.dataset.distributed`) and writes the same rows into DIR.
"""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from pathlib import Path
from typing import Mapping

import datasets

from chexmix_dataset.commands.dataset_args import (
    add_dataset_arguments,
    add_engine_arguments,
    builder_from_args,
    check_engine_args,
)
from chexmix_dataset.dataset.builder import image_id_for
from chexmix_dataset.dataset.composition import describe_composition, split_composition
from chexmix_dataset.dataset.splits import SplitPlan
from chexmix_dataset.errors import ChexmixInputError
from chexmix_dataset.sources.download import download_records, format_record

NOT_LOADED = "could not be loaded (see the warning above)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataset_arguments(parser)
    add_engine_arguments(parser)
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="also write the rows as Hub-layout Parquet into DIR (atomically; required with "
                             "--engine ray)")


def summarise(dataset: datasets.DatasetDict, plan: SplitPlan, reasons: Mapping[str, str] | None = None) -> str:
    """Images, lesions, patients and sources per split; skipped items and why.

    ``reasons``: image id -> why a planned item was not produced, where the build recorded it.
    """
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
        skipped += [f"skipped {image_id_for(item)}: {(reasons or {}).get(image_id_for(item), NOT_LOADED)}"
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
    from chexmix_dataset.atomic import check_replaceable
    from chexmix_dataset.hub.card import read_dataset_card
    from chexmix_dataset.hub.tree import EXPORT_NAMES, write_hub_tree

    if args.engine == "ray" and args.out is None:
        raise ChexmixInputError("--engine ray writes its rows to --out DIR: give --out")
    check_engine_args(args)
    if args.out is not None:
        check_replaceable(args.out, EXPORT_NAMES)  # before the slow build
    builder = builder_from_args(args)
    if args.engine == "ray":
        return _run_on_ray(args, builder)
    builder.download_and_prepare(num_proc=args.num_proc)
    dataset = builder.as_dataset()
    print(f"CheXMix {args.config} (split {builder.config.train_test_split}, seed {builder.config.seed}) in {builder.cache_dir}")
    if args.out is not None:
        write_hub_tree({args.config: dataset}, args.out, read_dataset_card())
        print(f"wrote {args.out}")
    # Planning again only reads metadata: the download manager download_and_prepare made reuses
    # the recorded downloads without the network, so the summary is the same whether the rows
    # were just generated or reused from the cache.
    plan = builder.plan(builder.dl_manager)
    for record in download_records(builder):
        print(format_record(record))
    print(summarise(dataset, plan))
    return 0


def _run_on_ray(args: argparse.Namespace, builder) -> int:
    from chexmix_dataset.dataset.distributed import build_with_ray

    result = build_with_ray(builder, args.out, address=args.address, num_cpus=args.num_proc)
    print(f"CheXMix {args.config} (split {builder.config.train_test_split}, seed {builder.config.seed}) built on Ray into {result.out_dir}")
    for record in download_records(builder):
        print(format_record(record))
    # Read back what was written, so that the summary describes the output folder itself.
    with tempfile.TemporaryDirectory(prefix="chexmix-build-") as cache:
        dataset = datasets.load_dataset(str(result.out_dir), args.config, cache_dir=cache)
        print(summarise(dataset, result.plan, result.skipped))
        del dataset  # its Arrow files live in `cache`
    return 0
