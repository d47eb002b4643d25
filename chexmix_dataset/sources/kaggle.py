"""Fetching a Kaggle-hosted source with the optional ``kaggle`` package, or one clear instruction.

Kaggle serves datasets only to signed-in users (an API token in ``~/.kaggle/kaggle.json`` or
``KAGGLE_USERNAME``/``KAGGLE_KEY``). CheXMix does not depend on the ``kaggle`` package (install it
with ``pip install chexmix[kaggle]``); when it is missing or has no token, the error says how to
download the archive by hand and where to unpack it for ``--data-dir``.

``import kaggle`` authenticates at import time and raises ``OSError`` without a token (kaggle
1.5 and later); both that and ``ImportError`` mean "not configured" here.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import datasets

from chexmix_dataset.errors import ChexmixInputError, first_line


def manual_download_message(slug: str, source: str, layout: str, reason: str) -> str:
    """The one-line instruction shown when a Kaggle source cannot be fetched automatically."""
    return (f"the {source} source is hosted on Kaggle ({slug}) and {reason}; download it with "
            f"`kaggle datasets download -d {slug}` (or from https://www.kaggle.com/datasets/{slug}), "
            f"unzip it into DIR/{source} and pass --data-dir DIR; that folder must hold: {layout}")


def kaggle_download(dl_manager: datasets.DownloadManager, slug: str, source: str, layout: str) -> Path:
    """Download and unzip Kaggle dataset ``slug`` under the download manager's cache; its folder.

    Reuses a previous complete download (marked by a ``.complete`` file) without asking Kaggle.
    """
    cache = dl_manager.download_config.cache_dir or datasets.config.DOWNLOADED_DATASETS_PATH
    target = Path(cache) / "kaggle" / slug.replace("/", "__")
    if (target / ".complete").is_file():
        return target
    try:
        kaggle = importlib.import_module("kaggle")
    except ImportError:
        raise ChexmixInputError(manual_download_message(
            slug, source, layout, "the optional `kaggle` package is not installed (pip install chexmix[kaggle])"
        )) from None
    except OSError as exc:  # kaggle's import-time authentication found no token
        detail = first_line(exc)
        raise ChexmixInputError(manual_download_message(
            slug, source, layout, f"the `kaggle` package has no API token ({detail})")) from None
    target.mkdir(parents=True, exist_ok=True)
    try:
        kaggle.api.dataset_download_files(slug, path=str(target), unzip=True, quiet=False)
    except Exception as exc:  # noqa: BLE001 - the kaggle client raises its own and HTTP library types
        raise ChexmixInputError(manual_download_message(
            slug, source, layout, f"the Kaggle download failed ({first_line(exc, with_type=True)})")) from None
    (target / ".complete").write_text(slug, encoding="utf-8")
    return target
