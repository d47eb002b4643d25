"""Fetching a source's public files through a ``datasets.DownloadManager``: mirrors, one clear
error per failure, a sha256 record of every download, and archives checked before use.

Mirror: with ``--mirror BASE`` (the builder config's ``mirror``) or ``$CHEXMIX_MIRROR=BASE``, a
URL ``https://HOST/PATH?QUERY`` is fetched from ``BASE/HOST/PATH?QUERY`` (:func:`mirrored_url`).

Records: the first download of a URL is hashed and recorded in ``chexmix_downloads.json`` next
to datasets' downloads, keyed by the original URL: ``source``, ``url``, ``fetched_from`` (the
mirror URL when one was used), ``path``, ``sha256``, ``bytes``. A recorded file still present
with its recorded size is reused whatever the mirror, so changing or dropping the mirror never
downloads again; :func:`download_records` returns what a builder used.

Why the checks: datasets caches a download under a hash of the URL it fetched and, for builders,
reuses it without asking the server again, so a truncated archive would be reused by every
rerun; it leaves an interrupted transfer as ``*.incomplete`` (never reused). Its extraction
cache trusts any non-empty folder, so an extraction cut short (a corrupt member, a full disk, a
killed job) is trusted too; a truncated zip (no central directory) leaves an empty folder and a
cached download that fails the same way forever. Hence each fresh download is checked (zip: CRC
of every member; JSON: parses) and deleted when it fails, and every extraction is compared with
the archive's listing (names and sizes) and redone when incomplete.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import zipfile
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import datasets

from chexmix_dataset.atomic import write_json
from chexmix_dataset.errors import ChexmixInputError, first_line
from chexmix_dataset.private_apis import open_progress_bars

logger = logging.getLogger(__name__)

MIRROR_ENV = "CHEXMIX_MIRROR"
RECORDS_FILE = "chexmix_downloads.json"
_HASH_CHUNK = 1 << 20  # bytes read at a time when hashing


def mirror_base(mirror: str | None = None) -> str | None:
    """The mirror base URL in force: ``mirror`` when given, else ``$CHEXMIX_MIRROR``; "" means none."""
    base = (os.environ.get(MIRROR_ENV, "") if mirror is None else mirror).strip()
    if not base:
        return None
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ChexmixInputError(f"mirror must be an http:// or https:// URL (--mirror or ${MIRROR_ENV}), "
                                f"got {base!r}")
    return base.rstrip("/")


def mirrored_url(url: str, mirror: str | None = None) -> str:
    """Where ``url`` is fetched from: ``https://HOST/PATH?QUERY`` -> ``BASE/HOST/PATH?QUERY``.

    ``mirror`` None reads ``$CHEXMIX_MIRROR``; no mirror (None or "") returns ``url`` unchanged.
    """
    base = mirror_base(mirror)
    if base is None:
        return url
    parts = urlsplit(url)
    return f"{base}/{parts.netloc}{parts.path}" + (f"?{parts.query}" if parts.query else "")


def sha256_file(path: str | os.PathLike) -> tuple[str, int]:
    """(hex sha256, size in bytes) of a file."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


# --- records --------------------------------------------------------------------------------


def _records_path(downloads_dir: str | os.PathLike | None) -> Path:
    return Path(downloads_dir or datasets.config.DOWNLOADED_DATASETS_PATH) / RECORDS_FILE


def read_records(downloads_dir: str | os.PathLike | None) -> dict[str, dict[str, Any]]:
    """The download records of a downloads folder, keyed by original URL ({} when none)."""
    path = _records_path(downloads_dir)
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        # Written atomically, so only an outside edit gets here: start afresh, the files stay cached.
        logger.warning("%s: unreadable download records (%s); recording again", path, exc)
        return {}
    return records if isinstance(records, dict) else {}


def _reusable(record: dict[str, Any] | None) -> bool:
    if not record:
        return False
    path = Path(record.get("path", ""))
    return path.is_file() and path.stat().st_size == record.get("bytes")


