"""Source adapters against fixture trees in the exact public layouts (tests/public_layouts.py)."""

from __future__ import annotations

import inspect
import json
import os
import pickle
import typing
from pathlib import Path

import datasets
import nibabel as nib
import numpy as np
import public_layouts as layouts
import pytest
from pycocotools import mask as mask_utils

from chexmix_dataset.ct.volume import load_ct
from chexmix_dataset.dataset.lesions import decode_rle
from chexmix_dataset.dataset.rows import make_row
from chexmix_dataset.errors import ChexmixInputError
from chexmix_dataset.sources import SOURCES, covid19_ct_seg, covid_chestxray, folders, phantom, scan_sources
from chexmix_dataset.sources.base import SourceAdapter, SourceScan


def collect():
    messages: list[str] = []
    return messages, messages.append


def offline_dl_manager(tmp_path: Path, monkeypatch) -> datasets.DownloadManager:
    """A real DownloadManager that cannot reach the network (datasets' offline mode)."""
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    return datasets.DownloadManager(download_config=datasets.DownloadConfig(cache_dir=str(tmp_path / "dl")))


# ------------------------------------------------------------------------ covid19_ct_seg ---

def test_ct_seg_zenodo_layout_cases_patients_and_masks(tmp_path):
    lesion_voxels = layouts.make_covid19_ct_seg_zenodo(tmp_path)
    scan = covid19_ct_seg.scan(tmp_path)
    assert scan.skipped == []
    cases = {c.case_id: c for c in scan.ct_cases}
    assert set(cases) == set(lesion_voxels)
    assert cases["coronacases_001"].patient_id == "coronacases_001"
    assert cases["coronacases_001"].origin == "covid19-ct-seg/coronacases"
    assert cases["coronacases_001"].stored_window_hu is None
    # Two series of Radiopaedia case 10 are one patient.
    assert (cases["radiopaedia_10_85902_1"].patient_id == cases["radiopaedia_10_85902_3"].patient_id
            == "radiopaedia-covid-19-pneumonia-10")
    assert cases["radiopaedia_10_85902_1"].origin == "covid19-ct-seg/radiopaedia"
    assert cases["radiopaedia_10_85902_1"].stored_window_hu == (-1250.0, 250.0)
    for name, case in cases.items():
        assert case.license == covid19_ct_seg.LICENSE == "CC-BY-NC-SA-4.0"
        assert case.lesion_types == {1: "infection"}
        assert case.ct_path.name == case.mask_path.name == f"{name}.nii.gz"
        volume = load_ct(case.ct_path, case.mask_path)
        assert int(volume.lesion_labels.sum()) == lesion_voxels[name]


def test_ct_seg_radiopaedia_voxels_map_back_to_hu(tmp_path):
    layouts.make_covid19_ct_seg_zenodo(tmp_path, cases=["radiopaedia_4_85506_1"])
    case = covid19_ct_seg.scan(tmp_path).ct_cases[0]
    stored = np.asarray(nib.load(str(case.ct_path)).dataobj).astype(float)
    hu, _, _ = layouts.tiny_ct(seed=0)
    low, high = case.stored_window_hu
    recovered = low + stored * (high - low) / 255
    inside = (hu > low) & (hu < high)
    assert inside.any()
    np.testing.assert_allclose(recovered[inside], hu[inside], atol=(high - low) / 255)


