"""Generic local folders: your own annotated CTs (``ct_folder``) and CXRs (``cxr_folder``).

``ct_folder`` layout::

    ct/NAME.nii(.gz)            CT in HU
    mask/NAME.nii(.gz)          lesion labels on the CT's grid (``masks/`` also accepted)
    patients.csv                optional: columns name,patient_id,license
    lesion_types.json           optional: {"1": "ground_glass", "2": "consolidation"}

``cxr_folder`` layout: ``images/NAME.png|jpg|...`` and exactly one kind of annotation:

* ``masks/NAME.png`` (or .jpg ...): a lesion mask of the image's size; each 8-connected
  component is one lesion. Without ``lesion_types.json`` masks are binary: a two-valued
  lossless mask (0/1, 0/255, 0/65535) as it is, anything else (JPEG, anti-aliased, RGB/RGBA
  reduced to its brightest channel) binarised at half its storage range (128 or 32768) with a
  warning naming the file. With ``lesion_types.json`` (``{"1": "ground_glass", ...}``) masks are
  label masks, one lesion type per value; they must be lossless one-channel files (a JPEG
  label mask is skipped, since compression changes the values);
* ``via_region_data.json``: VIA polygons keyed by image file name (see :mod:`.annotations`);
* ``annotations.json`` or ``instances_*.json`` (in the folder or in ``annotations/``): COCO
  polygons or RLE, ``file_name`` relative to ``images/``.

plus the optional ``patients.csv`` (``name`` is the image's file stem) and ``lesion_types.json``.
Without patients.csv a CT's or image's patient id is its NAME.
"""

from __future__ import annotations

import csv
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import datasets

from chexmix_dataset.errors import ChexmixInputError
from chexmix_dataset.sources.annotations import (
    IMAGE_SUFFIXES,
    LOSSY_LABELS_REASON,
    Region,
    image_size,
    load_annotated_image,
    load_masked_image,
    mask_is_lossy,
    read_coco,
    read_via,
)
from chexmix_dataset.sources.base import CTCase, CXRCase, SkippedItem, SourceScan
from chexmix_dataset.sources.nifti_pairs import nifti_stem, niftis

HOMEPAGE = ""
CITATION = ""
LICENSE = "unknown"
CT_LAYOUT = ("ct/NAME.nii(.gz) + mask/NAME.nii(.gz) (or masks/), optional patients.csv "
             "(name,patient_id,license) and lesion_types.json")
CXR_LAYOUT = ("images/NAME.png (or .jpg ...) with masks/NAME.png, or via_region_data.json, or a COCO "
              "annotations.json / instances_*.json; optional patients.csv (name,patient_id,license)")


def read_patients(root: Path) -> dict[str, dict[str, str]]:
    """patients.csv rows keyed by ``name`` ({} when the file is absent)."""
    path = root / "patients.csv"
    if not path.exists():
        return {}
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if "name" not in (reader.fieldnames or []) or "patient_id" not in (reader.fieldnames or []):
                raise ChexmixInputError("patients.csv needs columns name,patient_id (and optionally license)", path)
            return {(row["name"] or "").strip(): {k: (v or "").strip() for k, v in row.items() if k} for row in reader}
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ChexmixInputError(f"cannot read patients.csv: {exc}", path) from None


def read_lesion_types(root: Path, default: dict[int, str]) -> dict[int, str]:
    path = root / "lesion_types.json"
    if not path.exists():
        return dict(default)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {int(k): str(v) for k, v in raw.items()}
    except (OSError, ValueError, AttributeError) as exc:
        raise ChexmixInputError(f"lesion_types.json must map label values to names, e.g. {{\"1\": \"lesion\"}}: {exc}",
                                path) from None


def _patient_and_license(patients: dict[str, dict[str, str]], name: str) -> tuple[str, str]:
    row = patients.get(name, {})
    return row.get("patient_id") or name, row.get("license") or LICENSE


# ------------------------------------------------------------------------------- CT folder ---

def scan_ct(root: Path) -> SourceScan:
    """CT/mask NIfTI pairs matched by NAME (see module doc)."""
    root = Path(root)
    ct_dir = root / "ct"
    if not ct_dir.is_dir():
        raise ChexmixInputError(f"CT folder is missing; expected layout: {CT_LAYOUT}", ct_dir)
    mask_dir = next((root / d for d in ("mask", "masks") if (root / d).is_dir()), None)
    if mask_dir is None:
        raise ChexmixInputError(f"mask folder is missing; expected layout: {CT_LAYOUT}", root / "mask")
    patients = read_patients(root)
    lesion_types = read_lesion_types(root, {1: "lesion"})
    masks = {nifti_stem(p): p for p in niftis(mask_dir)}
    cts = {nifti_stem(p): p for p in niftis(ct_dir)}
    if not cts:
        raise ChexmixInputError(f"no CT NIfTI files (*.nii, *.nii.gz); expected layout: {CT_LAYOUT}", ct_dir)
    result = SourceScan()
    for name in sorted(cts):
        if name not in masks:
            result.skipped.append(SkippedItem(str(cts[name]), f"no lesion mask {mask_dir.name}/{name}.nii(.gz)"))
            continue
        patient_id, license = _patient_and_license(patients, name)
        result.ct_cases.append(CTCase(case_id=name, patient_id=patient_id, origin=CT_FOLDER.NAME, license=license,
                                      ct_path=cts[name], mask_path=masks[name], lesion_types=dict(lesion_types)))
    result.skipped.extend(SkippedItem(str(masks[name]), "lesion mask for an absent CT")
                          for name in sorted(set(masks) - set(cts)))
    return result


# ------------------------------------------------------------------------------ CXR folder ---

