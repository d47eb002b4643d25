"""COVID-19 image data collection (Cohen et al., github.com/ieee8023/covid-chestxray-dataset)
joined with the lesion polygons that Ramesh, Rister & Rubin published in rvignav/CT2Xray.

Layout of ``root`` (a clone, or the GitHub archive ``covid-chestxray-dataset-master/``; looked
up with the search tool in ieee8023/covid-chestxray-dataset at its latest indexed metadata.csv)::

    metadata.csv     patientid,offset,sex,age,finding,RT_PCR_positive,survival,intubated,
                     intubation_present,went_icu,in_icu,needed_supplemental_O2,extubated,
                     temperature,pO2_saturation,leukocyte_count,neutrophil_count,
                     lymphocyte_count,view,modality,date,location,folder,filename,doi,url,
                     license,clinical_notes,other_notes,   (trailing empty column)
    images/<filename>            (``folder`` is "images" for X-rays, "volumes" for CT files)

``patientid`` is a string ("350a" exists); ``view`` is PA, AP, AP Supine, L (lateral), Axial or
Coronal (SCHEMA.md); ``modality`` is "X-ray" or "CT"; ``license`` is e.g. "CC BY-NC-SA" or
blank when unknown; ``url`` of a Radiopaedia case is ``https://radiopaedia.org/cases/<slug>``.

Patient ids are ``covid-chestxray-dataset-<patientid>``, except for Radiopaedia cases, which
are ``radiopaedia-<slug>`` so that they match the same case's CT in other sources (see
:mod:`.patients`).

Lesion polygons (VIA JSON, see :mod:`.annotations`): CT2Xray keeps the real-CXR annotations in
``xrays_only/train/via_region_data.json`` (training images) and ``mixed/val/via_region_data.json``
(the held-out real CXRs, some with no region = lesion-free), keyed by the metadata ``filename``.
We read, in this order and merged:

1. ``root/annotations/via_region_data.json`` (the documented place; the repository already has
   an ``annotations/`` folder) and any other ``root/annotations/*via*.json``;
2. the CT2Xray layout, copied into ``root`` or as a clone ``root/CT2Xray``:
   ``[CT2Xray/]xrays_only/train/via_region_data.json`` and ``[CT2Xray/]mixed/val/via_region_data.json``.

VIA entries whose file is not a real CXR of metadata.csv (CT2Xray's ``xray<N>.jpg`` CT
projections), not modality X-ray, not a frontal view, or absent from ``images/`` are skipped
with a reason. Frontal views kept: PA, AP, AP Supine, AP semi erect, AP erect (case-insensitive;
everything else, e.g. L, Axial, Coronal, blank, is excluded).
"""

from __future__ import annotations

import csv
import functools
from pathlib import Path

import datasets

from chexmix_dataset.errors import ChexmixInputError
from chexmix_dataset.sources.annotations import Region, image_size, load_annotated_image, read_via
from chexmix_dataset.sources.base import CXRCase, SkippedItem, SourceScan, source_folder
from chexmix_dataset.sources.download import download_and_extract
from chexmix_dataset.sources.patients import linked_patient_ids

NAME = "covid_chestxray"
ORIGIN = "covid-chestxray-dataset"
HOMEPAGE = "https://github.com/ieee8023/covid-chestxray-dataset"
LICENSE = "unknown"  # per image from metadata.csv's license column; blank there means unknown
CITATION = """@article{cohen2020covidProspective,
  title   = {COVID-19 Image Data Collection: Prospective Predictions Are the Future},
  author  = {Joseph Paul Cohen and Paul Morrison and Lan Dao and Karsten Roth and Tim Q Duong and Marzyeh Ghassemi},
  journal = {arXiv 2006.11988},
  url     = {https://github.com/ieee8023/covid-chestxray-dataset},
  year    = {2020}
}
@article{ramesh2021chexmix,
  title   = {COVID-19 Lung Lesion Segmentation Using a Sparsely Supervised Mask R-CNN on Chest X-rays
             Automatically Computed from Volumetric CTs},
  author  = {Vignav Ramesh and Blaine Rister and Daniel L. Rubin},
  journal = {arXiv 2105.08147},
  year    = {2021}
}"""
URLS = {
    "dataset": "https://github.com/ieee8023/covid-chestxray-dataset/archive/refs/heads/master.zip",
    "via_train": "https://raw.githubusercontent.com/rvignav/CT2Xray/master/xrays_only/train/via_region_data.json",
    "via_val": "https://raw.githubusercontent.com/rvignav/CT2Xray/master/mixed/val/via_region_data.json",
}
EXCLUSIVE_WITH: dict[str, str] = {}  # no shared images known without an id mapping (see .patients)
FRONTAL_VIEWS = frozenset({"pa", "ap", "ap supine", "ap semi erect", "ap erect"})
REQUIRED_COLUMNS = ("patientid", "view", "modality", "folder", "filename", "license")
VIA_FILE = "annotations/via_region_data.json"
CT2XRAY_VIA_FILES = ("xrays_only/train/via_region_data.json", "mixed/val/via_region_data.json")
LAYOUT = (f"metadata.csv and images/ of ieee8023/covid-chestxray-dataset, plus lesion polygons in "
          f"{VIA_FILE} (VIA JSON) or CT2Xray's {' and '.join(CT2XRAY_VIA_FILES)} (in the folder or "
          "under CT2Xray/)")


