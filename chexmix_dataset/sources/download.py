"""Fetching a source's public archives through a ``datasets.DownloadManager``, with one clear error."""

from __future__ import annotations

from pathlib import Path

import datasets

from ..errors import ChexmixInputError


def download_and_extract(dl_manager: datasets.DownloadManager, urls: dict[str, str], source: str,
                         layout: str) -> dict[str, Path]:
    """``dl_manager.download_and_extract(urls)`` as local paths, or a ChexmixInputError.

    ``layout`` describes the ``--data-dir`` folder that replaces the download, for the message.
    """
    try:
        paths = dl_manager.download_and_extract(urls)
    except Exception as exc:  # noqa: BLE001 - requests, httpx, fsspec and aiohttp raise unrelated types
        detail = str(exc).splitlines()[0] if str(exc) else ""
        raise ChexmixInputError(
            f"download of the {source} source failed ({type(exc).__name__}: {detail}); "
            f"without network access, download it yourself and pass --data-dir DIR where DIR "
            f"(or DIR/{source}) holds: {layout}"
        ) from None
    return {key: Path(value) for key, value in paths.items()}
