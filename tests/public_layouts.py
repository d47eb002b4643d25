"""Tiny fixture trees in the exact public layouts of CheXMix's sources (for tests only).

Each ``make_*`` function writes a small copy of a public archive's layout under ``root`` (file
names, folder nesting, CSV columns and VIA JSON shape as published; see the adapters' module
docs for where each fact comes from) and returns what a correct adapter must find. CTs are
chest phantoms at a tiny shape when :mod:`chexmix_dataset.phantoms` is available, else a small
synthetic ellipsoid; images are CXR stand-ins (or a synthetic gradient) of 64-128 px.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image

TINY_CT_SHAPE = (32, 32, 24)

# The 20 case names of Zenodo record 3757476 (COVID-19-CT-Seg_20cases.zip, Infection_Mask.zip).
ZENODO_CASES = (
    [f"coronacases_{i:03d}" for i in range(1, 11)]
    + ["radiopaedia_4_85506_1", "radiopaedia_7_85703_0", "radiopaedia_10_85902_1", "radiopaedia_10_85902_3",
       "radiopaedia_14_85914_0", "radiopaedia_27_86410_0", "radiopaedia_29_86490_1", "radiopaedia_29_86491_1",
       "radiopaedia_36_86526_0", "radiopaedia_40_86625_0"]
)

# ieee8023/covid-chestxray-dataset metadata.csv header (latest indexed version), with its trailing comma.
COHEN_COLUMNS = [
    "patientid", "offset", "sex", "age", "finding", "RT_PCR_positive", "survival", "intubated",
    "intubation_present", "went_icu", "in_icu", "needed_supplemental_O2", "extubated", "temperature",
    "pO2_saturation", "leukocyte_count", "neutrophil_count", "lymphocyte_count", "view", "modality", "date",
    "location", "folder", "filename", "doi", "url", "license", "clinical_notes", "other_notes", "",
]


# ------------------------------------------------------------------------------------- CT ---

def tiny_ct(seed: int, shape: tuple[int, int, int] = TINY_CT_SHAPE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(HU int16, infection labels uint8 0/1, affine) of a tiny chest CT with at least one lesion voxel."""
    try:
        from chexmix_dataset import phantoms
    except ImportError:
        phantoms = None
    if phantoms is not None:
        phantom = phantoms.chest_phantom(seed, shape=shape, lesions=True)
        return phantom.hu.astype(np.int16), (phantom.labels > 0).astype(np.uint8), np.asarray(phantom.affine)
    x, y, z = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    hu = np.where(x**2 + y**2 < 0.8, -850, -1000).astype(np.int16)
    labels = ((x - 0.3) ** 2 + y**2 + z**2 < 0.1).astype(np.uint8)
    hu[labels > 0] = -400
    affine = np.diag([1.4, 1.4, 5.0, 1.0])
    return hu, labels, affine


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), str(path))


def _window_to_uint8(hu: np.ndarray, low: float = -1250.0, high: float = 250.0) -> np.ndarray:
    """How the Radiopaedia cases are stored on Zenodo: HU clipped to [low, high], scaled to 0-255."""
    return np.rint((np.clip(hu, low, high) - low) * 255.0 / (high - low)).astype(np.uint8)


