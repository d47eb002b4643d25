"""COVID-19-20: the MICCAI 2020 COVID-19 Lung CT Lesion Segmentation Challenge (Roth et al.),
199 training CTs with lesion masks, from TCIA's "CT Images in COVID-19".

Layout of ``root`` (looked up with the search tool; sources cited). MONAI's challenge baseline
(Project-MONAI/tutorials ``3d_segmentation/challenge_baseline``) trains on
``--data_folder "COVID-19-20_v2/Train"``; torch_em's ``covid19_20.py`` reads
``Train/*_ct.nii.gz`` with labels at ``*_seg.nii.gz`` (label 0 background, 1 lesion, "verified
on the data: the label volumes only contain the ids 0 and 1"); the Hub listing of a
redistribution shows names such as ``volume-covid19-A-0003`` and ``volume-covid19-A-0047_1``::

    COVID-19-20_v2/Train/volume-covid19-A-NNNN[_K]_ct.nii.gz     CT in HU
    COVID-19-20_v2/Train/volume-covid19-A-NNNN[_K]_seg.nii.gz    lesion mask, 1 = lesion

``root`` may be ``COVID-19-20_v2/``, its parent, or the ``Train`` folder itself. The
Validation and Test folders carry no masks and are not read.

Patients: a case name ``volume-covid19-A-NNNN_K`` is read as scan K of case NNNN, so every
``_K`` variant of one NNNN shares one patient id (``covid19-20-A-NNNN``); grouping unrelated
scans only makes a split stricter, never leakier.

Licence: the challenge site (covid-segmentation.grand-challenge.org) hands the data to
registered participants; its licence terms could not be read offline (torch_em notes a
third-party redistribution under CC BY 4.0, which is not the challenge's own statement).
Rows therefore carry ``unknown``; ``chexmix publish`` refuses them unless told otherwise.

Download: registration is required, so ``download`` explains where to get the data.
"""

from __future__ import annotations

import re
from pathlib import Path

import datasets

from chexmix_dataset.errors import ChexmixInputError
from chexmix_dataset.sources.base import CTCase, SkippedItem, SourceScan, source_folder
from chexmix_dataset.sources.nifti_pairs import check_pair

NAME = "covid19_20"
ORIGIN = "covid19-20"
HOMEPAGE = "https://covid-segmentation.grand-challenge.org/COVID-19-20/"
LICENSE = "unknown"
CITATION = """@article{roth2022rapid,
  title   = {Rapid artificial intelligence solutions in a pandemic---The COVID-19-20 Lung CT Lesion
             Segmentation Challenge},
  author  = {Roth, Holger R and Xu, Ziyue and Tor-D{\\'\\i}ez, Carlos and Jacob, Ramon Sanchez and
             Zember, Jonathan and Molto, Jose and Li, Wenqi and Xu, Sheng and Turkbey, Baris and
             Turkbey, Evrim and others},
  journal = {Medical Image Analysis},
  volume  = {82},
  pages   = {102605},
  year    = {2022}
}"""
URLS: dict[str, str] = {}
EXCLUSIVE_WITH: dict[str, str] = {}  # no shared images known without an id mapping (see .patients)
RELEASE_DIR = "COVID-19-20_v2"
TRAIN_DIR = "Train"
CT_SUFFIX = "_ct.nii.gz"
MASK_SUFFIX = "_seg.nii.gz"
LESION_TYPES = {1: "infection"}
LAYOUT = f"{RELEASE_DIR}/{TRAIN_DIR}/NAME{CT_SUFFIX} with NAME{MASK_SUFFIX} as the challenge's training data unpacks"
_CASE_NAME = re.compile(r"^volume-covid19-([A-Za-z]+)-(\d+)(?:_\d+)?$")


def train_folder(root: Path) -> Path | None:
    """The folder holding the ``*_ct.nii.gz`` training CTs."""
    for candidate in (root / RELEASE_DIR / TRAIN_DIR, root / TRAIN_DIR, root):
        if candidate.is_dir() and any(candidate.glob(f"*{CT_SUFFIX}")):
            return candidate
    return None


def patient_id(case_name: str) -> str:
    """``volume-covid19-A-0047_1`` -> ``covid19-20-A-0047``; names of another form are their own patient."""
    match = _CASE_NAME.match(case_name)
    return f"{ORIGIN}-{match.group(1)}-{match.group(2)}" if match else f"{ORIGIN}-{case_name}"


def scan(root: Path) -> SourceScan:
    """The COVID-19-20 training CTs and masks under ``root`` (see module doc)."""
    root = source_folder(root, NAME, LAYOUT)
    folder = train_folder(root)
    if folder is None:
        raise ChexmixInputError(f"no *{CT_SUFFIX} files found; expected layout: {LAYOUT}",
                                root / RELEASE_DIR / TRAIN_DIR)
    result = SourceScan()
    cts = sorted(folder.glob(f"*{CT_SUFFIX}"))
    for ct_path in cts:
        name = ct_path.name[: -len(CT_SUFFIX)]
        mask_path = folder / f"{name}{MASK_SUFFIX}"
        if not mask_path.is_file():
            result.skipped.append(SkippedItem(str(ct_path), f"no lesion mask {mask_path.name}"))
            continue
        problem = check_pair(name, ct_path, mask_path, "lesion mask")
        if problem is not None:
            result.skipped.append(problem)
            continue
        result.ct_cases.append(CTCase(case_id=f"{ORIGIN}-{name}", patient_id=patient_id(name), origin=ORIGIN,
                                      license=LICENSE, ct_path=ct_path, mask_path=mask_path,
                                      lesion_types=dict(LESION_TYPES)))
    ct_names = {p.name[: -len(CT_SUFFIX)] for p in cts}
    result.skipped.extend(SkippedItem(str(p), "lesion mask for an absent CT")
                          for p in sorted(folder.glob(f"*{MASK_SUFFIX}")) if p.name[: -len(MASK_SUFFIX)] not in ct_names)
    return result


def download(dl_manager: datasets.DownloadManager, mirror: str | None = None) -> SourceScan:
    """The challenge data need a registration: one line saying where to get them."""
    raise ChexmixInputError(f"the {NAME} source needs a registration at {HOMEPAGE} (Download page); download the "
                            f"training data there, unpack it into DIR/{NAME} and pass --data-dir DIR; that folder "
                            f"must hold: {LAYOUT}")