def _coco_files(root: Path) -> list[Path]:
    candidates = [root / "annotations.json", root / "annotations" / "annotations.json"]
    candidates += sorted(root.glob("instances_*.json")) + sorted((root / "annotations").glob("instances_*.json"))
    return [p for p in candidates if p.is_file()]


def _find_image(images_dir: Path, filename: str) -> Path | None:
    # COCO layouts (ours included) keep images per split: images/{split}/FILE.
    splits = [folder / filename for folder in sorted(images_dir.iterdir()) if folder.is_dir()]
    for path in (images_dir / filename, images_dir.parent / filename, *splits):
        if path.is_file():
            return path
    return None


def _cxr_case(image_path: Path, load, patients: dict[str, dict[str, str]]) -> CXRCase:
    patient_id, license = _patient_and_license(patients, image_path.stem)
    return CXRCase(image_id=f"{CXR_FOLDER.NAME}-{image_path.stem}", patient_id=patient_id,
                   origin=CXR_FOLDER.NAME, license=license, load=load)


def _scan_masks(root: Path, images_dir: Path, mask_dir: Path, patients, lesion_types) -> SourceScan:
    result = SourceScan()
    images = {p.stem: p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    masks = {p.stem: p for p in mask_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    frozen_types = tuple(sorted(lesion_types.items()))
    for name in sorted(images):
        if name not in masks:
            result.skipped.append(SkippedItem(str(images[name]), f"no lesion mask {mask_dir.name}/{name}.png"))
            continue
        try:
            if image_size(images[name]) != image_size(masks[name]):
                result.skipped.append(SkippedItem(str(masks[name]), "lesion mask size differs from its image's"))
                continue
            if lesion_types and mask_is_lossy(masks[name]):
                result.skipped.append(SkippedItem(str(masks[name]), LOSSY_LABELS_REASON))
                continue
        except ChexmixInputError as exc:
            result.skipped.append(SkippedItem(name, str(exc)))
            continue
        load = functools.partial(load_masked_image, str(images[name]), str(masks[name]), frozen_types)
        result.cxr_cases.append(_cxr_case(images[name], load, patients))
    result.skipped.extend(SkippedItem(str(masks[name]), "annotation for an absent image")
                          for name in sorted(set(masks) - set(images)))
    return result


def _scan_regions(images_dir: Path, annotated: dict[str, tuple[Region, ...]], patients) -> SourceScan:
    result = SourceScan()
    for filename, regions in annotated.items():
        image_path = _find_image(images_dir, filename)
        if image_path is None:
            result.skipped.append(SkippedItem(str(images_dir / filename), "annotation for an absent image"))
            continue
        try:
            image_size(image_path)
        except ChexmixInputError as exc:
            result.skipped.append(SkippedItem(str(image_path), str(exc)))
            continue
        load = functools.partial(load_annotated_image, str(image_path), regions)
        result.cxr_cases.append(_cxr_case(image_path, load, patients))
    return result


def scan_cxr(root: Path) -> SourceScan:
    """Images with mask PNGs, a VIA JSON or a COCO JSON (see module doc)."""
    root = Path(root)
    images_dir = root / "images"
    if not images_dir.is_dir():
        raise ChexmixInputError(f"image folder is missing; expected layout: {CXR_LAYOUT}", images_dir)
    kinds = {"masks/": root / "masks" if (root / "masks").is_dir() else None,
             "via_region_data.json": root / "via_region_data.json" if (root / "via_region_data.json").is_file()
             else None,
             "COCO json": (_coco_files(root) or [None])[0]}
    present = {kind: path for kind, path in kinds.items() if path is not None}
    if not present:
        raise ChexmixInputError(f"no lesion annotations found; expected layout: {CXR_LAYOUT}", root / "masks")
    if len(present) > 1:
        raise ChexmixInputError(f"found several kinds of annotations ({', '.join(present)}); keep exactly one", root)
    patients = read_patients(root)
    kind, path = next(iter(present.items()))
    if kind == "masks/":
        return _scan_masks(root, images_dir, path, patients, read_lesion_types(root, {}))
    annotated: dict[str, tuple[Region, ...]] = {}
    skipped: list[SkippedItem] = []
    for json_path in ([path] if kind == "via_region_data.json" else _coco_files(root)):
        entries, problems = (read_via if kind == "via_region_data.json" else read_coco)(json_path)
        skipped.extend(problems)
        for filename, regions in entries.items():
            annotated[filename] = annotated.get(filename, ()) + regions
    result = _scan_regions(images_dir, annotated, patients)
    result.skipped[:0] = skipped
    return result


@dataclass(frozen=True)
class LocalFolderAdapter:
    """A :class:`~.base.SourceAdapter` for the user's own annotated files (nothing to download)."""

    NAME: str
    LAYOUT: str
    scan_folder: Callable[[Path], SourceScan]
    HOMEPAGE: str = HOMEPAGE
    CITATION: str = CITATION
    LICENSE: str = LICENSE
    URLS: Mapping[str, str] = field(default_factory=dict)
    EXCLUSIVE_WITH: Mapping[str, str] = field(default_factory=dict)

    def scan(self, root: Path) -> SourceScan:
        return self.scan_folder(root)

    def download(self, dl_manager: datasets.DownloadManager, mirror: str | None = None) -> SourceScan:
        raise ChexmixInputError(f"the {self.NAME} source reads local files only; pass --data-dir DIR where DIR "
                                f"(or DIR/{self.NAME}) holds: {self.LAYOUT}")


CT_FOLDER = LocalFolderAdapter("ct_folder", CT_LAYOUT, scan_ct)
CXR_FOLDER = LocalFolderAdapter("cxr_folder", CXR_LAYOUT, scan_cxr)
