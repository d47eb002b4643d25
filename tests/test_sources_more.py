"""COVID-QU-Ex, QaTa-COV19, MosMedData and COVID-19-20 adapters against fixture trees in their
exact public layouts (tests/public_layouts_more.py)."""

from __future__ import annotations

import pickle
import sys
import types
from pathlib import Path

import datasets
import numpy as np
import public_layouts_more as more
import pytest

from chexmix_dataset.ct.volume import load_ct
from chexmix_dataset.dataset.builder import make_builder
from chexmix_dataset.errors import ChexmixInputError
from chexmix_dataset.sources import SOURCES, covid19_20, covid_qu_ex, mosmed, qata_cov19, scan_sources
from chexmix_dataset.sources.base import CTCase


def dl_manager(tmp_path: Path) -> datasets.DownloadManager:
    return datasets.DownloadManager(download_config=datasets.DownloadConfig(cache_dir=str(tmp_path / "dl")))


def check_cxr_cases(scan, fixture: more.CXRFixture) -> None:
    """Every expected image is a case whose lesions are exactly its squares; the rest is skipped."""
    cases = {case.image_id: case for case in scan.cxr_cases}
    assert set(cases) == set(fixture.kept)
    for image_id, expected in fixture.kept.items():
        case = cases[image_id]
        assert case.patient_id == image_id  # no patient ids in the collection
        assert case.origin == expected["origin"] and case.license == "unknown"
        assert case.official_split == expected["split"]
        image, instances = case.load(lambda message: pytest.fail(message))
        assert image.shape == (more.SIZE, more.SIZE) and image.dtype == np.uint8
        assert sorted(int(i.mask.sum()) for i in instances) == sorted(side * side for *_, side in expected["squares"])
        assert {i.lesion_type for i in instances} <= {"infection"}
        for instance in instances:  # each lesion is one whole square at its place
            ys, xs = np.nonzero(instance.mask)
            assert (int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1)) in expected["squares"]
    reasons = {Path(item.item).name: item.reason for item in scan.skipped}
    for filename, word in fixture.skipped.items():
        assert word in reasons[filename], (filename, reasons.get(filename))


# --------------------------------------------------------------------------- COVID-QU-Ex ---

@pytest.mark.parametrize("nesting", ["double", "single", "none"])
def test_covid_qu_ex_cases_masks_splits_and_lung_masks(tmp_path, nesting):
    fixture = more.make_covid_qu_ex(tmp_path, nesting=nesting)
    scan = covid_qu_ex.scan(tmp_path)
    check_cxr_cases(scan, fixture)
    assert len(scan.skipped) == 1
    cases = {case.image_id: case for case in scan.cxr_cases}
    for image_id, expected in fixture.kept.items():
        lung = cases[image_id].lung_mask_path
        assert (lung is not None) == expected["lung"]
        if lung:
            assert Path(lung).parent.name == "lung masks" and Path(lung).is_file()
    # The negatives (empty infection masks) are lesion-free rows.
    negatives = [c for c in scan.cxr_cases if c.origin != "covid-qu-ex/covid-19"]
    assert len(negatives) == 4 and all(c.load(print)[1] == [] for c in negatives)
    pickle.dumps(scan.cxr_cases[0])  # builders shard cases over processes


def test_covid_qu_ex_negatives_without_infection_mask_folders_are_lesion_free(tmp_path):
    fixture = more.make_covid_qu_ex(tmp_path, negative_masks=False)
    scan = covid_qu_ex.scan(tmp_path)
    check_cxr_cases(scan, fixture)


def test_covid_qu_ex_missing_layout_names_it(tmp_path):
    (tmp_path / "Lung Segmentation Data").mkdir()
    with pytest.raises(ChexmixInputError, match="Infection Segmentation Data") as error:
        covid_qu_ex.scan(tmp_path)
    assert str(tmp_path) in str(error.value)


# ---------------------------------------------------------------------------- QaTa-COV19 ---

