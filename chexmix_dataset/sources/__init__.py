"""Source adapters: where CheXMix's annotated CTs and CXRs come from.

Every adapter satisfies :class:`~.base.SourceAdapter`: ``NAME``, ``HOMEPAGE``, ``CITATION``,
``LICENSE`` (default per-row licence), ``URLS``, ``LAYOUT``, ``EXCLUSIVE_WITH``,
``scan(root) -> SourceScan`` for a local copy in the public layout, and
``download(dl_manager, mirror=None) -> SourceScan`` (``mirror``: see :mod:`.download`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import datasets

from chexmix_dataset.errors import ChexmixInputError
from chexmix_dataset.sources import (
    covid19_20,
    covid19_ct_seg,
    covid_chestxray,
    covid_qu_ex,
    folders,
    mosmed,
    phantom,
    qata_cov19,
)
from chexmix_dataset.sources.base import CTCase, CXRCase, SkippedItem, SourceAdapter, SourceScan

SOURCES: dict[str, SourceAdapter] = {
    adapter.NAME: adapter
    for adapter in (covid19_ct_seg, covid_chestxray, covid_qu_ex, qata_cov19, mosmed, covid19_20,
                    folders.CT_FOLDER, folders.CXR_FOLDER, phantom)
}

__all__ = ["SOURCES", "check_exclusive", "scan_sources", "source_root", "CTCase", "CXRCase", "SkippedItem",
           "SourceAdapter", "SourceScan"]


def source_root(name: str, data_dir: Path) -> Path:
    """``data_dir / name`` when that folder exists, else ``data_dir`` itself."""
    own = Path(data_dir) / name
    return own if own.is_dir() else Path(data_dir)


def check_exclusive(names: list[str]) -> None:
    """Refuse sources that share images without a documented mapping (an adapter's ``EXCLUSIVE_WITH``).

    Two copies of one image under different ids would defeat the patient-level split.
    """
    for name in names:
        for other, reason in SOURCES[name].EXCLUSIVE_WITH.items():
            if other in names:
                raise ChexmixInputError(f"sources {name} and {other} cannot be built together: {reason}; "
                                        "choose one of them")


def scan_sources(names: list[str], data_dir: Path | None, dl_manager: datasets.DownloadManager | None,
                 mirror: str | None = None) -> SourceScan:
    """Scan (``data_dir`` given) or download (``data_dir`` None) each named source and merge them.

    The builder scans ``phantom`` itself (its sizes are config options, its files go to the
    builder's cache); here it takes its defaults. ``mirror``: base URL downloads are fetched
    through (None: ``$CHEXMIX_MIRROR``; see :mod:`.download`).
    """
    unknown = [name for name in names if name not in SOURCES]
    if unknown:
        raise ChexmixInputError(f"unknown source(s) {', '.join(unknown)}; choose from {', '.join(SOURCES)}")
    check_exclusive(names)
    if data_dir is not None and not Path(data_dir).is_dir():
        raise ChexmixInputError("--data-dir does not exist or is not a folder", data_dir)
    merged = SourceScan()
    for name in names:
        adapter = SOURCES[name]
        if data_dir is not None:
            scan = adapter.scan(source_root(name, Path(data_dir)))
        elif dl_manager is None:
            raise ChexmixInputError(f"source {name} needs --data-dir (no download manager to fetch it with)")
        else:
            scan = adapter.download(dl_manager, mirror=mirror)
        scan.skipped = [item if item.source else dataclasses.replace(item, source=name) for item in scan.skipped]
        merged.add(scan)
    return merged