def via_files(root: Path) -> list[Path]:
    """The VIA annotation files found under ``root``, in reading order."""
    found = []
    annotations_dir = root / "annotations"
    if annotations_dir.is_dir():
        found.extend(sorted(p for p in annotations_dir.glob("*.json") if "via" in p.name.lower()))
    for base in (root, root / "CT2Xray"):
        found.extend(base / rel for rel in CT2XRAY_VIA_FILES if (base / rel).is_file())
    return found


def read_metadata(path: Path) -> dict[str, dict[str, str]]:
    """metadata.csv rows keyed by ``filename``."""
    if not path.is_file():
        raise ChexmixInputError(f"metadata.csv is missing; expected layout: {LAYOUT}", path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip() for c in reader.fieldnames or []]
            missing = [c for c in REQUIRED_COLUMNS if c not in columns]
            if missing:
                raise ChexmixInputError(
                    f"metadata.csv lacks column(s) {', '.join(missing)} (has: {', '.join(c for c in columns if c)})",
                    path)
            rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items() if k is not None}
                    for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ChexmixInputError(f"cannot read metadata.csv: {exc}", path) from None
    return {row["filename"]: row for row in rows if row.get("filename")}


def is_frontal(view: str) -> bool:
    return " ".join(view.lower().replace("_", " ").split()) in FRONTAL_VIEWS


def _case(root: Path, filename: str, row: dict[str, str], regions: tuple[Region, ...], patient_id: str
          ) -> CXRCase | SkippedItem:
    if row.get("modality", "").lower() != "x-ray":
        return SkippedItem(filename, f"modality is {row.get('modality') or 'blank'!r}, not 'X-ray'")
    if not is_frontal(row.get("view", "")):
        return SkippedItem(filename, f"non-frontal view {row.get('view') or 'blank'!r} (kept: PA, AP, AP Supine, "
                                     "AP semi erect, AP erect)")
    image_path = root / (row.get("folder") or "images") / filename
    if not image_path.is_file():
        return SkippedItem(str(image_path), "annotation for an absent image")
    try:
        image_size(image_path)
    except ChexmixInputError as exc:
        return SkippedItem(str(image_path), str(exc))
    return CXRCase(
        image_id=f"{ORIGIN}-{Path(filename).stem}",
        patient_id=patient_id,
        origin=ORIGIN,
        license=row.get("license") or LICENSE,
        load=functools.partial(load_annotated_image, str(image_path), regions),
        view=row.get("view", ""),
    )


def scan_with(root: Path, annotation_files: list[Path]) -> SourceScan:
    """Join metadata.csv and the images under ``root`` with the given VIA files."""
    metadata = read_metadata(root / "metadata.csv")
    # Every row links patients, annotated or not: a Radiopaedia case seen only in an
    # unannotated row still joins two patient ids.
    patients = linked_patient_ids(((row["patientid"], row.get("url", "")) for row in metadata.values()),
                                  prefix=f"{ORIGIN}-")
    result = SourceScan()
    annotated: dict[str, tuple[Region, ...]] = {}
    for via_path in annotation_files:
        entries, skipped = read_via(via_path)
        result.skipped.extend(skipped)
        for filename, regions in entries.items():
            if filename in annotated:
                result.skipped.append(SkippedItem(f"{via_path}: {filename}",
                                                  "image already annotated in an earlier VIA file; first kept"))
            else:
                annotated[filename] = regions
    for filename, regions in annotated.items():
        row = metadata.get(filename)
        if row is None:
            result.skipped.append(SkippedItem(filename, "annotated image is not listed in metadata.csv "
                                                        "(CT2Xray's xray<N>.jpg are CT projections, not real CXRs)"))
            continue
        case = _case(root, filename, row, regions, patients[row["patientid"]])
        (result.skipped if isinstance(case, SkippedItem) else result.cxr_cases).append(case)
    return result


def scan(root: Path) -> SourceScan:
    """Scan a local covid-chestxray-dataset folder with its VIA lesion polygons (see module doc)."""
    root = source_folder(root, NAME, LAYOUT)
    files = via_files(root)
    if not files:
        raise ChexmixInputError(f"no lesion annotations found; expected layout: {LAYOUT}", root / VIA_FILE)
    return scan_with(root, files)


def download(dl_manager: datasets.DownloadManager, mirror: str | None = None) -> SourceScan:
    """Download the collection's GitHub archive and CT2Xray's two VIA files, then scan them.

    ``mirror``: base URL the files are fetched through (None: ``$CHEXMIX_MIRROR``; see :mod:`.download`).
    """
    paths = download_and_extract(dl_manager, URLS, NAME, LAYOUT, mirror)
    root = paths["dataset"]
    nested = root / "covid-chestxray-dataset-master"  # GitHub archives unpack into <repo>-<branch>/
    if nested.is_dir():
        root = nested
    return scan_with(root, [paths["via_train"], paths["via_val"]])