@pytest.mark.parametrize("with_metadata", [True, False])
def test_ct_seg_kaggle_layout_renames_to_case_names(tmp_path, with_metadata):
    lesion_voxels = layouts.make_covid19_ct_seg_kaggle(tmp_path, with_metadata=with_metadata)
    scan = covid19_ct_seg.scan(tmp_path)
    cases = {c.case_id: c for c in scan.ct_cases}
    assert set(cases) == set(lesion_voxels)
    assert cases["radiopaedia_4_85506_1"].ct_path.name == "radiopaedia_org_covid-19-pneumonia-4_85506_1-dcm.nii"
    assert cases["radiopaedia_4_85506_1"].mask_path.name == "radiopaedia_4_85506_1.nii"
    assert cases["coronacases_001"].ct_path.name == "coronacases_org_001.nii"
    assert cases["radiopaedia_29_86490_1"].patient_id == cases["radiopaedia_29_86491_1"].patient_id
    for name, case in cases.items():
        assert int(load_ct(case.ct_path, case.mask_path).lesion_labels.sum()) == lesion_voxels[name]


def test_ct_seg_missing_mask_names_the_file_and_layout(tmp_path):
    layouts.make_covid19_ct_seg_zenodo(tmp_path)
    (tmp_path / "Infection_Mask" / "coronacases_002.nii.gz").unlink()
    with pytest.raises(ChexmixInputError) as error:
        covid19_ct_seg.scan(tmp_path)
    assert "Infection_Mask/coronacases_002.nii.gz" in str(error.value)
    assert "COVID-19-CT-Seg_20cases" in str(error.value)


def test_ct_seg_renamed_mask_folder_and_missing_kaggle_file(tmp_path):
    layouts.make_covid19_ct_seg_zenodo(tmp_path / "zenodo")
    (tmp_path / "zenodo" / "Infection_Mask").rename(tmp_path / "zenodo" / "masks")
    with pytest.raises(ChexmixInputError, match="Infection_Mask"):
        covid19_ct_seg.scan(tmp_path / "zenodo")
    layouts.make_covid19_ct_seg_kaggle(tmp_path / "kaggle")
    (tmp_path / "kaggle" / "ct_scans" / "coronacases_org_001.nii").unlink()
    with pytest.raises(ChexmixInputError, match="coronacases_org_001.nii"):
        covid19_ct_seg.scan(tmp_path / "kaggle")


def test_ct_seg_corrupt_header_and_grid_mismatch_are_skipped(tmp_path):
    layouts.make_covid19_ct_seg_zenodo(tmp_path)
    (tmp_path / "COVID-19-CT-Seg_20cases" / "coronacases_001.nii.gz").write_bytes(b"not a nifti")
    hu, labels, affine = layouts.tiny_ct(seed=1)
    layouts.write_nifti(tmp_path / "Infection_Mask" / "coronacases_002.nii.gz", labels[:-1], affine)
    scan = covid19_ct_seg.scan(tmp_path)
    assert {c.case_id for c in scan.ct_cases} == {"radiopaedia_10_85902_1", "radiopaedia_10_85902_3"}
    reasons = " | ".join(f"{s.item}: {s.reason}" for s in scan.skipped)
    assert "coronacases_001.nii.gz" in reasons and "header" in reasons
    assert "coronacases_002" in reasons and "differs" in reasons


# ----------------------------------------------------------------------- covid_chestxray ---

@pytest.mark.parametrize("via_location", ["ct2xray", "ct2xray_clone", "annotations"])
def test_chestxray_cases_ids_licences_and_exclusions(tmp_path, via_location):
    fixture = layouts.make_covid_chestxray(tmp_path, via_location=via_location)
    scan = covid_chestxray.scan(tmp_path)
    assert scan.ct_cases == []
    by_file = {c.image_id: c for c in scan.cxr_cases}
    expected_ids = {f"covid-chestxray-dataset-{Path(f).stem}": f for f in fixture.kept}
    assert set(by_file) == set(expected_ids)
    for image_id, filename in expected_ids.items():
        case, spec = by_file[image_id], fixture.kept[filename]
        assert case.patient_id == f"covid-chestxray-dataset-{spec['patientid']}"
        assert case.license == spec["license"]
        assert case.origin == "covid-chestxray-dataset"
        assert case.view == spec["view"]
    assert len(scan.skipped) == len(fixture.excluded)
    for filename, word in fixture.excluded.items():
        matching = [s for s in scan.skipped if filename in s.item]
        assert len(matching) == 1 and word in matching[0].reason, (filename, matching)


