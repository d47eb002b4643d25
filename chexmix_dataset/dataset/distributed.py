"""Building a CheXMix config on a Ray cluster (``chexmix build --engine ray``).

The driver plans the splits exactly as the local builder does (:meth:`CheXMix.plan`: same
patient-level split, same seed, same items in the same order), then each planned item becomes
one Ray task that loads it, projects it (CTs) and encodes the row with :data:`FEATURES`, the
way the local builder's writer does. The driver writes the rows back in plan order into Arrow
files and hands the resulting :class:`datasets.DatasetDict` to
:func:`chexmix_dataset.hub.tree.write_hub_tree`, so the output folder is the Hub layout
``chexmix publish --local-dir`` writes::

    README.md
    data/{config}/{split}-{index:05d}-of-{count:05d}.parquet

and ``datasets.load_dataset(out_dir, config)`` reads it with no CheXMix import.

Failures:

- an item that cannot be read (:class:`ChexmixInputError` in the task: a corrupt or truncated
  volume) is skipped and its reason recorded, as the local builder skips it;
- a worker process that dies (killed, out of memory, lost node) is retried by Ray up to
  ``max_retries`` times; any other exception in a task stops the build and nothing is written.

Ray tasks rather than a Ray Data pipeline: the rows must come back in plan order with a
per-item skip, which plain tasks give directly (Ray Data reorders blocks unless told otherwise,
and needs pandas); each item is seconds of work, so per-task overhead (milliseconds) is nothing.

On a multi-node cluster every worker must see the planned files at the same paths (a shared
file system): the driver sends paths, not voxels.

Memory: at most ``window`` rows are in flight or waiting for their turn to be written, so the
driver holds a bounded number of rows whatever the size of the collection.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import datasets
from datasets.arrow_writer import ArrowWriter
from tqdm.auto import tqdm

from chexmix_dataset.atomic import check_replaceable
from chexmix_dataset.dataset.builder import CheXMix, _row_for, image_id_for
from chexmix_dataset.dataset.features import FEATURES
from chexmix_dataset.dataset.splits import SplitPlan
from chexmix_dataset.errors import ChexmixInputError
from chexmix_dataset.hub.card import read_dataset_card
from chexmix_dataset.hub.tree import EXPORT_NAMES, write_hub_tree
from chexmix_dataset.projector import ProjectorOptions
from chexmix_dataset.sources.base import CTCase, CXRCase

logger = logging.getLogger(__name__)

RowMaker = Callable[[CTCase | CXRCase, ProjectorOptions], dict]
DEFAULT_MAX_RETRIES = 3  # Ray's own default for tasks; retries only dead workers, not exceptions


@dataclass
class RayBuild:
    """What a Ray build produced.

    Attributes:
        out_dir: the Hub-layout folder written (``datasets.load_dataset(str(out_dir), config)``).
        plan: the split plan the rows follow.
        skipped: image id -> reason, for planned items that could not be loaded.
    """

    out_dir: Path
    plan: SplitPlan
    skipped: dict[str, str] = field(default_factory=dict)


LOOPBACK_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": Ray's single-machine mode, on 127.0.0.1


def require_ray(local_only: bool = False):
    """The ``ray`` module, or a one-line error saying how to install it.

    ``local_only``: when Ray is not imported yet, import it in its single-machine mode, in which
    a local instance advertises and listens on 127.0.0.1 only (Ray reads this at import).
    """
    if local_only and "ray" not in sys.modules:
        os.environ.setdefault(LOOPBACK_ONLY_ENV, "0")
    try:
        import ray
    except ImportError:
        raise ChexmixInputError("--engine ray needs Ray: pip install 'chexmix[distributed]'") from None
    return ray


@contextlib.contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[None]:
    """Connect to the Ray cluster at ``address``, or start a local instance with ``num_cpus`` CPUs.

    An already initialised Ray (a caller's own ``ray.init``) is used as it is and left running;
    an instance started here is shut down on exit. A local instance serves this machine alone,
    so it listens on 127.0.0.1 only (when Ray was not imported before).
    """
    ray = require_ray(local_only=not address)
    if ray.is_initialized():
        yield
        return
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    except ConnectionError as exc:
        raise ChexmixInputError(f"cannot connect to the Ray cluster at {address}: {exc}") from None
    try:
        yield
    finally:
        ray.shutdown()


def encoded_row_or_skip(item: CTCase | CXRCase, projector: ProjectorOptions,
                        row_for: RowMaker = _row_for) -> tuple[dict | None, str | None]:
    """The item's row encoded with :data:`FEATURES` (PNG bytes), or (None, reason) if unreadable.

    Runs inside a Ray task. Encoding here, where the row is made, sends compact PNG bytes back
    to the driver instead of pixel arrays, and is the very encoding the local builder applies.
    """
    try:
        return FEATURES.encode_example(row_for(item, projector)), None
    except ChexmixInputError as exc:
        return None, str(exc)


def build_with_ray(
    builder: CheXMix,
    out_dir: str | Path,
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    max_retries: int = DEFAULT_MAX_RETRIES,
    window: int | None = None,
    row_for: RowMaker = _row_for,
    card_text: str | None = None,
) -> RayBuild:
    """Build ``builder``'s config with one Ray task per planned item and write the Hub layout.

    Args:
        builder: a configured builder (:func:`.builder.make_builder`); only its plan is used.
        out_dir: the folder to write (replaced as a whole, atomically, if it holds an earlier
            Hub tree; refused if it holds anything else).
        address: a running Ray cluster (``ray://HOST:10001`` or ``HOST:6379``); None starts a
            local instance for the build.
        num_cpus: CPUs of the local instance (None: all); ignored with ``address``.
        max_retries: times Ray reruns a task whose worker died.
        window: rows in flight or waiting to be written at once (None: twice the cluster's CPUs).
        row_for: makes one row from a planned item (the local builder's own by default).
        card_text: the dataset card for README.md (None: the packaged DATASET_CARD.md).
    """
    out_dir = check_replaceable(out_dir, EXPORT_NAMES)  # before any slow work
    card_text = read_dataset_card() if card_text is None else card_text
    plan = builder.plan(_download_manager(builder))
    projector = builder.config.projector
    with ray_session(address, num_cpus), \
            tempfile.TemporaryDirectory(prefix=f".{out_dir.name}.arrow-", dir=out_dir.absolute().parent) as tmp:
        ray = require_ray()
        task = ray.remote(num_cpus=1, max_retries=max_retries)(encoded_row_or_skip)
        window = window or max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
        projector_ref, row_for_ref = ray.put(projector), ray.put(row_for)
        skipped: dict[str, str] = {}
        splits = {"train": plan.train, "test": plan.test}
        dataset = datasets.DatasetDict()
        with tqdm(total=sum(map(len, splits.values())), unit="item", desc="projecting on Ray") as bar:
            for split, items in splits.items():
                path = Path(tmp) / f"{split}.arrow"
                with ArrowWriter(features=FEATURES, path=str(path)) as writer:
                    for item, (row, reason) in zip(items, _in_order(ray, task, items, projector_ref, row_for_ref,
                                                                    window)):
                        if row is None:
                            skipped[image_id_for(item)] = reason
                            logger.warning("skipped %s: %s", image_id_for(item), reason)
                        else:
                            writer.write(row)
                        bar.update()
                    writer.finalize()
                dataset[split] = datasets.Dataset.from_file(str(path), info=datasets.DatasetInfo(features=FEATURES),
                                                            split=split)
        write_hub_tree({builder.config.name: dataset}, out_dir, card_text)
    return RayBuild(out_dir=out_dir, plan=plan, skipped=skipped)


def _in_order(ray, task, items: list, projector_ref, row_for_ref, window: int) -> Iterator[tuple[dict | None, str | None]]:
    """The tasks' results in the order of ``items``, with at most ``window`` unwritten at once."""
    refs: dict[int, object] = {}
    submitted = 0
    for index in range(len(items)):
        while submitted < len(items) and submitted - index < window:
            refs[submitted] = task.remote(items[submitted], projector_ref, row_for_ref)
            submitted += 1
        yield ray.get(refs.pop(index))


def _download_manager(builder: CheXMix) -> datasets.DownloadManager:
    """The download manager ``download_and_prepare`` would make, so that sources fetch into (and
    reuse) the same downloads folder as a local build; kept on the builder for the records."""
    # record_checksums stays at its default (False): datasets turns it on only for `datasets-cli test`.
    config = datasets.DownloadConfig(cache_dir=builder.downloads_dir, use_etag=False, token=builder.token,
                                     storage_options=builder.storage_options)
    builder.dl_manager = datasets.DownloadManager(dataset_name=builder.dataset_name, download_config=config,
                                                  data_dir=builder.config.data_dir, base_path=builder.base_path)
    return builder.dl_manager