@pytest.mark.parametrize("nesting", ["archive", "version", "none"])
def test_qata_pairs_mask_prefix_keeps_official_split_and_skips_with_reasons(tmp_path, nesting):
    fixture = more.make_qata_cov19(tmp_path, nesting=nesting)
    scan = qata_cov19.scan(tmp_path)
    check_cxr_cases(scan, fixture)
    assert len(scan.skipped) == 3
    assert sorted(c.official_split for c in scan.cxr_cases) == ["test"] * 2 + ["train"] * 3


def test_qata_and_covid_qu_ex_are_never_built_together(tmp_path):
    more.make_qata_cov19(tmp_path / "qata_cov19")
    more.make_covid_qu_ex(tmp_path / "covid_qu_ex")
    with pytest.raises(ChexmixInputError, match="covid_qu_ex and qata_cov19 cannot be built together"):
        scan_sources(["covid_qu_ex", "qata_cov19"], tmp_path, dl_manager=None)
    assert len(scan_sources(["qata_cov19"], tmp_path, dl_manager=None).cxr_cases) == 5


# ------------------------------------------------------------------------------- Kaggle ---

@pytest.mark.parametrize("adapter", [covid_qu_ex, qata_cov19])
def test_kaggle_without_the_package_says_how_to_download_and_where_to_unpack(tmp_path, monkeypatch, adapter):
    monkeypatch.setitem(sys.modules, "kaggle", None)  # import kaggle -> ImportError
    with pytest.raises(ChexmixInputError) as error:
        adapter.download(dl_manager(tmp_path))
    message = str(error.value)
    assert "\n" not in message
    assert f"kaggle datasets download -d {adapter.KAGGLE_SLUG}" in message
    assert f"DIR/{adapter.NAME}" in message and "--data-dir DIR" in message and adapter.LAYOUT in message
    assert "pip install chexmix[kaggle]" in message


def test_kaggle_without_a_token_says_so(tmp_path, monkeypatch):
    def failing_import(name, *args, **kwargs):
        if name == "kaggle":
            raise OSError("Could not find kaggle.json. Make sure it's located in /root/.kaggle.")
        return real_import(name, *args, **kwargs)

    import importlib

    real_import = importlib.import_module
    monkeypatch.delitem(sys.modules, "kaggle", raising=False)
    monkeypatch.setattr(importlib, "import_module", failing_import)
    with pytest.raises(ChexmixInputError, match="no API token .*Could not find kaggle.json"):
        qata_cov19.download(dl_manager(tmp_path))


def test_kaggle_download_unzips_into_the_cache_scans_and_is_reused(tmp_path, monkeypatch):
    calls = []

    def dataset_download_files(slug, path, unzip, quiet):
        calls.append((slug, unzip))
        more.make_qata_cov19(Path(path))  # what unzipping the archive leaves

    fake = types.ModuleType("kaggle")
    fake.api = types.SimpleNamespace(dataset_download_files=dataset_download_files)
    monkeypatch.setitem(sys.modules, "kaggle", fake)
    scan = qata_cov19.download(dl_manager(tmp_path))
    assert calls == [("aysendegerli/qatacov19-dataset", True)]
    assert len(scan.cxr_cases) == 5
    assert all(str(tmp_path / "dl" / "kaggle") in str(c.load.args[0]) for c in scan.cxr_cases)
    again = qata_cov19.download(dl_manager(tmp_path))
    assert len(calls) == 1 and len(again.cxr_cases) == 5


# ---------------------------------------------------------------------------- MosMedData ---