def test_chestxray_square_polygons_rasterise_to_exact_areas_and_round_trip(tmp_path):
    fixture = layouts.make_covid_chestxray(tmp_path)
    for case in covid_chestxray.scan(tmp_path).cxr_cases:
        filename = next(f for f in fixture.kept if case.image_id.endswith(Path(f).stem))
        squares = fixture.kept[filename]["squares"]
        messages, warn = collect()
        image, instances = case.load(warn)
        assert messages == []
        assert image.dtype == np.uint8 and image.shape == (fixture.size, fixture.size)
        assert sorted(int(i.mask.sum()) for i in instances) == sorted(int(s[2]) ** 2 for s in squares)
        for instance, (x0, y0, side) in zip(instances, squares):
            ys, xs = np.nonzero(instance.mask)
            assert (xs.min(), xs.max() + 1, ys.min(), ys.max() + 1) == (x0, x0 + side, y0, y0 + side)
        row = make_row(image, instances, image_id=case.image_id, source="cxr", origin=case.origin,
                       patient_id=case.patient_id, license=case.license)
        for instance, obj_area, rle in zip(instances, row["objects"]["area"], row["objects"]["segmentation"]):
            assert obj_area == instance.mask.sum()
            np.testing.assert_array_equal(decode_rle(rle), instance.mask)


def test_chestxray_load_is_picklable(tmp_path):
    layouts.make_covid_chestxray(tmp_path)
    case = covid_chestxray.scan(tmp_path).cxr_cases[0]
    restored = pickle.loads(pickle.dumps(case.load))
    image, instances = restored(lambda message: None)
    reference_image, reference_instances = case.load(lambda message: None)
    np.testing.assert_array_equal(image, reference_image)
    assert len(instances) == len(reference_instances)


def test_chestxray_polygon_partly_outside_is_clipped_with_a_warning(tmp_path):
    fixture = layouts.make_covid_chestxray(tmp_path, via_location="annotations")
    via_path = tmp_path / "annotations" / "via_region_data.json"
    data = json.loads(via_path.read_text())
    filename = "nejmc2001573_f1a.jpeg"
    key = f"{filename}12442"
    size = fixture.size
    # A 20 px square whose right 8 px lie beyond the image, and one entirely outside it.
    data[key]["regions"] = {"0": layouts.via_polygon(*layouts.square(size - 12, 30, 20)),
                            "1": layouts.via_polygon(*layouts.square(size + 5, 5, 4))}
    via_path.write_text(json.dumps(data))
    case = next(c for c in covid_chestxray.scan(tmp_path).cxr_cases if c.image_id.endswith("f1a"))
    messages, warn = collect()
    _, instances = case.load(warn)
    assert len(instances) == 1
    assert int(instances[0].mask.sum()) == 12 * 20
    assert len(messages) == 3  # two clipping notices, one polygon dropped
    assert sum("clipped" in m for m in messages) == 2 and sum("dropped" in m for m in messages) == 1
    assert all(filename in m for m in messages)


def test_chestxray_corrupt_image_is_skipped_at_scan_and_raises_at_load(tmp_path):
    layouts.make_covid_chestxray(tmp_path)
    (tmp_path / "images" / "lancet-case2a.png").write_bytes(b"\x89PNG garbage")
    scan = covid_chestxray.scan(tmp_path)
    assert not any(c.image_id.endswith("lancet-case2a") for c in scan.cxr_cases)
    assert any("lancet-case2a.png" in s.item and "corrupt" in s.reason for s in scan.skipped)
    jpeg = tmp_path / "images" / "nejmc2001573_f1a.jpeg"
    case = next(c for c in scan.cxr_cases if c.image_id.endswith("f1a"))
    jpeg.write_bytes(jpeg.read_bytes()[:40])  # truncated after scanning: load must fail cleanly
    with pytest.raises(ChexmixInputError, match="nejmc2001573_f1a.jpeg"):
        case.load(lambda message: None)


