"""The mix keeps the paper's size (extra CT views), and one patient across modalities."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import public_layouts as layouts
import pytest

from chexmix_dataset.cli import main
from chexmix_dataset.ct.views import rotate_about_si
from chexmix_dataset.ct.volume import CTVolume
from chexmix_dataset.dataset.builder import PAPER_CT_FRACTION, load_chexmix, make_builder
from chexmix_dataset.dataset.splits import mixed_plan
from chexmix_dataset.errors import ChexmixInputError
from chexmix_dataset.projector import ProjectorOptions, project_volume
from chexmix_dataset.sources import covid19_ct_seg, covid_chestxray
from chexmix_dataset.sources.base import CTCase
from chexmix_dataset.sources.patients import linked_patient_ids, radiopaedia_case_from_url


@dataclasses.dataclass(frozen=True)
class Item:
    patient_id: str
    view_deg: float = 0.0


def _cases(n: int, prefix: str = "ct") -> list[Item]:
    return [Item(f"{prefix}{i}") for i in range(n)]


# ------------------------------------------------------------------------------ the plan ---

def test_paper_mix_with_enough_cts_uses_one_view_each():
    cxr_train = _cases(60, "cxr")
    plan = mixed_plan(cxr_train, [Item("t1")], _cases(80), PAPER_CT_FRACTION, seed=0)
    projections = [item for item in plan.train if item.patient_id.startswith("ct")]
    assert len(plan.train) == 60 and len(projections) == 50  # the paper: 10 CXRs + 50 projections
    assert {item.view_deg for item in projections} == {0.0}
    assert len({item.patient_id for item in projections}) == 50


def test_few_cts_fill_the_quota_with_turned_views():
    # Ma et al.'s 20 CTs for 50 places: every CT at 0 deg, all at +5, half of them at -5.
    plan = mixed_plan(_cases(60, "cxr"), [Item("t1")], _cases(20), PAPER_CT_FRACTION, seed=3)
    projections = [item for item in plan.train if item.patient_id.startswith("ct")]
    assert len(plan.train) == 60 and len(projections) == 50
    assert Counter(item.view_deg for item in projections) == {0.0: 20, 5.0: 20, -5.0: 10}
    assert len(set(projections)) == 50, "no (CT, view) pair twice"
    per_ct = Counter(item.patient_id for item in projections)
    assert set(per_ct.values()) == {2, 3}, "views spread evenly over the CTs"


def test_a_mix_that_cannot_be_filled_fails_naming_the_shortfall():
    with pytest.raises(ChexmixInputError, match=r"needs 50 CT projections.*only 10: short by 40"):
        mixed_plan(_cases(60, "cxr"), [Item("t1")], _cases(2), PAPER_CT_FRACTION, seed=0)


def test_cts_of_test_patients_never_train():
    cts = _cases(10)
    plan = mixed_plan(_cases(12, "cxr"), [Item("ct3"), Item("ct7")], cts, 0.5, seed=0)
    assert not {item.patient_id for item in plan.train} & {"ct3", "ct7"}
    assert len(plan.train) == 12 and "2 CT(s) left out" in plan.notes[0]


# ---------------------------------------------------------------------------- the views ---

def _cube_ct(centre_mm: tuple[float, float], spacing=(2.0, 1.0, 3.0), shape=(60, 120, 8)) -> CTVolume:
    """Air (-1000 HU) with a 6 mm water cube (0 HU, lesion label 1) at (x, y) mm from the slice centre."""
    voxels = np.full(shape, -1000, dtype=np.int16)
    labels = np.zeros(shape, dtype=np.uint8)
    x = np.round((np.arange(shape[0]) - (shape[0] - 1) / 2) * spacing[0], 6)
    y = np.round((np.arange(shape[1]) - (shape[1] - 1) / 2) * spacing[1], 6)
    inside = (np.abs(x[:, None] - centre_mm[0]) <= 3) & (np.abs(y[None, :] - centre_mm[1]) <= 3)
    voxels[inside] = 0
    labels[inside] = 1
    affine = np.diag([*spacing, 1.0])
    return CTVolume(voxels=voxels, spacing_mm=spacing, affine=affine, lesion_labels=labels, is_hounsfield=True,
                    path="cube")


def _centre_mm(mask: np.ndarray, spacing) -> np.ndarray:
    points = np.argwhere(mask[:, :, 0]).astype(np.float64)
    shape = np.asarray(mask.shape[:2], dtype=np.float64)
    return (points.mean(axis=0) - (shape - 1) / 2) * np.asarray(spacing[:2])


def test_a_turn_moves_anatomy_along_the_circle_in_mm_with_anisotropic_voxels():
    ct = _cube_ct((20.0, 0.0))
    for angle in (90.0, 10.0, -10.0):
        turned = rotate_about_si(ct, angle)
        theta = np.deg2rad(angle)
        # A right-handed turn about +z takes the patient's right (+x) towards anterior (+y).
        expected = 20.0 * np.array([np.cos(theta), np.sin(theta)])
        assert np.allclose(_centre_mm(turned.lesion_labels > 0, ct.spacing_mm), expected, atol=1.0)
        assert np.allclose(_centre_mm(turned.voxels > -500, ct.spacing_mm), expected, atol=1.0)
        assert turned.voxels.dtype == np.int16 and turned.voxels.min() == -1000
        assert abs(int((turned.lesion_labels > 0).sum()) - int(ct.lesion_labels.sum())) <= 0.25 * ct.lesion_labels.sum()
    assert rotate_about_si(ct, 0.0) is ct


def test_a_turned_view_projects_with_its_lesion_in_the_right_place():
    ct = _cube_ct((20.0, 0.0), spacing=(1.0, 1.0, 3.0), shape=(80, 80, 8))
    straight = project_volume(ct, ProjectorOptions(size_px=80))
    turned = project_volume(rotate_about_si(ct, 10.0), ProjectorOptions(size_px=80))
    # Image columns run from the patient's right (col 0) to left; x = 20 mm sits right of centre.
    col = lambda projection: np.argwhere(projection.instances[0].mask)[:, 1].mean()
    assert col(straight) == pytest.approx(39.5 - 20.0, abs=0.6)
    assert col(turned) == pytest.approx(39.5 - 20.0 * np.cos(np.deg2rad(10.0)), abs=0.6)
    assert col(turned) > col(straight)


# ------------------------------------------------------------------- the built mixture ---

def test_sample_with_few_cts_keeps_the_train_size_with_views(tmp_path):
    options = dict(cache_dir=tmp_path, sample_n_ct=2, sample_n_cxr=10, sample_ct_shape=(48, 48, 24),
                   sample_cxr_size=64, projector=ProjectorOptions(size_px=64))
    mixed = load_chexmix("sample", **options)
    xrays = make_builder("sample", ct_fraction=0.0, **options).plan()
    train = mixed["train"]
    assert len(train) == len(xrays.train), "the mix has the X-rays-only training size"
    ct_rows = train.filter(lambda row: row["source"] == "ct_projection")
    n_ct = round(PAPER_CT_FRACTION * len(train))
    assert len(ct_rows) == n_ct > 2
    assert Counter(ct_rows["view_deg"])[0.0] == 2 and set(ct_rows["view_deg"]) <= {0.0, 5.0, -5.0}
    by_patient = Counter(ct_rows["patient_id"])
    assert len(by_patient) == 2 and sum(by_patient.values()) == n_ct
    images = {row["image_id"]: np.asarray(row["image"]) for row in ct_rows}
    for image_id in images:
        if image_id.endswith("-view+5"):
            assert not np.array_equal(images[image_id], images[image_id[: -len("-view+5")]])
    assert set(mixed["test"]["view_deg"]) == {None}


def test_build_summary_states_the_composition(tmp_path, capsys):
    code = main(["build", "--config", "sample", "--cache-dir", str(tmp_path), "--size", "64"])
    assert code == 0
    out = capsys.readouterr().out
    assert "CXRs + " in out and "CT projections of" in out and "views in degrees 0:" in out


# --------------------------------------------------------------------- one patient ---

@pytest.mark.parametrize("url, slug", [
    ("https://radiopaedia.org/cases/covid-19-pneumonia-10?lang=us", "covid-19-pneumonia-10"),
    ("https://radiopaedia.org/cases/covid-19-pneumonia-15", "covid-19-pneumonia-15"),
    ("https://Radiopaedia.org/cases/COVID-19-pneumonia-4/studies/85506", "covid-19-pneumonia-4"),
    ("https://www.nejm.org/doi/full/10.1056/NEJMc2001272", None),
])
def test_radiopaedia_case_urls(url, slug):
    assert radiopaedia_case_from_url(url) == slug


def test_patients_sharing_a_radiopaedia_case_are_linked_transitively():
    rows = [("1", "https://radiopaedia.org/cases/a"), ("2", "https://radiopaedia.org/cases/a"),
            ("2", "https://radiopaedia.org/cases/b"), ("3", "https://radiopaedia.org/cases/b"),
            ("4", "https://doi.org/x"), ("4", "")]
    assert linked_patient_ids(rows, prefix="c-") == {"1": "radiopaedia-a", "2": "radiopaedia-a",
                                                     "3": "radiopaedia-a", "4": "c-4"}


def test_a_radiopaedia_case_is_one_patient_across_cxr_and_ct(tmp_path):
    layouts.make_covid_chestxray(tmp_path / "covid_chestxray", via_location="annotations", radiopaedia_cases=(10,))
    layouts.make_covid19_ct_seg_zenodo(tmp_path / "covid19_ct_seg", cases=["coronacases_001", "radiopaedia_10_85902_1"])
    cxr = {c.image_id: c for c in covid_chestxray.scan(tmp_path / "covid_chestxray").cxr_cases}
    ct = {c.case_id: c for c in covid19_ct_seg.scan(tmp_path / "covid19_ct_seg").ct_cases}
    shared = "radiopaedia-covid-19-pneumonia-10"
    assert cxr["covid-chestxray-dataset-covid-19-pneumonia-10-PA"].patient_id == shared
    assert ct["radiopaedia_10_85902_1"].patient_id == shared
    assert ct["coronacases_001"].patient_id == "coronacases_001"
    # Whichever split the shared patient's CXR lands in, its CT never trains against it.
    for seed in range(8):
        plan = make_builder("mixed", tmp_path, seed=seed, split="50/50", ct_fraction=0.25,
                            cache_dir=tmp_path / "cache").plan()
        test_patients = {item.patient_id for item in plan.test}
        train_ct_patients = {item.patient_id for item in plan.train if isinstance(item, CTCase)}
        assert not test_patients & train_ct_patients


def test_a_turn_keeps_the_stored_value_calibration():
    ct = dataclasses.replace(_cube_ct((20.0, 0.0)), value_slope=0.5, value_intercept=-24.0)
    turned = rotate_about_si(ct, 5.0)
    assert (turned.value_slope, turned.value_intercept) == (0.5, -24.0)
    assert turned.voxels.dtype == ct.voxels.dtype
