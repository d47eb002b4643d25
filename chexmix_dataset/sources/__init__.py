"""Source adapters: where CheXMix's annotated CTs and CXRs come from.

Each adapter offers ``NAME``, ``HOMEPAGE``, ``CITATION``, ``LICENSE`` (default per-row licence),
``URLS``, ``scan(root) -> SourceScan`` for a local copy in the public layout, and
``download(dl_manager, mirror=None) -> SourceScan`` (``mirror``: see :mod:`.download`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets

from ..errors import ChexmixInputError
from . import covid19_ct_seg, covid_chestxray, folders, phantom
from .base import CTCase, CXRCase, SkippedItem, SourceScan

SOURCES: dict[str, Any] = {
    adapter.NAME: adapter
    for adapter in (covid19_ct_seg, covid_chestxray, folders.CT_FOLDER, folders.CXR_FOLDER, phantom)
}

__all__ = ["SOURCES", "scan_sources", "source_root", "CTCase", "CXRCase", "SkippedItem", "SourceScan"]


def source_root(name: str, data_dir: Path) -> Path:
    """``data_dir / name`` when that folder exists, else ``data_dir`` itself."""
    own = Path(data_dir) / name
    return own if own.is_dir() else Path(data_dir)


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
    if data_dir is not None and not Path(data_dir).is_dir():
        raise ChexmixInputError("data dir does not exist or is not a folder", data_dir)
    merged = SourceScan()
    for name in names:
        adapter = SOURCES[name]
        if data_dir is not None:
            scan = adapter.scan(source_root(name, Path(data_dir)))
        elif dl_manager is None:
            raise ChexmixInputError(f"source {name} needs --data-dir (no download manager to fetch it with)")
        else:
            scan = adapter.download(dl_manager, mirror=mirror)
        merged.add(scan)
    return merged