@pytest.mark.parametrize("amid_layout", [False, True])
def test_mosmed_annotated_studies_are_cases_with_their_licence(tmp_path, amid_layout):
    lesion_voxels = more.make_mosmed(tmp_path, annotated={"study_0255": "CT-1", "study_0256": "CT-1"},
                                     unannotated={"study_0001": "CT-0", "study_0900": "CT-3"},
                                     amid_layout=amid_layout)
    for root in (tmp_path, tmp_path / "COVID19_1110"):
        scan = mosmed.scan(root)
        cases = {c.case_id: c for c in scan.ct_cases}
        assert set(cases) == {"mosmed-study_0255", "mosmed-study_0256"}
        for study, voxels in lesion_voxels.items():
            case = cases[f"mosmed-{study}"]
            assert case.patient_id == f"mosmed-{study}" and case.origin == "mosmed/CT-1"
            assert case.license == "CC-BY-NC-ND-3.0" and case.lesion_types == {1: "infection"}
            assert int(load_ct(case.ct_path, case.mask_path).lesion_labels.sum()) == voxels
        assert [s.reason for s in scan.skipped] == ["2 of 4 studies have no lesion mask (only the masks/ studies "
                                                    "are annotated)"]


def test_mosmed_mask_of_an_absent_study_and_no_download(tmp_path):
    more.make_mosmed(tmp_path, annotated={"study_0255": "CT-1"}, unannotated={})
    (tmp_path / "COVID19_1110" / "masks" / "study_0255_mask.nii.gz").rename(
        tmp_path / "COVID19_1110" / "masks" / "study_0300_mask.nii.gz")
    scan = mosmed.scan(tmp_path)
    assert scan.ct_cases == [] and "absent study study_0300" in scan.skipped[0].reason
    with pytest.raises(ChexmixInputError, match="mosmed.ai.*DIR/mosmed"):
        mosmed.download(dl_manager(tmp_path))


# --------------------------------------------------------------------------- COVID-19-20 ---

def test_covid19_20_scaled_nifti_reads_as_hu_and_scans_of_one_case_share_a_patient(tmp_path):
    names = ["volume-covid19-A-0003", "volume-covid19-A-0047_1", "volume-covid19-A-0047_2", "volume-covid19-A-0099"]
    written = more.make_covid19_20(tmp_path, names, without_mask=("volume-covid19-A-0099",))
    for root in (tmp_path, tmp_path / "COVID-19-20_v2", tmp_path / "COVID-19-20_v2" / "Train"):
        scan = covid19_20.scan(root)
        cases = {c.case_id: c for c in scan.ct_cases}
        assert set(cases) == {f"covid19-20-{n}" for n in names[:3]}
        assert cases["covid19-20-volume-covid19-A-0047_1"].patient_id == \
            cases["covid19-20-volume-covid19-A-0047_2"].patient_id == "covid19-20-A-0047"
        assert cases["covid19-20-volume-covid19-A-0003"].patient_id == "covid19-20-A-0003"
        assert [Path(s.item).name for s in scan.skipped] == ["volume-covid19-A-0099_ct.nii.gz"]
    case = cases["covid19-20-volume-covid19-A-0003"]
    assert case.license == "unknown" and case.stored_window_hu is None
    volume = load_ct(case.ct_path, case.mask_path)
    voxels, hu = written["volume-covid19-A-0003"]
    assert volume.is_hounsfield and int(volume.lesion_labels.sum()) == voxels
    # Stored as raw + 1024 with scl_inter -1024: the loader keeps the stored integers and the
    # file's slope/intercept (the projector applies them), which give back the HU written.
    calibrated = volume.voxels.astype(np.float64) * volume.value_slope + volume.value_intercept
    assert np.array_equal(calibrated, hu.astype(np.float64))
    with pytest.raises(ChexmixInputError, match="registration.*DIR/covid19_20"):
        covid19_20.download(dl_manager(tmp_path))


# ------------------------------------------------------------------------------ registry ---

def test_new_sources_are_registered_with_metadata():
    for adapter in (covid_qu_ex, qata_cov19, mosmed, covid19_20):
        assert SOURCES[adapter.NAME] is adapter
        assert adapter.HOMEPAGE.startswith("https://") and adapter.CITATION.startswith("@")
        assert adapter.LAYOUT and adapter.LICENSE in ("unknown", "CC-BY-NC-ND-3.0")