def download_records(builder: Any) -> list[dict[str, Any]]:
    """The records of the downloads a builder's sources use (see the module doc), in URL order.

    ``builder`` is a :class:`chexmix_dataset.dataset.builder.CheXMix` after ``download_and_prepare``.
    Each record: ``source``, ``url``, ``fetched_from``, ``path``, ``sha256``, ``bytes``. Empty
    when the builder reads ``--data-dir`` (nothing was downloaded).
    """
    config = builder.config
    if config.data_dir is not None:
        return []
    dl_manager = getattr(builder, "dl_manager", None)
    # The dl_manager's folder when download_and_prepare was given another download_config.
    downloads_dir = dl_manager.download_config.cache_dir if dl_manager is not None else builder.downloads_dir
    records = read_records(downloads_dir)
    return [records[url] for url in builder.source_urls() if url in records]


def format_record(record: dict[str, Any]) -> str:
    """One summary line: ``download SOURCE URL sha256=... bytes=...`` (+ ``via MIRROR_URL``)."""
    line = f"download {record['source']} {record['url']} sha256={record['sha256']} bytes={record['bytes']}"
    if record.get("fetched_from") and record["fetched_from"] != record["url"]:
        line += f" via {record['fetched_from']}"
    return line


# --- failures --------------------------------------------------------------------------------


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def _failure(exc: BaseException, url: str, source: str, layout: str) -> str:
    """What went wrong, in one line; offline advice only where the network is the problem."""
    return f"download of the {source} source failed: {_reason(exc, url, source, layout)}"


def _reason(exc: BaseException, url: str, source: str, layout: str) -> str:
    local = f"download it yourself and pass --data-dir DIR where DIR (or DIR/{source}) holds: {layout}"
    for cause in _chain(exc):
        # Matched by class name: aiohttp is optional until fsspec's HTTP support is installed.
        names = {cls.__name__ for cls in type(cause).__mro__}
        if isinstance(cause, ImportError):
            return (f"fsspec's HTTP support is not installed ({first_line(cause, with_type=True)}); "
                    "install it with pip install 'fsspec[http]' (chexmix declares it), or " + local)
        if "OfflineModeIsEnabled" in names:
            return f"offline mode is on (HF_HUB_OFFLINE); {local}"
        if "ClientResponseError" in names:
            status, reason = getattr(cause, "status", "?"), getattr(cause, "message", "") or ""
            return (f"the server answered HTTP {status} {reason}".rstrip()
                    + f"; check the URL and any --mirror/${MIRROR_ENV}, or {local}")
        if "ClientPayloadError" in names:
            return (f"the connection closed before the whole file arrived ({first_line(cause, with_type=True)}); "
                    "nothing was kept, rerun to fetch it again")
        if names & {"ClientConnectionError", "ConnectionError", "TimeoutError", "FSTimeoutError", "gaierror"}:
            return f"cannot reach {urlsplit(url).netloc} ({first_line(cause, with_type=True)}); without network access, {local}"
    return f"{first_line(exc, with_type=True)}; {local}"


# --- fetching --------------------------------------------------------------------------------


def _is_archive(url: str) -> bool:
    return urlsplit(url).path.lower().endswith(".zip")


def _check_content(url: str, path: Path) -> None:
    """Raise ChexmixInputError (naming ``url``) unless the download is a whole zip / JSON file."""
    if _is_archive(url):
        try:
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
            problem = f"is not a complete zip archive ({first_line(exc, with_type=True)})"
        else:
            problem = None if bad is None else f"is a damaged zip archive (member {bad} fails its CRC check)"
    elif urlsplit(url).path.lower().endswith(".json"):
        try:
            json.loads(path.read_bytes())
            problem = None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            problem = f"is not valid JSON ({first_line(exc, with_type=True)})"
    else:
        problem = None
    if problem:
        raise ChexmixInputError(f"the downloaded file {problem}; it was removed from the cache, "
                                "rerun to fetch it again", url)


def _close_progress_bars() -> None:
    """Finish the bars a failed transfer left open, so the error starts a line of its own."""
    for bar in open_progress_bars():
        bar.close()