def test_chestxray_missing_sources_raise_naming_the_file(tmp_path):
    layouts.make_covid_chestxray(tmp_path, via_location="annotations")
    (tmp_path / "annotations" / "via_region_data.json").unlink()
    with pytest.raises(ChexmixInputError, match="annotations/via_region_data.json"):
        covid_chestxray.scan(tmp_path)
    layouts.make_covid_chestxray(tmp_path)
    (tmp_path / "metadata.csv").rename(tmp_path / "meta.csv")
    with pytest.raises(ChexmixInputError, match="metadata.csv"):
        covid_chestxray.scan(tmp_path)


def test_chestxray_metadata_without_license_column_is_rejected(tmp_path):
    layouts.make_covid_chestxray(tmp_path)
    lines = (tmp_path / "metadata.csv").read_text().splitlines()
    lines[0] = lines[0].replace(",license,", ",licence,")
    (tmp_path / "metadata.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(ChexmixInputError, match="lacks column.*license"):
        covid_chestxray.scan(tmp_path)


@pytest.mark.parametrize("adapter", [covid19_ct_seg, covid_chestxray])
def test_download_without_network_explains_the_data_dir_layout(tmp_path, monkeypatch, adapter):
    dl_manager = offline_dl_manager(tmp_path, monkeypatch)
    with pytest.raises(ChexmixInputError) as error:
        adapter.download(dl_manager)
    message = str(error.value)
    assert "download" in message and "failed" in message and "--data-dir" in message
    assert adapter.LAYOUT in message
    assert not (tmp_path / "dl").exists() or not any((tmp_path / "dl").rglob("*.zip"))


def test_adapters_declare_public_urls_and_metadata():
    assert covid19_ct_seg.URLS["ct"].startswith("https://zenodo.org/records/3757476/files/COVID-19-CT-Seg_20cases.zip")
    assert covid19_ct_seg.URLS["infection_mask"].startswith("https://zenodo.org/records/3757476/files/Infection_Mask.zip")
    assert "ieee8023/covid-chestxray-dataset" in covid_chestxray.URLS["dataset"]
    assert covid_chestxray.URLS["via_train"].endswith("CT2Xray/master/xrays_only/train/via_region_data.json")
    for adapter in SOURCES.values():
        assert isinstance(adapter.NAME, str) and isinstance(adapter.LICENSE, str)
        assert callable(adapter.scan) and callable(adapter.download)


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_every_registered_adapter_satisfies_the_source_adapter_protocol(name):
    adapter = SOURCES[name]
    assert isinstance(adapter, SourceAdapter) and adapter.NAME == name
    declared = typing.get_type_hints(SourceAdapter)
    for attribute, kind in declared.items():
        value = getattr(adapter, attribute)
        assert isinstance(value, typing.get_origin(kind) or kind), (name, attribute, value)
    assert all(isinstance(url, str) and url.startswith("https://") for url in adapter.URLS.values())
    assert set(adapter.EXCLUSIVE_WITH) <= set(SOURCES) - {name}
    # Called as the builder calls them (scan_sources): positional root; dl_manager and mirror=.
    inspect.signature(adapter.scan).bind(Path("root"))
    inspect.signature(adapter.download).bind(object(), mirror=None)


def test_an_adapter_without_download_is_not_a_source_adapter():
    class ScanOnly:
        NAME = HOMEPAGE = CITATION = LICENSE = LAYOUT = ""
        URLS: dict = {}
        EXCLUSIVE_WITH: dict = {}

        def scan(self, root):
            return SourceScan()

    assert not isinstance(ScanOnly(), SourceAdapter)


# ------------------------------------------------------------------------------- folders ---

def test_ct_folder_pairs_by_name_with_patients_csv(tmp_path):
    lesion_voxels = layouts.make_ct_folder(tmp_path, ["a", "b", "c"], mask_dirname="masks",
                                           patients={"a": ("P1", "CC-BY-4.0"), "b": ("P1", "")})
    (tmp_path / "masks" / "c.nii.gz").rename(tmp_path / "masks" / "orphan.nii.gz")
    scan = folders.CT_FOLDER.scan(tmp_path)
    cases = {c.case_id: c for c in scan.ct_cases}
    assert set(cases) == {"a", "b"}
    assert cases["a"].patient_id == cases["b"].patient_id == "P1"
    assert cases["a"].license == "CC-BY-4.0" and cases["b"].license == "unknown"
    assert cases["a"].origin == "ct_folder"
    assert int(load_ct(cases["a"].ct_path, cases["a"].mask_path).lesion_labels.sum()) == lesion_voxels["a"]
    reasons = {Path(s.item).name: s.reason for s in scan.skipped}
    assert "no lesion mask" in reasons["c.nii.gz"] and "absent CT" in reasons["orphan.nii.gz"]


def test_ct_folder_without_ct_folder_names_it(tmp_path):
    layouts.make_ct_folder(tmp_path, ["a"])
    (tmp_path / "ct").rename(tmp_path / "cts")
    with pytest.raises(ChexmixInputError, match=r"ct.*expected layout"):
        folders.CT_FOLDER.scan(tmp_path)


def test_cxr_folder_label_masks_give_one_instance_per_component(tmp_path):
    labels = np.zeros((64, 80), dtype=np.uint8)
    labels[5:15, 5:15] = 1          # 100 px
    labels[40:50, 60:66] = 1        # 60 px, a second component of label 1
    labels[30:34, 20:29] = 2        # 36 px
    layouts.save_png(tmp_path / "images" / "x1.png", np.full((64, 80), 90, dtype=np.uint8))
    layouts.save_png(tmp_path / "masks" / "x1.png", labels)
    binary = np.zeros((64, 80), dtype=np.uint8)
    binary[0:4, 0:4] = 255
    layouts.save_png(tmp_path / "images" / "x2.png", np.full((64, 80), 90, dtype=np.uint8))
    layouts.save_png(tmp_path / "masks" / "x2.png", binary)
    layouts.save_png(tmp_path / "images" / "no_mask.png", np.zeros((64, 80), dtype=np.uint8))
    (tmp_path / "lesion_types.json").write_text(json.dumps({"1": "ground_glass", "2": "consolidation"}))
    scan = folders.CXR_FOLDER.scan(tmp_path)
    cases = {c.image_id: c for c in scan.cxr_cases}
    assert set(cases) == {"cxr_folder-x1", "cxr_folder-x2"}
    _, instances = cases["cxr_folder-x1"].load(lambda m: None)
    assert sorted((i.lesion_type, int(i.mask.sum())) for i in instances) == [
        ("consolidation", 36), ("ground_glass", 60), ("ground_glass", 100)]
    _, instances = pickle.loads(pickle.dumps(cases["cxr_folder-x2"].load))(lambda m: None)
    assert [(i.lesion_type, int(i.mask.sum())) for i in instances] == [("lesion", 16)]
    assert [Path(s.item).name for s in scan.skipped] == ["no_mask.png"]


def test_cxr_folder_coco_polygons_and_rle(tmp_path):
    layouts.save_png(tmp_path / "images" / "a.png", np.full((50, 60), 100, dtype=np.uint8))
    disc = np.zeros((50, 60), dtype=np.uint8)
    yy, xx = np.mgrid[:50, :60]
    disc[(yy - 25) ** 2 + (xx - 40) ** 2 <= 64] = 1
    rle = mask_utils.encode(np.asfortranarray(disc))
    coco = {
        "images": [{"id": 1, "file_name": "a.png", "height": 50, "width": 60},
                   {"id": 2, "file_name": "missing.png", "height": 50, "width": 60}],
        "categories": [{"id": 7, "name": "consolidation"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 7, "segmentation": [[2, 2, 12, 2, 12, 9, 2, 9]], "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 7,
             "segmentation": {"size": [50, 60], "counts": rle["counts"].decode("ascii")}, "iscrowd": 0},
            {"id": 3, "image_id": 2, "category_id": 7, "segmentation": [[1, 1, 5, 1, 5, 5]], "iscrowd": 0},
        ],
    }
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_train.json").write_text(json.dumps(coco))
    scan = folders.CXR_FOLDER.scan(tmp_path)
    assert [c.image_id for c in scan.cxr_cases] == ["cxr_folder-a"]
    assert any("missing.png" in s.item and "absent image" in s.reason for s in scan.skipped)
    _, instances = scan.cxr_cases[0].load(lambda m: None)
    assert [int(i.mask.sum()) for i in instances] == [10 * 7, int(disc.sum())]
    np.testing.assert_array_equal(instances[1].mask, disc.astype(bool))
    assert {i.lesion_type for i in instances} == {"consolidation"}


def test_cxr_folder_via_and_ambiguous_annotations(tmp_path):
    layouts.save_png(tmp_path / "images" / "v.png", np.full((40, 40), 50, dtype=np.uint8))
    key, entry = layouts.via_entry("v.png", [layouts.via_polygon(*layouts.square(3, 4, 9))])
    (tmp_path / "via_region_data.json").write_text(json.dumps({key: entry}))
    (tmp_path / "patients.csv").write_text("name,patient_id,license\nv,patient-7,CC0-1.0\n")
    case = folders.CXR_FOLDER.scan(tmp_path).cxr_cases[0]
    assert (case.patient_id, case.license) == ("patient-7", "CC0-1.0")
    assert [int(i.mask.sum()) for i in case.load(lambda m: None)[1]] == [81]
    (tmp_path / "masks").mkdir()
    with pytest.raises(ChexmixInputError, match="several kinds"):
        folders.CXR_FOLDER.scan(tmp_path)


def test_folder_adapters_have_no_download(tmp_path, monkeypatch):
    dl_manager = offline_dl_manager(tmp_path, monkeypatch)
    for adapter in (folders.CT_FOLDER, folders.CXR_FOLDER):
        with pytest.raises(ChexmixInputError, match="--data-dir"):
            adapter.download(dl_manager)


# ------------------------------------------------------------------------------- phantom ---

def test_phantom_source_writes_once_and_reuses_its_cache(tmp_path):
    from chexmix_dataset import phantoms

    scan = phantom.scan(tmp_path, n_ct=2, n_cxr=3, seed=5, ct_shape=(32, 32, 24), cxr_size=64)
    assert [c.patient_id for c in scan.ct_cases] == [phantoms.chest_phantom(5 + i, (32, 32, 24)).patient_id
                                                     for i in range(2)]
    assert {c.origin for c in scan.ct_cases} == {"phantom/ct"} and {c.license for c in scan.ct_cases} == {"CC0-1.0"}
    reference = phantoms.chest_phantom(6, (32, 32, 24))
    volume = load_ct(scan.ct_cases[1].ct_path, scan.ct_cases[1].mask_path)
    assert int((volume.lesion_labels > 0).sum()) == int((reference.labels > 0).sum())
    assert scan.ct_cases[1].lesion_types == reference.lesion_types
    mtimes = [os.stat(c.ct_path).st_mtime_ns for c in scan.ct_cases]
    again = phantom.scan(tmp_path, n_ct=2, n_cxr=3, seed=5, ct_shape=(32, 32, 24), cxr_size=64)
    assert [os.stat(c.ct_path).st_mtime_ns for c in again.ct_cases] == mtimes
    assert len(scan.cxr_cases) == 3 and {c.origin for c in scan.cxr_cases} == {"phantom/cxr_standin"}
    image, instances = pickle.loads(pickle.dumps(scan.cxr_cases[0].load))(lambda m: None)
    standin = phantoms.cxr_standin(5 + phantom.CXR_SEED_OFFSET, size=64)
    np.testing.assert_array_equal(image, standin.image)
    assert scan.cxr_cases[0].patient_id == standin.patient_id
    assert len(instances) == len(standin.instances)


# ---------------------------------------------------------------------------- registry ---

def test_scan_sources_merges_and_finds_each_sources_root(tmp_path):
    layouts.make_covid19_ct_seg_zenodo(tmp_path / "covid19_ct_seg")
    layouts.make_covid_chestxray(tmp_path / "covid_chestxray")
    merged = scan_sources(["covid19_ct_seg", "covid_chestxray"], tmp_path, dl_manager=None)
    assert len(merged.ct_cases) == 4 and len(merged.cxr_cases) == 4 and len(merged.skipped) == 4
    # A data dir that is itself one source's layout is used as that source's root.
    alone = scan_sources(["covid_chestxray"], tmp_path / "covid_chestxray", dl_manager=None)
    assert len(alone.cxr_cases) == 4
    with pytest.raises(ChexmixInputError, match="unknown source"):
        scan_sources(["nope"], tmp_path, dl_manager=None)


def test_scan_sources_downloads_without_data_dir(tmp_path, monkeypatch):
    dl_manager = offline_dl_manager(tmp_path, monkeypatch)
    with pytest.raises(ChexmixInputError, match="download of the covid19_ct_seg source failed"):
        scan_sources(["covid19_ct_seg"], None, dl_manager)


def test_coco_reader_keeps_chexmix_lesion_types(tmp_path):
    import json

    from chexmix_dataset.sources.annotations import read_coco

    path = tmp_path / "instances_train.json"
    path.write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.png", "width": 20, "height": 20}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "lesion_type": "consolidation",
                         "segmentation": [[2, 2, 10, 2, 10, 10, 2, 10]]}],
        "categories": [{"id": 1, "name": "lesion"}],
    }))
    regions, skipped = read_coco(path)
    assert skipped == [] and [r.lesion_type for r in regions["a.png"]] == ["consolidation"]


