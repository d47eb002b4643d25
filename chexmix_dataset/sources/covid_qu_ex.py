"""COVID-QU-Ex (Tahir et al., Qatar University; Kaggle ``anasmohammedtahir/covidqu``): its
infection-segmentation part, 2,913 COVID-19 CXRs with infection masks and 2,913 negatives.

Layout of ``root`` (looked up with the search tool; sources cited). The Kaggle archive unpacks
into a doubled folder, as torch_em's ``covid_qu_ex.py`` loader (constantinpape/torch-em,
``Infection Segmentation Data/Infection Segmentation Data``) and several Kaggle notebooks
(``/kaggle/input/covidqu/Infection Segmentation Data/Infection Segmentation Data/Train/...``)
read it::

    Infection Segmentation Data/Infection Segmentation Data/{Train,Val,Test}/
        {COVID-19,Non-COVID,Normal}/
            images/NAME.png
            infection masks/NAME.png      (same file name as the image; 8-bit PNG, 0/255)
            lung masks/NAME.png           (same file name; 8-bit PNG, 0/255)

A single ``Infection Segmentation Data/`` level, or ``root`` being that folder itself
(``root/Train/...``), is accepted too. The archive's ``Lung Segmentation Data`` part (33,920
CXRs with lung masks only, no lesion annotation) is not read.

Negatives: the ``Non-COVID`` (other pneumonia) and ``Normal`` classes have no COVID-19
infection; their infection masks are empty (the issue's description of the collection), and
one public loader found no ``infection masks`` folder for them at all (it then used all-zero
masks). Either way they are lesion-free rows. Their ``origin`` names the class
(``covid-qu-ex/non-covid``), so a user can drop them: Non-COVID lungs hold opacities that are
not annotated because they are not COVID-19 infection.

Masks are read with :func:`.annotations.load_masked_image` (each 8-connected component of the
binary infection mask is one lesion of type ``infection``). Lung masks are not lesions: each
case records its lung mask's path in ``CXRCase.lung_mask_path``; rows carry it as ``lung_mask``.

Patients: the collection publishes no patient ids, and documents no grouping of images of
one patient, so each image is its own patient (``patient_id`` = ``image_id``). Its own split
(Train/Val/Test; Val counts as train) is kept in ``CXRCase.official_split``. The COVID-19
images with infection masks are drawn from QaTa-COV19 (Tahir et al. 2021), with no published
file-name mapping, so this source and ``qata_cov19`` are never built together (see
:data:`EXCLUSIVE_WITH`).

Citation: torch_em's loader cites doi:10.1016/j.compbiomed.2021.104319 (Rahman et al.); the
infection masks come from Tahir et al.'s localisation paper (doi:10.1016/j.compbiomed.2021.105002).

Licence: not determined offline (the Kaggle page's licence field could not be read here), so
every row says ``unknown``; ``chexmix publish`` refuses such rows unless told otherwise.
"""

from __future__ import annotations

import functools
from pathlib import Path

import datasets

from chexmix_dataset.errors import ChexmixInputError
from chexmix_dataset.sources.annotations import IMAGE_SUFFIXES, image_size, load_masked_image, read_grey_image
from chexmix_dataset.sources.base import CXRCase, SkippedItem, SourceScan, source_folder
from chexmix_dataset.sources.kaggle import kaggle_download

NAME = "covid_qu_ex"
ORIGIN = "covid-qu-ex"
HOMEPAGE = "https://www.kaggle.com/datasets/anasmohammedtahir/covidqu"
KAGGLE_SLUG = "anasmohammedtahir/covidqu"
LICENSE = "unknown"
CITATION = """@article{rahman2021exploring,
  title   = {Exploring the effect of image enhancement techniques on COVID-19 detection using chest X-ray images},
  author  = {Rahman, Tawsifur and others},
  journal = {Computers in Biology and Medicine},
  volume  = {132},
  pages   = {104319},
  year    = {2021},
  doi     = {10.1016/j.compbiomed.2021.104319}
}
@article{tahir2021covid,
  title   = {COVID-19 infection localization and severity grading from chest X-ray images},
  author  = {Tahir, Anas M. and others},
  journal = {Computers in Biology and Medicine},
  volume  = {139},
  pages   = {105002},
  year    = {2021},
  doi     = {10.1016/j.compbiomed.2021.105002}
}"""
URLS: dict[str, str] = {}  # Kaggle needs an API token: see :mod:`.kaggle`
INFECTION_DIR = "Infection Segmentation Data"
SPLITS = {"Train": "train", "Val": "train", "Test": "test"}  # folder -> official split
CLASSES = {"COVID-19": "covid-19", "Non-COVID": "non-covid", "Normal": "normal"}  # folder -> origin suffix
POSITIVE_CLASS = "COVID-19"
LESION_TYPES = ((1, "infection"), (255, "infection"))
EXCLUSIVE_WITH = {
    "qata_cov19": "COVID-QU-Ex's COVID-19 infection images are drawn from QaTa-COV19 and no mapping between "
                  "their file names is published, so a split could test on a copy of a training image",
}
LAYOUT = (f"'{INFECTION_DIR}/{INFECTION_DIR}/{{Train,Val,Test}}/{{COVID-19,Non-COVID,Normal}}/"
          "{images,infection masks,lung masks}/NAME.png' as the Kaggle archive anasmohammedtahir/covidqu unzips")