def test_patient_level_split_holds_across_new_sources(tmp_path):
    more.make_covid_qu_ex(tmp_path / "covid_qu_ex")
    more.make_mosmed(tmp_path / "mosmed", annotated={f"study_{i:04d}": "CT-1" for i in range(255, 259)},
                     unannotated={})
    more.make_covid19_20(tmp_path / "covid19_20", ["volume-covid19-A-0047_1", "volume-covid19-A-0047_2",
                                                   "volume-covid19-A-0050"])
    for seed in range(4):
        builder = make_builder("mixed", tmp_path, seed=seed, ct_fraction=0.5, cache_dir=tmp_path / "cache",
                               sources=("covid_qu_ex", "mosmed", "covid19_20"))
        plan = builder.plan()
        train = {item.patient_id for item in plan.train}
        test = {item.patient_id for item in plan.test}
        assert train and test and not train & test
        assert all(not isinstance(item, CTCase) for item in plan.test)


# ----------------------------------------------------------------------- --split official ---

def test_split_official_keeps_qata_and_covid_qu_ex_splits(tmp_path):
    qata = more.make_qata_cov19(tmp_path / "qata_cov19")
    plan = make_builder("xrays_only", tmp_path, split="official", cache_dir=tmp_path / "cache",
                        sources=("qata_cov19",)).plan()
    assert sorted(c.image_id for c in plan.train) == sorted(i for i, e in qata.kept.items() if e["split"] == "train")
    assert sorted(c.image_id for c in plan.test) == sorted(i for i, e in qata.kept.items() if e["split"] == "test")
    qu_ex = more.make_covid_qu_ex(tmp_path / "covid_qu_ex")
    more.make_mosmed(tmp_path / "mosmed", annotated={f"study_{i:04d}": "CT-1" for i in range(255, 258)}, unannotated={})
    plan = make_builder("mixed", tmp_path, split="official", ct_fraction=0.5, cache_dir=tmp_path / "cache",
                        sources=("covid_qu_ex", "mosmed")).plan()
    # Val counts as train; the test set is exactly the collection's Test folder, real CXRs only.
    assert sorted(c.image_id for c in plan.test) == sorted(i for i, e in qu_ex.kept.items() if e["split"] == "test")
    n_train = sum(e["split"] == "train" for e in qu_ex.kept.values())
    assert len(plan.train) == n_train and sum(isinstance(i, CTCase) for i in plan.train) == round(0.5 * n_train)


@pytest.mark.parametrize("config, sources, word", [
    ("xrays_only", ("qata_cov19", "covid_chestxray"), "covid-chestxray-dataset (4)"),
    ("ct_projections", ("mosmed",), "mosmed/CT-1 (2)"),
])
def test_split_official_refuses_sources_without_one(tmp_path, config, sources, word):
    import public_layouts

    more.make_qata_cov19(tmp_path / "qata_cov19")
    public_layouts.make_covid_chestxray(tmp_path / "covid_chestxray")
    more.make_mosmed(tmp_path / "mosmed", annotated={"study_0255": "CT-1", "study_0256": "CT-1"}, unannotated={})
    builder = make_builder(config, tmp_path, split="official", cache_dir=tmp_path / "cache", sources=sources)
    with pytest.raises(ChexmixInputError, match="--split official needs") as error:
        builder.plan()
    assert word in str(error.value)


def test_split_official_never_splits_a_patient():
    from chexmix_dataset.dataset.splits import official_split

    items = [types.SimpleNamespace(patient_id="p1", origin="x", official_split="train"),
             types.SimpleNamespace(patient_id="p1", origin="x", official_split="test"),
             types.SimpleNamespace(patient_id="p2", origin="x", official_split="test")]
    with pytest.raises(ChexmixInputError, match="1 patient.*both train and test.*p1"):
        official_split(items)
    train, test = official_split(items[1:])
    assert train == [] and [i.patient_id for i in test] == ["p1", "p2"]