def test_damaged_phantom_cache_is_rebuilt(tmp_path):
    from chexmix_dataset.sources import phantom

    first = phantom.scan(tmp_path, n_ct=2, n_cxr=0, ct_shape=(32, 32, 24))
    first.ct_cases[1].mask_path.unlink()
    again = phantom.scan(tmp_path, n_ct=2, n_cxr=0, ct_shape=(32, 32, 24))
    assert all(case.mask_path.exists() for case in again.ct_cases)


def test_our_coco_export_reads_back_as_a_cxr_folder(tmp_path):
    import numpy as np
    from helpers import tiny_dataset_dict

    from chexmix_dataset.dataset.lesions import decode_rle
    from chexmix_dataset.export import export_coco
    from chexmix_dataset.sources.folders import CXR_FOLDER

    dataset = tiny_dataset_dict(n_train=3, n_test=2)
    export_coco(dataset, tmp_path / "coco")
    scan = CXR_FOLDER.scan(tmp_path / "coco")
    assert scan.skipped == [] and len(scan.cxr_cases) == 5
    rows = {row["image_id"]: row for split in dataset.values() for row in split}
    for case in scan.cxr_cases:
        image, instances = case.load(lambda message: None)
        row = next(r for image_id, r in rows.items() if case.image_id.endswith(image_id))
        assert np.array_equal(image, np.asarray(row["image"]))
        expected = sorted(zip(row["objects"]["lesion_type"], (decode_rle(s).sum() for s in row["objects"]["segmentation"])))
        assert sorted((i.lesion_type, i.mask.sum()) for i in instances) == expected