def _ct_case_arrays(index: int, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    hu, labels, affine = tiny_ct(seed=index)
    voxels = _window_to_uint8(hu) if name.startswith("radiopaedia") else hu
    return voxels, labels, affine


def make_covid19_ct_seg_zenodo(root: Path, cases: list[str] | None = None) -> dict[str, int]:
    """Zenodo layout: COVID-19-CT-Seg_20cases/<case>.nii.gz + Infection_Mask/<case>.nii.gz.

    Returns {case name: number of infection voxels}.
    """
    cases = cases or ["coronacases_001", "coronacases_002", "radiopaedia_10_85902_1", "radiopaedia_10_85902_3"]
    lesion_voxels = {}
    for index, name in enumerate(cases):
        voxels, labels, affine = _ct_case_arrays(index, name)
        write_nifti(root / "COVID-19-CT-Seg_20cases" / f"{name}.nii.gz", voxels, affine)
        write_nifti(root / "Infection_Mask" / f"{name}.nii.gz", labels, affine)
        lesion_voxels[name] = int(labels.sum())
    return lesion_voxels


def kaggle_ct_name(case: str) -> str:
    """The CT file stem the Kaggle covid19-ct-scans redistribution uses for a Zenodo case name."""
    if case.startswith("coronacases_"):
        return case.replace("coronacases_", "coronacases_org_")
    return "radiopaedia_org_covid-19-pneumonia-" + case[len("radiopaedia_"):] + "-dcm"


def make_covid19_ct_seg_kaggle(root: Path, cases: list[str] | None = None, with_metadata: bool = True) -> dict[str, int]:
    """Kaggle layout: ct_scans/, lung_mask/, infection_mask/, lung_and_infection_mask/ (.nii) + metadata.csv."""
    cases = cases or ["coronacases_001", "radiopaedia_4_85506_1", "radiopaedia_29_86490_1", "radiopaedia_29_86491_1"]
    lesion_voxels, rows = {}, []
    for index, name in enumerate(cases):
        voxels, labels, affine = _ct_case_arrays(index, name)
        ct_name = f"{kaggle_ct_name(name)}.nii"
        write_nifti(root / "ct_scans" / ct_name, voxels, affine)
        write_nifti(root / "infection_mask" / f"{name}.nii", labels, affine)
        write_nifti(root / "lung_mask" / f"{name}.nii", (voxels < -500).astype(np.uint8), affine)
        write_nifti(root / "lung_and_infection_mask" / f"{name}.nii", labels * 3, affine)
        prefix = "../input/covid19-ct-scans"
        rows.append([f"{prefix}/ct_scans/{ct_name}", f"{prefix}/lung_mask/{name}.nii",
                     f"{prefix}/infection_mask/{name}.nii", f"{prefix}/lung_and_infection_mask/{name}.nii"])
        lesion_voxels[name] = int(labels.sum())
    if with_metadata:
        with (root / "metadata.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["ct_scan", "lung_mask", "infection_mask", "lung_and_infection_mask"])
            writer.writerows(rows)
    return lesion_voxels


# ------------------------------------------------------------------------------------ CXR ---

def cxr_image(seed: int, size: int = 96) -> np.ndarray:
    """A (size, size) uint8 chest X-ray stand-in (or a gradient when phantoms are unavailable)."""
    try:
        from chexmix_dataset import phantoms
    except ImportError:
        phantoms = None
    if phantoms is not None:
        image = np.asarray(phantoms.cxr_standin(seed, size=size).image, dtype=np.uint8)
        return np.asarray(Image.fromarray(image).resize((size, size))) if image.shape != (size, size) else image
    yy, xx = np.mgrid[:size, :size]
    return ((xx + yy + 7 * seed) % 256).astype(np.uint8)


def via_polygon(xs: list[float], ys: list[float]) -> dict:
    """One VIA 2 region as CT2Xray writes it."""
    return {"shape_attributes": {"name": "polygon", "all_points_x": list(xs), "all_points_y": list(ys)},
            "region_attributes": {"name": "not_defined", "type": "unknown",
                                  "image_quality": {"good": True, "frontal": True, "good_illumination": True}}}


def square(x0: float, y0: float, side: float) -> tuple[list[float], list[float]]:
    return [x0, x0 + side, x0 + side, x0], [y0, y0, y0 + side, y0 + side]


def via_entry(filename: str, regions: list[dict] | dict) -> tuple[str, dict]:
    """A VIA entry keyed filename + size; CT2Xray writes the constant size 12442."""
    return f"{filename}12442", {"filename": filename, "size": 12442, "regions": regions,
                                "file_attributes": {"caption": "", "public_domain": "no", "image_url": ""}}


@dataclass
class CohenFixture:
    """What the covid-chestxray fixture holds, for assertions."""

    root: Path
    size: int
    kept: dict[str, dict] = field(default_factory=dict)       # filename -> {patientid, license, view, squares}
    excluded: dict[str, str] = field(default_factory=dict)    # filename -> word expected in the skip reason


def _cohen_row(patientid: str, view: str, modality: str, filename: str, license: str, folder: str = "images",
               url: str = "https://pubs.rsna.org/doi/10.1148/radiol.2020200490") -> dict:
    row = dict.fromkeys(COHEN_COLUMNS, "")
    row.update(patientid=patientid, offset="0", sex="M", age="60", finding="Pneumonia/Viral/COVID-19",
               view=view, modality=modality, date="2020", location="Somewhere", folder=folder,
               filename=filename, url=url, license=license)
    return row


def make_covid_chestxray(root: Path, via_location: str = "ct2xray", size: int = 96,
                         radiopaedia_cases: tuple[int, ...] = ()) -> CohenFixture:
    """covid-chestxray-dataset layout (metadata.csv, images/) with CT2Xray VIA annotations.

    ``via_location``: "ct2xray" writes ``xrays_only/train`` and ``mixed/val`` files in ``root``;
    "ct2xray_clone" puts them under ``root/CT2Xray``; "annotations" writes
    ``root/annotations/via_region_data.json``. Each number N in ``radiopaedia_cases`` adds
    Radiopaedia case ``covid-19-pneumonia-N`` as the collection lists it: an annotated PA
    ``covid-19-pneumonia-N-PA.jpg`` (patientid ``3N0``) and its lateral view under another
    patientid (``3N1``), both with the case URL (``?lang=us``, as Radiopaedia links carry).
    """
    fixture = CohenFixture(root=root, size=size)
    rows, train, val = [], {}, {}

    def add_image(filename: str, seed: int) -> None:
        path = root / "images" / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(cxr_image(seed, size)).save(path)

    # Kept: PA with one 10 px square, AP Supine with two squares, AP lesion-free (val, no region).
    specs = [
        ("auntminnie-a-2020_01_28_23_51_6665_2020_01_28_Vietnam_coronavirus.jpeg", "2", "PA", "", [(20, 30, 10)]),
        ("0a6c60063b4bae4de001caaba306d1_jumbo.jpeg", "352", "AP Supine", "CC BY-NC-SA", [(10, 10, 8), (50, 40, 12)]),
        ("lancet-case2a.png", "350a", "AP", "CC BY-SA", []),
    ]
    for seed, (filename, patientid, view, license, squares) in enumerate(specs):
        rows.append(_cohen_row(patientid, view, "X-ray", filename, license))
        add_image(filename, seed)
        key, entry = via_entry(filename, [via_polygon(*square(*s)) for s in squares])
        (val if not squares else train)[key] = entry
        fixture.kept[filename] = {"patientid": patientid, "license": license or "unknown", "view": view,
                                  "squares": squares}
    # VIA 1 stores regions as a dict keyed "0", "1", ...
    filename = "nejmc2001573_f1a.jpeg"
    rows.append(_cohen_row("4", "PA", "X-ray", filename, "CC BY 4.0"))
    add_image(filename, 7)
    train.update([via_entry(filename, {"0": via_polygon(*square(5, 5, 6))})])
    fixture.kept[filename] = {"patientid": "4", "license": "CC BY 4.0", "view": "PA", "squares": [(5, 5, 6)]}
    # Excluded: lateral view, a CT image, an image missing from images/, a CT projection not in metadata.
    excluded = [("nejmoa2001191_f1-L.jpeg", "13", "L", "X-ray", "non-frontal", True),
                ("jkms-35-e79-g001-l-d.jpg", "17", "Axial", "CT", "modality", True),
                ("absent-image.jpeg", "20", "PA", "X-ray", "absent", False)]
    for seed, (filename, patientid, view, modality, reason, with_file) in enumerate(excluded, start=10):
        rows.append(_cohen_row(patientid, view, modality, filename, ""))
        if with_file:
            add_image(filename, seed)
        train.update([via_entry(filename, [via_polygon(*square(10, 10, 5))])])
        fixture.excluded[filename] = reason
    train.update([via_entry("xray7.jpg", [via_polygon(*square(10, 10, 5))])])
    fixture.excluded["xray7.jpg"] = "metadata.csv"
    for number in radiopaedia_cases:
        url = f"https://radiopaedia.org/cases/covid-19-pneumonia-{number}?lang=us"
        filename = f"covid-19-pneumonia-{number}-PA.jpg"
        rows.append(_cohen_row(f"3{number}0", "PA", "X-ray", filename, "CC BY-NC-SA", url=url))
        rows.append(_cohen_row(f"3{number}1", "L", "X-ray", f"covid-19-pneumonia-{number}-L.jpg", "CC BY-NC-SA",
                               url=url))
        add_image(filename, 30 + number)
        train.update([via_entry(filename, [via_polygon(*square(12, 12, 9))])])
        fixture.kept[filename] = {"patientid": f"3{number}0", "license": "CC BY-NC-SA", "view": "PA",
                                  "squares": [(12, 12, 9)]}
    # A frontal, unannotated image is in metadata.csv and images/ but in no VIA file: not a case.
    rows.append(_cohen_row("99", "PA", "X-ray", "unannotated.png", ""))
    add_image("unannotated.png", 20)

    root.mkdir(parents=True, exist_ok=True)
    with (root / "metadata.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COHEN_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    if via_location == "annotations":
        _write_json(root / "annotations" / "via_region_data.json", {**train, **val})
    else:
        base = root / "CT2Xray" if via_location == "ct2xray_clone" else root
        _write_json(base / "xrays_only" / "train" / "via_region_data.json", train)
        _write_json(base / "mixed" / "val" / "via_region_data.json", val)
    return fixture


def _write_json(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


# -------------------------------------------------------------------------------- folders ---

def make_ct_folder(root: Path, names: list[str], mask_dirname: str = "mask",
                   patients: dict[str, tuple[str, str]] | None = None) -> dict[str, int]:
    """ct/NAME.nii.gz + <mask_dirname>/NAME.nii.gz (+ patients.csv name,patient_id,license)."""
    lesion_voxels = {}
    for index, name in enumerate(names):
        hu, labels, affine = tiny_ct(seed=50 + index)
        write_nifti(root / "ct" / f"{name}.nii.gz", hu, affine)
        write_nifti(root / mask_dirname / f"{name}.nii.gz", labels, affine)
        lesion_voxels[name] = int(labels.sum())
    if patients:
        with (root / "patients.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["name", "patient_id", "license"])
            writer.writerows([name, pid, lic] for name, (pid, lic) in patients.items())
    return lesion_voxels


def save_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def make_ct_folder_with_a_cut_volume(data_dir: Path, n: int = 5) -> Path:
    """``make_ct_folder`` of ``case0..case{n-1}`` whose last CT keeps its header but loses its
    voxels (a download cut short); returns that file."""
    make_ct_folder(data_dir, [f"case{i}" for i in range(n)])
    broken = data_dir / "ct" / f"case{n - 1}.nii.gz"
    broken.write_bytes(broken.read_bytes()[:400])
    return broken
