"""MosMedData COVID19_1110 (Morozov et al., Moscow Center for Diagnostics and Telemedicine):
1,110 chest CTs, of which 50 carry lesion masks (ground-glass opacities and consolidations as
one label).

Layout of ``root`` (looked up with the search tool; sources cited). The archive unpacks as
``COVID19_1110/studies/CT-1/study_NNNN.nii.gz`` with ``COVID19_1110/masks/study_NNNN_mask.nii.gz``
(a public slice generator reads exactly these paths); the ``amid`` package's
``MoscowCovid1110`` loader globs ``CT-*/<id>.nii.gz`` and reads ``masks/<id>_mask.nii.gz``,
binarising the mask at 0.5::

    COVID19_1110/
        studies/CT-0 ... CT-4/study_NNNN.nii.gz      CT-0 no findings ... CT-4 severe (HU)
        masks/study_NNNN_mask.nii.gz                  50 masks, label 1 = lesion

``root`` may be ``COVID19_1110/`` or its parent, and the ``CT-*`` folders may sit directly in
it (amid's layout). The sfu-db/covid19-datasets listing and a dataset description in the
index give "1110 CT volumes in NIFTI format", "a small subset of studies has been annotated
with binary pixel masks depicting regions of interests (ground-glass opacifications and
consolidations)" and "Licence: CC BY-NC-ND 3.0".

Only annotated studies become cases; the unannotated ones are counted in one skipped item.
Each study id is taken as one patient (``patient_id`` = ``mosmed-study_NNNN``): the collection
publishes no other patient key. ``origin`` names the severity folder (``mosmed/CT-1``).

Download: mosmed.ai distributes the archive from its own page (no stable file URL recorded
here), so ``download`` explains where to get it and where to unpack it.
"""

from __future__ import annotations

import re
from pathlib import Path

import datasets

from chexmix_dataset.errors import ChexmixInputError
from chexmix_dataset.sources.base import CTCase, SkippedItem, SourceScan, source_folder
from chexmix_dataset.sources.nifti_pairs import check_pair, nifti_stem, niftis

NAME = "mosmed"
ORIGIN = "mosmed"
HOMEPAGE = "https://mosmed.ai/en/datasets/covid191110/"
LICENSE = "CC-BY-NC-ND-3.0"
CITATION = """@article{morozov2020mosmeddata,
  title   = {MosMedData: Chest CT Scans With COVID-19 Related Findings Dataset},
  author  = {Morozov, S. P. and Andreychenko, A. E. and Pavlov, N. A. and Vladzymyrskyy, A. V. and
             Ledikhova, N. V. and Gombolevskiy, V. A. and Blokhin, I. A. and Gelezhe, P. B. and
             Gonchar, A. V. and Chernina, V. Yu.},
  journal = {arXiv preprint arXiv:2005.06465},
  year    = {2020}
}"""
URLS: dict[str, str] = {}
EXCLUSIVE_WITH: dict[str, str] = {}  # no shared images known without an id mapping (see .patients)
ARCHIVE_DIR = "COVID19_1110"
LESION_TYPES = {1: "infection"}
LAYOUT = (f"{ARCHIVE_DIR}/studies/CT-{{0..4}}/study_NNNN.nii.gz with {ARCHIVE_DIR}/masks/study_NNNN_mask.nii.gz "
          "as the MosMedData archive unpacks")
_MASK_NAME = re.compile(r"^(study_\d+)_mask$")


def archive_root(root: Path) -> Path | None:
    """The folder holding ``masks/`` and ``studies/`` (or the ``CT-*`` folders)."""
    for candidate in (root / ARCHIVE_DIR, root):
        if (candidate / "masks").is_dir() and (any((candidate / "studies").glob("CT-*"))
                                                or any(candidate.glob("CT-*"))):
            return candidate
    return None


def scan(root: Path) -> SourceScan:
    """The annotated MosMedData studies under ``root`` (see module doc)."""
    root = source_folder(root, NAME, LAYOUT)
    base = archive_root(root)
    if base is None:
        raise ChexmixInputError(f"no masks/ and studies/CT-* folders found; expected layout: {LAYOUT}",
                                root / ARCHIVE_DIR)
    studies_dir = base / "studies" if (base / "studies").is_dir() else base
    studies = {nifti_stem(p): p for folder in sorted(studies_dir.glob("CT-*")) if folder.is_dir()
               for p in niftis(folder)}
    result = SourceScan()
    annotated = set()
    for mask_path in niftis(base / "masks"):
        match = _MASK_NAME.match(nifti_stem(mask_path))
        if match is None:
            result.skipped.append(SkippedItem(str(mask_path), "mask name is not study_NNNN_mask.nii.gz"))
            continue
        study = match.group(1)
        ct_path = studies.get(study)
        if ct_path is None:
            result.skipped.append(SkippedItem(str(mask_path), f"lesion mask for an absent study {study}"))
            continue
        annotated.add(study)
        problem = check_pair(study, ct_path, mask_path, "lesion mask")
        if problem is not None:
            result.skipped.append(problem)
            continue
        result.ct_cases.append(CTCase(case_id=f"{ORIGIN}-{study}", patient_id=f"{ORIGIN}-{study}",
                                      origin=f"{ORIGIN}/{ct_path.parent.name}", license=LICENSE, ct_path=ct_path,
                                      mask_path=mask_path, lesion_types=dict(LESION_TYPES)))
    unannotated = len(set(studies) - annotated)
    if unannotated:
        result.skipped.append(SkippedItem(str(studies_dir), f"{unannotated} of {len(studies)} studies have no "
                                                            "lesion mask (only the masks/ studies are annotated)"))
    return result


def download(dl_manager: datasets.DownloadManager, mirror: str | None = None) -> SourceScan:
    """MosMedData has no stable download URL: one line saying where to get it."""
    raise ChexmixInputError(f"the {NAME} source is distributed from {HOMEPAGE} (licence CC BY-NC-ND 3.0); "
                            f"download the archive there, unpack it into DIR/{NAME} and pass --data-dir DIR; "
                            f"that folder must hold: {LAYOUT}")