def split_root(root: Path) -> Path | None:
    """The folder holding Train/Val/Test: the doubled Kaggle folder, a single one, or ``root``."""
    for candidate in (root / INFECTION_DIR / INFECTION_DIR, root / INFECTION_DIR, root):
        if any((candidate / split).is_dir() for split in SPLITS):
            return candidate
    return None


def load_lesion_free_image(image_path: str, warn) -> tuple:
    """``CXRCase.load`` for a negative without an infection mask file: the image, no lesions."""
    return read_grey_image(image_path), []


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _case(image_path: Path, class_dir: Path, class_name: str, split: str) -> CXRCase | SkippedItem:
    try:
        size = image_size(image_path)
    except ChexmixInputError as exc:
        return SkippedItem(str(image_path), str(exc))
    infection_dir = class_dir / "infection masks"
    mask_path = infection_dir / image_path.name
    if mask_path.is_file():
        try:
            if image_size(mask_path) != size:
                return SkippedItem(str(mask_path), "infection mask size differs from its image's")
        except ChexmixInputError as exc:
            return SkippedItem(str(mask_path), str(exc))
        load = functools.partial(load_masked_image, str(image_path), str(mask_path), LESION_TYPES)
    elif class_name == POSITIVE_CLASS or infection_dir.is_dir():
        return SkippedItem(str(image_path), f"no infection mask '{infection_dir.name}/{image_path.name}'")
    else:
        load = functools.partial(load_lesion_free_image, str(image_path))
    lung_mask = class_dir / "lung masks" / image_path.name
    image_id = f"{ORIGIN}-{CLASSES[class_name]}-{image_path.stem}"
    return CXRCase(image_id=image_id, patient_id=image_id, origin=f"{ORIGIN}/{CLASSES[class_name]}",
                   license=LICENSE, load=load, view="", lung_mask_path=str(lung_mask) if lung_mask.is_file() else None,
                   official_split=SPLITS[split])


def scan(root: Path) -> SourceScan:
    """Scan a local copy of COVID-QU-Ex's infection-segmentation data (see module doc)."""
    root = source_folder(root, NAME, LAYOUT)
    base = split_root(root)
    if base is None:
        raise ChexmixInputError(f"no Train/Val/Test folders found; expected layout: {LAYOUT}",
                                root / INFECTION_DIR / INFECTION_DIR)
    result = SourceScan()
    seen: dict[str, Path] = {}
    for split in SPLITS:
        for class_name in CLASSES:
            class_dir = base / split / class_name
            if not (class_dir / "images").is_dir():
                continue
            for image_path in _images(class_dir / "images"):
                case = _case(image_path, class_dir, class_name, split)
                if isinstance(case, CXRCase) and case.image_id in seen:
                    case = SkippedItem(str(image_path), f"same class and file name as {seen[case.image_id]}; "
                                                        "first kept")
                if isinstance(case, CXRCase):
                    seen[case.image_id] = image_path
                    result.cxr_cases.append(case)
                else:
                    result.skipped.append(case)
    if not result.cxr_cases and not result.skipped:
        raise ChexmixInputError(f"no images found; expected layout: {LAYOUT}", base)
    return result


def download(dl_manager: datasets.DownloadManager, mirror: str | None = None) -> SourceScan:
    """Fetch the Kaggle archive with the ``kaggle`` package (API token needed), then scan it.

    ``mirror`` does not apply: Kaggle files are fetched by the Kaggle client only.
    """
    return scan(kaggle_download(dl_manager, KAGGLE_SLUG, NAME, LAYOUT))