def _remove_download(path: Path) -> None:
    """Delete a cached download and datasets' ``.json`` metadata beside it."""
    for stale in (path, path.with_name(path.name + ".json")):
        stale.unlink(missing_ok=True)


def fetch(dl_manager: datasets.DownloadManager, url: str, source: str, layout: str,
          mirror: str | None = None) -> Path:
    """The local copy of ``url``: the recorded file when still there, else downloaded, checked, recorded.

    ``mirror`` as in :func:`mirrored_url`. Failures raise one ChexmixInputError naming the URL
    fetched; a download that fails its check is deleted so that a rerun fetches it again.
    """
    downloads_dir = dl_manager.download_config.cache_dir
    record = read_records(downloads_dir).get(url)
    if _reusable(record) and not dl_manager.download_config.force_download:
        return Path(record["path"])
    fetch_url = mirrored_url(url, mirror)
    try:
        path = Path(dl_manager.download(fetch_url))
    except Exception as exc:  # noqa: BLE001 - fsspec, aiohttp and datasets raise unrelated types
        _close_progress_bars()
        raise ChexmixInputError(_failure(exc, fetch_url, source, layout), fetch_url) from None
    try:
        _check_content(fetch_url, path)
    except ChexmixInputError:
        _remove_download(path)
        raise
    sha256, size = sha256_file(path)
    if record and record.get("sha256") != sha256:
        logger.warning("%s: the new download differs from the recorded one (sha256 %s, now %s)",
                       url, record.get("sha256"), sha256)
    records = read_records(downloads_dir)
    records[url] = {"source": source, "url": url, "fetched_from": fetch_url, "path": str(path),
                    "sha256": sha256, "bytes": size}
    write_json(_records_path(downloads_dir), records)
    return path


def _missing_members(archive: Path, folder: Path) -> list[str]:
    """Members of ``archive`` absent from ``folder`` or of another size (unsafe paths ignored)."""
    base = folder.resolve()
    missing = []
    with zipfile.ZipFile(archive) as handle:
        for info in handle.infolist():
            if info.is_dir():
                continue
            target = (folder / info.filename).resolve()
            if not target.is_relative_to(base):
                continue  # datasets refuses to extract paths outside the folder (CVE-2007-4559)
            if not target.is_file() or target.stat().st_size != info.file_size:
                missing.append(info.filename)
    return missing


def extract(dl_manager: datasets.DownloadManager, archive: Path, url: str) -> Path:
    """``dl_manager.extract(archive)``, redone when the cached extraction is incomplete."""
    for attempt in range(2):
        try:
            folder = Path(dl_manager.extract(str(archive)))
        except Exception as exc:  # noqa: BLE001 - zipfile, shutil and the OS raise unrelated types
            raise ChexmixInputError(f"cannot extract the downloaded archive {archive} ({first_line(exc, with_type=True)})",
                                    url) from None
        missing = _missing_members(archive, folder) if folder.is_dir() else ["(nothing extracted)"]
        if not missing:
            return folder
        if attempt == 0:
            logger.warning("%s: cached extraction of %s lacks %d file(s) (%s, ...); extracting again",
                           url, archive, len(missing), missing[0])
            if folder.is_dir():
                shutil.rmtree(folder)
    raise ChexmixInputError(f"extracting {archive} leaves {len(missing)} file(s) missing ({missing[0]}, ...)", url)


def download_and_extract(dl_manager: datasets.DownloadManager, urls: dict[str, str], source: str,
                         layout: str, mirror: str | None = None) -> dict[str, Path]:
    """Each URL's local copy (zip archives extracted into folders), or one ChexmixInputError.

    ``layout`` describes the ``--data-dir`` folder that replaces the download, for the message;
    ``mirror`` as in :func:`mirrored_url`.
    """
    paths = {}
    for key, url in urls.items():
        path = fetch(dl_manager, url, source, layout, mirror)
        paths[key] = extract(dl_manager, path, url) if _is_archive(url) else path
    return paths