def test_build_summary_has_one_line_per_source_with_licence_and_skips(tmp_path, capsys):
    from chexmix_dataset.cli import main

    fixture = more.make_covid_qu_ex(tmp_path / "covid_qu_ex")
    argv = ["build", "--config", "xrays_only", "--data-dir", str(tmp_path), "--sources", "covid_qu_ex",
            "--split", "official", "--cache-dir", str(tmp_path / "cache")]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    header = lines.index(next(line for line in lines if line.startswith("source ")))
    table = {}
    for line in lines[header + 1:]:
        if not line.startswith("covid-qu-ex/"):
            break
        origin, images, lesions, patients, *licence = line.split()
        table[origin] = (int(images), int(lesions), int(patients), " ".join(licence))
    expected = {}
    for entry in fixture.kept.values():
        images, lesions, patients, _ = expected.get(entry["origin"], (0, 0, 0, ""))
        expected[entry["origin"]] = (images + 1, lesions + len(entry["squares"]), patients + 1, "")
    assert table == {origin: (*counts[:3], f"unknown ({counts[0]})") for origin, counts in expected.items()}
    assert "covid_qu_ex skipped 1 item(s) (reasons above)" in lines


# ------------------------------------------------------------------------ lung_mask column ---

def test_covid_qu_ex_lung_masks_become_the_lung_mask_column(tmp_path, caplog):
    from PIL import Image

    fixture = more.make_covid_qu_ex(tmp_path / "covid_qu_ex")
    base = tmp_path / "covid_qu_ex" / "Infection Segmentation Data" / "Infection Segmentation Data"
    lungs = more.square_mask([(4, 4, 56)]) > 0
    # As files turn up in the wild: one lung mask JPEG-compressed under its .png name, one of another size.
    Image.fromarray(np.where(lungs, 255, 0).astype(np.uint8)).save(
        base / "Train" / "COVID-19" / "lung masks" / "covid_2.png", format="JPEG", quality=75)
    Image.fromarray(np.zeros((10, 12), dtype=np.uint8)).save(base / "Test" / "Non-COVID" / "lung masks" / "non_COVID (2).png")
    # One stored sideways with an EXIF orientation (6: viewers turn it 90 degrees clockwise), of two
    # unequal lungs, so that only reading it upright gives the displayed mask.
    upright = np.zeros_like(lungs)
    upright[4:60, 4:28], upright[12:44, 36:60] = True, True
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.where(np.rot90(upright, k=1), 255, 0).astype(np.uint8)).save(
        base / "Train" / "COVID-19" / "lung masks" / "covid_1.png", exif=exif.tobytes())
    builder = make_builder("xrays_only", tmp_path, sources=("covid_qu_ex",), cache_dir=tmp_path / "cache")
    with caplog.at_level("WARNING"):
        builder.download_and_prepare()
    rows = {row["image_id"]: row for split in builder.as_dataset().values() for row in split}
    assert len(rows) == len(fixture.kept)
    for image_id, kept in fixture.kept.items():
        row = rows[f"cxr-{image_id}"]
        if not kept["lung"] or image_id.endswith("non_COVID (2)"):
            assert row["lung_mask"] is None, image_id
            continue
        lung_mask = np.asarray(row["lung_mask"]) > 0
        assert lung_mask.shape == (row["height"], row["width"])
        if image_id.endswith("covid_2"):
            iou = (lung_mask & lungs).sum() / (lung_mask | lungs).sum()
            assert iou >= 0.95, iou
        elif image_id.endswith("covid_1"):
            assert np.array_equal(lung_mask, upright)
        else:
            assert np.array_equal(lung_mask, lungs), image_id
        assert set(np.unique(np.asarray(row["lung_mask"]))) <= {0, 255}
    assert any("covid_2.png" in r.getMessage() and "lung mask holds" in r.getMessage() for r in caplog.records)
    assert any("lung mask left out" in r.getMessage() and "non_COVID (2).png" in r.getMessage()
               for r in caplog.records)


def test_sources_without_lung_masks_leave_the_column_empty(tmp_path):
    from chexmix_dataset import load_chexmix

    sample = load_chexmix("sample", cache_dir=tmp_path / "cache")
    assert all(mask is None for split in sample.values() for mask in split["lung_mask"])
