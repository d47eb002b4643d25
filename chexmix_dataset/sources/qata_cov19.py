"""QaTa-COV19 (Degerli et al., Qatar University and Tampere University; Kaggle
``aysendegerli/qatacov19-dataset``): COVID-19 CXRs with infection masks, version 2.

Layout of ``root`` (looked up with the search tool in public loaders of the Kaggle archive;
e.g. ``QaTa-COV19/QaTa-COV19-v2/Train Set/Images/*.png`` with ``.../Ground-truths/*.png``, a
loader reading ``Images/{id[5:]}.png`` for ground truth ``mask_<id>``, and loaders documenting
"image = Images/covid_1.png, gt = GTs/mask_covid_1.png")::

    QaTa-COV19/QaTa-COV19-v2/{Train Set,Test Set}/
        Images/NAME.png
        Ground-truths/mask_NAME.png        (8-bit PNG, 0/255; same size as the image)

``root`` may also be ``QaTa-COV19/`` or ``QaTa-COV19-v2/`` itself. Public loaders count 7,145
training and 2,113 test images in v2. The archive's older ``QaTa-COV19-v1`` folder is not read.

The collection's own split (``Train Set`` / ``Test Set``) is kept in ``CXRCase.official_split``
(``--split official`` honours it); train/validation lists published by third parties (LViT's
``Train_ID.xlsx``) are not used.

Masks are read with :func:`.annotations.load_masked_image`: each 8-connected component of the
binary mask is one lesion of type ``infection``.

Patients: the collection publishes no patient ids and documents no grouping of images of one
patient, so each image is its own patient (``patient_id`` = ``image_id``). COVID-QU-Ex's COVID-19
infection images are drawn from this collection, so the two are never built together (see
:data:`.covid_qu_ex.EXCLUSIVE_WITH`).

Licence: not determined offline (the Kaggle page's licence field could not be read here), so
every row says ``unknown``; ``chexmix publish`` refuses such rows unless told otherwise.
"""

from __future__ import annotations

import functools
from pathlib import Path

import datasets

from chexmix_dataset.errors import ChexmixInputError
from chexmix_dataset.sources.annotations import IMAGE_SUFFIXES, image_size, load_masked_image
from chexmix_dataset.sources.base import CXRCase, SkippedItem, SourceScan, source_folder
from chexmix_dataset.sources.kaggle import kaggle_download

NAME = "qata_cov19"
ORIGIN = "qata-cov19"
HOMEPAGE = "https://www.kaggle.com/datasets/aysendegerli/qatacov19-dataset"
KAGGLE_SLUG = "aysendegerli/qatacov19-dataset"
LICENSE = "unknown"
CITATION = """@article{degerli2021covid,
  title   = {COVID-19 infection map generation and detection from chest X-ray images},
  author  = {Degerli, Aysen and others},
  journal = {Health Information Science and Systems},
  volume  = {9},
  number  = {15},
  year    = {2021},
  doi     = {10.1007/s13755-021-00146-8}
}"""
URLS: dict[str, str] = {}  # Kaggle needs an API token: see :mod:`.kaggle`
EXCLUSIVE_WITH: dict[str, str] = {}  # no shared images known without an id mapping (see .patients)
VERSION_DIR = "QaTa-COV19-v2"
SPLITS = {"Train Set": "train", "Test Set": "test"}  # folder -> official split
IMAGE_DIR = "Images"
MASK_DIR = "Ground-truths"
MASK_PREFIX = "mask_"
LESION_TYPES = ((1, "infection"), (255, "infection"))
LAYOUT = (f"'QaTa-COV19/{VERSION_DIR}/{{Train Set,Test Set}}/{IMAGE_DIR}/NAME.png' with "
          f"'{MASK_DIR}/{MASK_PREFIX}NAME.png' as the Kaggle archive aysendegerli/qatacov19-dataset unzips")


def version_root(root: Path) -> Path | None:
    """The folder holding ``Train Set``/``Test Set``."""
    for candidate in (root / "QaTa-COV19" / VERSION_DIR, root / VERSION_DIR, root):
        if any((candidate / split / IMAGE_DIR).is_dir() for split in SPLITS):
            return candidate
    return None


def _files(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES}


def _scan_split(folder: Path, split: str, result: SourceScan, seen: dict[str, Path]) -> None:
    images = _files(folder / IMAGE_DIR)
    masks = _files(folder / MASK_DIR)
    for stem, image_path in images.items():
        mask_path = masks.get(MASK_PREFIX + stem)
        if mask_path is None:
            result.skipped.append(SkippedItem(str(image_path), f"no ground truth '{MASK_DIR}/{MASK_PREFIX}{stem}.png'"))
            continue
        image_id = f"{ORIGIN}-{stem}"
        if image_id in seen:
            result.skipped.append(SkippedItem(str(image_path), f"same file name as {seen[image_id]}; first kept"))
            continue
        try:
            if image_size(image_path) != image_size(mask_path):
                result.skipped.append(SkippedItem(str(mask_path), "ground-truth mask size differs from its image's"))
                continue
        except ChexmixInputError as exc:
            result.skipped.append(SkippedItem(stem, str(exc)))
            continue
        seen[image_id] = image_path
        result.cxr_cases.append(CXRCase(
            image_id=image_id, patient_id=image_id, origin=ORIGIN, license=LICENSE,
            load=functools.partial(load_masked_image, str(image_path), str(mask_path), LESION_TYPES),
            view="", official_split=split))
    result.skipped.extend(SkippedItem(str(path), "ground truth for an absent image")
                          for stem, path in masks.items()
                          if not (stem.startswith(MASK_PREFIX) and stem[len(MASK_PREFIX):] in images))


def scan(root: Path) -> SourceScan:
    """Scan a local copy of QaTa-COV19 v2 (see module doc)."""
    root = source_folder(root, NAME, LAYOUT)
    base = version_root(root)
    if base is None:
        raise ChexmixInputError(f"no 'Train Set/{IMAGE_DIR}' or 'Test Set/{IMAGE_DIR}' folder found; "
                                f"expected layout: {LAYOUT}", root / "QaTa-COV19" / VERSION_DIR)
    result = SourceScan()
    seen: dict[str, Path] = {}
    for folder, split in SPLITS.items():
        if (base / folder / IMAGE_DIR).is_dir():
            _scan_split(base / folder, split, result, seen)
    return result


def download(dl_manager: datasets.DownloadManager, mirror: str | None = None) -> SourceScan:
    """Fetch the Kaggle archive with the ``kaggle`` package (API token needed), then scan it.

    ``mirror`` does not apply: Kaggle files are fetched by the Kaggle client only.
    """
    return scan(kaggle_download(dl_manager, KAGGLE_SLUG, NAME, LAYOUT))
