"""COVID-19 CT Lung and Infection Segmentation Dataset (Ma et al., Zenodo record 3757476).

20 chest CTs with infection masks: 10 from coronacases.org, 10 from Radiopaedia, NIfTI.

Layouts accepted under ``root`` (looked up with the search tool; sources cited):

* Zenodo archives, each unzipped into a folder of its own name (the zips are flat; torch_em's
  ``covid19_seg.py`` and several users unpack them this way)::

      COVID-19-CT-Seg_20cases/coronacases_001.nii.gz ... radiopaedia_4_85506_1.nii.gz ...
      Infection_Mask/coronacases_001.nii.gz ...          (same file names as the CTs)

  The CTs may also sit directly in ``root``. URLs:
  ``https://zenodo.org/records/3757476/files/{COVID-19-CT-Seg_20cases,Infection_Mask}.zip``.
* The Kaggle redistribution "covid19-ct-scans" (andrewmvd), used in many notebooks::

      metadata.csv        columns ct_scan, lung_mask, infection_mask, lung_and_infection_mask,
                          values like ../input/covid19-ct-scans/ct_scans/coronacases_org_001.nii
      ct_scans/coronacases_org_001.nii, ct_scans/radiopaedia_org_covid-19-pneumonia-4_85506_1-dcm.nii
      infection_mask/coronacases_001.nii, infection_mask/radiopaedia_4_85506_1.nii

  CT names carry ``_org`` / ``_org_covid-19-pneumonia-`` / ``-dcm``; mask names are the Zenodo
  case names. Pairs come from metadata.csv when present, else from that renaming.

Intensities: the dataset's benchmark README (JunMa11/COVID-19-CT-Seg-Benchmark) says "the last
10 cases from Radiopaedia have been adjusted to lung window [-1250,250], and then normalized to
[0,255]"; the coronacases CTs are in HU. Radiopaedia cases therefore carry
``stored_window_hu=(-1250, 250)`` so the projector can map them back to HU.

Patients: each coronacases CT is one patient. Radiopaedia file names are
``radiopaedia_<case>_<study>_<series>``, case ``<case>`` being Radiopaedia's
``covid-19-pneumonia-<case>`` (the Kaggle names spell it out); ``radiopaedia_10_85902_1``/
``_10_85902_3`` and ``radiopaedia_29_86490_1``/``_29_86491_1`` are two scans of one case each.
The patient id is ``radiopaedia-covid-19-pneumonia-<case>``, shared by both scans of a case and
by the same case's CXRs in the COVID-19 image data collection (see :mod:`.patients`).

Licence: third-party listings of the Zenodo record (sfu-db/covid19-datasets, several READMEs)
give CC BY 4.0, while the dataset authors' benchmark README lists COVID-19-CT-Seg as
"CC BY-NC-SA" and the Radiopaedia source cases are CC BY-NC-SA; we use the stricter
CC-BY-NC-SA-4.0 for every case.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import datasets

from chexmix_dataset.errors import ChexmixInputError
from chexmix_dataset.sources.base import CTCase, SourceScan, source_folder
from chexmix_dataset.sources.download import download_and_extract
from chexmix_dataset.sources.nifti_pairs import check_pair as _check_pair
from chexmix_dataset.sources.nifti_pairs import nifti_stem as _stem
from chexmix_dataset.sources.nifti_pairs import niftis as _niftis
from chexmix_dataset.sources.patients import radiopaedia_case_from_ma_name, radiopaedia_patient_id

NAME = "covid19_ct_seg"
HOMEPAGE = "https://zenodo.org/records/3757476"
LICENSE = "CC-BY-NC-SA-4.0"
CITATION = """@dataset{ma_2020_covid19_ct_seg,
  author    = {Ma, Jun and Ge, Cheng and Wang, Yixin and An, Xingle and Gao, Jiantao and Yu, Ziqi and
               Zhang, Minqing and Liu, Xin and Deng, Xueyuan and Cao, Shucheng and Wei, Hao and Mei, Sen and
               Yang, Xiaoyu and Nie, Ziwei and Li, Chen and Tian, Lu and Zhu, Yuntao and Zhu, Qiongjie and
               Dong, Guoqiang and He, Jian},
  title     = {{COVID-19 CT Lung and Infection Segmentation Dataset}},
  year      = 2020,
  publisher = {Zenodo},
  version   = {1.0},
  doi       = {10.5281/zenodo.3757476},
  url       = {https://doi.org/10.5281/zenodo.3757476}
}"""
URLS = {
    "ct": "https://zenodo.org/records/3757476/files/COVID-19-CT-Seg_20cases.zip?download=1",
    "infection_mask": "https://zenodo.org/records/3757476/files/Infection_Mask.zip?download=1",
}
EXCLUSIVE_WITH: dict[str, str] = {}  # no shared images known without an id mapping (see .patients)
LESION_TYPES = {1: "infection"}
RADIOPAEDIA_WINDOW_HU = (-1250.0, 250.0)

ZENODO_CT_DIR = "COVID-19-CT-Seg_20cases"
ZENODO_MASK_DIR = "Infection_Mask"
KAGGLE_CT_DIR = "ct_scans"
KAGGLE_MASK_DIR = "infection_mask"
LAYOUT = (f"{ZENODO_CT_DIR}/<case>.nii.gz + {ZENODO_MASK_DIR}/<case>.nii.gz (Zenodo zips, each "
          f"unzipped into its own folder), or {KAGGLE_CT_DIR}/<case>.nii + {KAGGLE_MASK_DIR}/<case>.nii "
          "(+ metadata.csv) as on Kaggle")

_KAGGLE_CORONACASES = re.compile(r"^coronacases_org_(\d+)$")
_KAGGLE_RADIOPAEDIA = re.compile(r"^radiopaedia_org_covid-19-pneumonia-(\d+_\d+_\d+)-dcm$")


def case_name(ct_stem: str) -> str:
    """The Zenodo case name of a CT file stem (Kaggle stems are renamed, Zenodo ones kept)."""
    for pattern, prefix in ((_KAGGLE_CORONACASES, "coronacases_"), (_KAGGLE_RADIOPAEDIA, "radiopaedia_")):
        match = pattern.match(ct_stem)
        if match:
            return prefix + match.group(1)
    return ct_stem


def _case(name: str, ct_path: Path, mask_path: Path) -> CTCase:
    if name.startswith("radiopaedia"):
        slug = radiopaedia_case_from_ma_name(name)
        patient = radiopaedia_patient_id(slug) if slug else name
        return CTCase(case_id=name, patient_id=patient, origin="covid19-ct-seg/radiopaedia", license=LICENSE,
                      ct_path=ct_path, mask_path=mask_path, lesion_types=dict(LESION_TYPES),
                      stored_window_hu=RADIOPAEDIA_WINDOW_HU)
    return CTCase(case_id=name, patient_id=name, origin="covid19-ct-seg/coronacases", license=LICENSE,
                  ct_path=ct_path, mask_path=mask_path, lesion_types=dict(LESION_TYPES))


def _pairs_by_name(ct_paths: list[Path], mask_dir: Path, mask_suffixes: tuple[str, ...]) -> list[tuple[str, Path, Path]]:
    pairs = []
    for ct_path in ct_paths:
        name = case_name(_stem(ct_path))
        candidates = [mask_dir / f"{name}{suffix}" for suffix in mask_suffixes]
        mask_path = next((p for p in candidates if p.exists()), None)
        if mask_path is None:
            raise ChexmixInputError(f"infection mask for {ct_path.name} is missing; expected layout: {LAYOUT}",
                                    candidates[0])
        pairs.append((name, ct_path, mask_path))
    paired_masks = {p[2].name for p in pairs}
    for mask_path in _niftis(mask_dir):
        if mask_path.name not in paired_masks:
            raise ChexmixInputError(f"infection mask has no CT of the same case; expected layout: {LAYOUT}", mask_path)
    return pairs


def _pairs_from_kaggle_metadata(root: Path, metadata: Path) -> list[tuple[str, Path, Path]]:
    try:
        with metadata.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ChexmixInputError(f"cannot read metadata.csv: {exc}", metadata) from None
    if not rows or not {"ct_scan", "infection_mask"} <= set(rows[0]):
        raise ChexmixInputError("metadata.csv needs columns ct_scan and infection_mask (Kaggle covid19-ct-scans)",
                                metadata)
    pairs = []
    for row in rows:
        # Kaggle paths point into /kaggle/input; only the last folder and file name are meaningful.
        ct_path = root / Path(row["ct_scan"]).parent.name / Path(row["ct_scan"]).name
        mask_path = root / Path(row["infection_mask"]).parent.name / Path(row["infection_mask"]).name
        for path, what in ((ct_path, "CT"), (mask_path, "infection mask")):
            if not path.exists():
                raise ChexmixInputError(f"{what} listed in {metadata.name} is missing; expected layout: {LAYOUT}", path)
        pairs.append((case_name(_stem(ct_path)), ct_path, mask_path))
    return pairs


def scan_folders(ct_dir: Path, mask_dir: Path) -> SourceScan:
    """Cases from a folder of CTs and a folder of same-named infection masks (Zenodo layout)."""
    if not mask_dir.is_dir():
        raise ChexmixInputError(f"infection mask folder is missing; expected layout: {LAYOUT}", mask_dir)
    ct_paths = _niftis(ct_dir)
    if not ct_paths:
        raise ChexmixInputError(f"no CT NIfTI files (*.nii, *.nii.gz) found; expected layout: {LAYOUT}", ct_dir)
    return _scan_pairs(_pairs_by_name(ct_paths, mask_dir, (".nii.gz", ".nii")))


def _scan_pairs(pairs: list[tuple[str, Path, Path]]) -> SourceScan:
    scan = SourceScan()
    for name, ct_path, mask_path in pairs:
        problem = _check_pair(name, ct_path, mask_path)
        if problem is None:
            scan.ct_cases.append(_case(name, ct_path, mask_path))
        else:
            scan.skipped.append(problem)
    return scan


def scan(root: Path) -> SourceScan:
    """Scan a local copy laid out as the Zenodo archives unpack or as the Kaggle redistribution."""
    root = source_folder(root, NAME, LAYOUT)
    if (root / KAGGLE_CT_DIR).is_dir():
        metadata = root / "metadata.csv"
        if metadata.exists():
            return _scan_pairs(_pairs_from_kaggle_metadata(root, metadata))
        if not (root / KAGGLE_MASK_DIR).is_dir():
            raise ChexmixInputError(f"infection mask folder is missing; expected layout: {LAYOUT}",
                                    root / KAGGLE_MASK_DIR)
        return _scan_pairs(_pairs_by_name(_niftis(root / KAGGLE_CT_DIR), root / KAGGLE_MASK_DIR, (".nii", ".nii.gz")))
    ct_dir = root / ZENODO_CT_DIR if (root / ZENODO_CT_DIR).is_dir() else root
    if not _niftis(ct_dir):
        raise ChexmixInputError(f"no CT NIfTI files found; expected layout: {LAYOUT}", root / ZENODO_CT_DIR)
    return scan_folders(ct_dir, root / ZENODO_MASK_DIR)


def download(dl_manager: datasets.DownloadManager, mirror: str | None = None) -> SourceScan:
    """Download the two Zenodo archives (about 1.1 GB) and scan them.

    ``mirror``: base URL the files are fetched through (None: ``$CHEXMIX_MIRROR``; see :mod:`.download`).
    """
    paths = download_and_extract(dl_manager, URLS, NAME, LAYOUT, mirror)
    return scan_folders(_nifti_folder(paths["ct"]), _nifti_folder(paths["infection_mask"]))


def _nifti_folder(extracted: Path) -> Path:
    """The folder holding an archive's NIfTI files: the extraction folder or its only sub-folder."""
    if extracted.is_dir() and not _niftis(extracted):
        subfolders = [p for p in extracted.iterdir() if p.is_dir()]
        if len(subfolders) == 1:
            return subfolders[0]
    return extracted
