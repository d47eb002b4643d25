"""The CheXMix builder: configs, patient-level splits, the paper's mix, provenance, robustness."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import datasets
import numpy as np
import pytest
from public_layouts import (
    make_covid19_ct_seg_zenodo,
    make_covid_chestxray,
    make_ct_folder_with_a_cut_volume,
)

from chexmix_dataset.cli import main
from chexmix_dataset.dataset import builder as builder_module
from chexmix_dataset.dataset.builder import PAPER_CT_FRACTION, load_chexmix, make_builder
from chexmix_dataset.dataset.lesions import decode_rle
from chexmix_dataset.dataset.splits import parse_split, patient_split
from chexmix_dataset.errors import ChexmixInputError
from chexmix_dataset.projector import ProjectorOptions

SMALL_SAMPLE = dict(sample_n_ct=6, sample_n_cxr=10, sample_ct_shape=(64, 64, 24), sample_cxr_size=128,
                    projector=ProjectorOptions(size_px=128))


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> datasets.DatasetDict:
    return load_chexmix("sample", cache_dir=tmp_path_factory.mktemp("cache"), **SMALL_SAMPLE)


def test_sample_is_structured_like_mixed(sample):
    assert set(sample) == {"train", "test"}
    assert set(sample["test"]["source"]) == {"cxr"}, "the test split holds stand-in CXRs only"
    train_sources = Counter(sample["train"]["source"])
    n_train = len(sample["train"])
    assert train_sources["ct_projection"] == round(PAPER_CT_FRACTION * n_train)
    assert train_sources["cxr"] == n_train - train_sources["ct_projection"]
    assert n_train + len(sample["test"]) == 10  # all ten stand-ins are placed: none lost to the swap


def test_no_patient_in_both_splits_and_provenance_on_every_row(sample):
    assert not set(sample["train"]["patient_id"]) & set(sample["test"]["patient_id"])
    for split in sample.values():
        for row in split:
            assert row["license"] and row["origin"] and row["patient_id"] and row["image_id"]


def test_rows_are_consistent(sample):
    for row in sample["train"]:
        image, mask = np.asarray(row["image"]), np.asarray(row["mask"])
        assert image.shape == mask.shape == (row["height"], row["width"])
        union = np.zeros(image.shape, dtype=bool)
        for segmentation, area, bbox in zip(row["objects"]["segmentation"], row["objects"]["area"],
                                            row["objects"]["bbox"]):
            lesion = decode_rle(segmentation)
            assert lesion.sum() == area
            rows, cols = np.nonzero(lesion)
            assert np.allclose(bbox, [cols.min(), rows.min(), cols.max() - cols.min() + 1, rows.max() - rows.min() + 1])
            union |= lesion
        assert np.array_equal(union, mask > 0)
    assert sum(len(r["objects"]["id"]) for r in sample["train"]) > 0


def test_splits_are_deterministic_for_a_seed(tmp_path):
    ids = lambda seed: [c.patient_id for c in make_builder("sample", cache_dir=tmp_path, seed=seed,
                                                           **SMALL_SAMPLE).plan().test]
    assert ids(0) == ids(0)
    assert ids(0) != ids(1)


def test_ct_fraction_zero_is_the_xrays_only_counterpart(tmp_path):
    mixed = make_builder("sample", cache_dir=tmp_path, **SMALL_SAMPLE).plan()
    xrays = make_builder("sample", cache_dir=tmp_path, ct_fraction=0.0, **SMALL_SAMPLE).plan()
    assert [c.image_id for c in mixed.test] == [c.image_id for c in xrays.test]
    assert len(mixed.train) == len(xrays.train)
    assert all(not hasattr(c, "case_id") for c in xrays.train)


def test_patient_split_never_shares_patients_and_follows_the_ratio():
    rng = np.random.default_rng(0)
    patients = [f"p{rng.integers(0, 40)}" for _ in range(100)]
    for seed in range(10):
        for ratio in ("60/40", "80/20"):
            train, test = patient_split(list(range(100)), patients, parse_split(ratio), seed)
            assert not {patients[i] for i in train} & {patients[i] for i in test}
            assert sorted(train + test) == list(range(100))
            assert abs(len(train) / 100 - parse_split(ratio)) < 0.08


@pytest.mark.parametrize("text, fraction", [("60/40", 0.6), ("80/20", 0.8), ("70:30", 0.7), ("0.75", 0.75)])
def test_parse_split(text, fraction):
    assert parse_split(text) == pytest.approx(fraction)


@pytest.mark.parametrize("text", ["100/0", "0/100", "abc", "1.5"])
def test_parse_split_rejects(text):
    with pytest.raises(ChexmixInputError):
        parse_split(text)


def _public_data_dir(root: Path) -> Path:
    make_covid_chestxray(root / "covid_chestxray", via_location="annotations")
    make_covid19_ct_seg_zenodo(root / "covid19_ct_seg")
    return root


def test_mixed_and_xrays_only_share_the_test_set(tmp_path):
    data_dir = _public_data_dir(tmp_path / "data")
    options = dict(cache_dir=tmp_path / "cache", projector=ProjectorOptions(size_px=96), split="50/50")
    xrays = load_chexmix("xrays_only", data_dir, **options)
    mixed = load_chexmix("mixed", data_dir, **options)
    assert xrays["test"]["image_id"] == mixed["test"]["image_id"]
    assert set(mixed["test"]["source"]) == {"cxr"}
    assert len(xrays["train"]) == len(mixed["train"])
    assert Counter(mixed["train"]["source"])["ct_projection"] == round(PAPER_CT_FRACTION * len(xrays["train"]))
    assert set(xrays["train"]["license"]) <= {"CC BY-NC-SA", "CC BY-SA", "CC BY 4.0", "unknown"}
    ct_rows = mixed["train"].filter(lambda r: r["source"] == "ct_projection")
    assert set(ct_rows["origin"]) <= {"covid19-ct-seg/coronacases", "covid19-ct-seg/radiopaedia"}


def test_num_proc_gives_the_same_rows(tmp_path):
    options = dict(SMALL_SAMPLE, sample_n_ct=4, sample_n_cxr=6)
    one = load_chexmix("sample", cache_dir=tmp_path / "a", **options)
    two = load_chexmix("sample", cache_dir=tmp_path / "b", num_proc=2, **options)
    for split in ("train", "test"):
        assert one[split]["image_id"] == two[split]["image_id"]
        assert one[split]["objects"] == two[split]["objects"]
        for a, b in zip(one[split], two[split]):
            assert np.array_equal(np.asarray(a["image"]), np.asarray(b["image"]))


def test_interrupted_build_leaves_nothing_visible_and_rerun_completes(tmp_path, monkeypatch):
    options = dict(SMALL_SAMPLE, sample_n_ct=4, sample_n_cxr=6)
    real_row_for = builder_module._row_for
    calls = {"n": 0}

    def dies_midway(item, projector):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("power cut")
        return real_row_for(item, projector)

    monkeypatch.setattr(builder_module, "_row_for", dies_midway)
    builder = make_builder("sample", cache_dir=tmp_path, **options)
    with pytest.raises(datasets.exceptions.DatasetGenerationError) as failure:
        builder.download_and_prepare()
    assert "power cut" in str(failure.value.__cause__)
    assert not Path(builder.cache_dir).exists()
    monkeypatch.setattr(builder_module, "_row_for", real_row_for)
    again = make_builder("sample", cache_dir=tmp_path, **options)
    again.download_and_prepare()
    plan = again.plan()
    assert sum(len(split) for split in again.as_dataset().values()) == len(plan.train) + len(plan.test)


def test_build_cli_prints_summary_and_counts_skipped_items(tmp_path, capsys):
    data_dir = tmp_path / "data"
    make_ct_folder_with_a_cut_volume(data_dir)  # case4: header intact, voxels cut off
    argv = ["build", "--config", "ct_projections", "--data-dir", str(data_dir), "--sources", "ct_folder",
            "--cache-dir", str(tmp_path / "cache"), "--size", "64"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "train:" in out and "test:" in out
    assert "skipped ct-case4" in out or "skipped case4" in out or "case4.nii.gz" in out
    produced = int(out.split("train:")[1].split(" images")[0]) + int(out.split("test:")[1].split(" images")[0])
    assert produced == 4
    assert "skipped items: 1" in out


def test_bad_config_and_empty_split_are_one_line_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["build", "--config", "nope"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "nope" in err

    argv = ["build", "--config", "sample", "--split", "99/1", "--cache-dir", str(tmp_path)]
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line and "CT phantoms" not in line]
    assert len(err) == 1 and "empty" in err[0] and "Traceback" not in err[0]


@pytest.mark.parametrize("cache_given", [True, False])
def test_cache_and_downloads_folders_are_the_ones_datasets_uses(tmp_path, monkeypatch, cache_given):
    # The builder names these folders itself (datasets keeps them private); the oracle is where
    # download_and_prepare puts its downloads and its rows, read through public attributes.
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-home")
    monkeypatch.setattr(datasets.config, "DOWNLOADED_DATASETS_PATH", tmp_path / "hf-downloads")
    options = dict(SMALL_SAMPLE, sample_n_ct=2, sample_n_cxr=4, sample_ct_shape=(32, 32, 24), sample_cxr_size=64,
                   projector=ProjectorOptions(size_px=64))
    builder = make_builder("sample", cache_dir=tmp_path / "given" if cache_given else None, **options)
    builder.download_and_prepare()
    root = tmp_path / ("given" if cache_given else "hf-home")
    assert builder.cache_root == str(root)
    assert builder.downloads_dir == builder.dl_manager.download_config.cache_dir
    assert builder.downloads_dir == str(root / "downloads" if cache_given else tmp_path / "hf-downloads")
    assert Path(builder.cache_dir).is_relative_to(root)
    assert any((root / "chexmix_sources" / "phantom").iterdir())  # phantoms are generated under the root


def test_every_option_and_default_names_the_cache(tmp_path, monkeypatch):
    same = make_builder("sample", cache_dir=tmp_path).cache_dir
    assert make_builder("sample", cache_dir=tmp_path).cache_dir == same
    assert make_builder("sample", cache_dir=tmp_path, projector=ProjectorOptions(size_px=300)).cache_dir != same
    # A release that changes a default must not reuse rows built under the old default.
    changed = [dataclasses.replace(c, sample_n_ct=c.sample_n_ct + 1) for c in builder_module.CheXMix.BUILDER_CONFIGS]
    monkeypatch.setattr(builder_module.CheXMix, "BUILDER_CONFIGS", changed)
    monkeypatch.setattr(builder_module.CheXMix, "builder_configs",
                        {c.name: c for c in changed}, raising=False)
    assert make_builder("sample", cache_dir=tmp_path).cache_dir != same


def test_negative_seed_is_a_one_line_error(tmp_path, capsys):
    assert main(["build", "--config", "sample", "--seed", "-1", "--cache-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "seed" in err[0] and "Traceback" not in err[0]


def test_the_cache_folder_carries_the_rows_version(tmp_path):
    from chexmix_dataset.dataset.builder import ROWS_VERSION

    builder = make_builder("sample", cache_dir=tmp_path)
    assert Path(builder.cache_dir).name == ROWS_VERSION == str(builder.info.version)
    # A cache written by an older row schema (another version folder) is not the one read.
    stale = Path(builder.cache_dir).parent / "0.0.0"
    stale.mkdir(parents=True)
    assert Path(make_builder("sample", cache_dir=tmp_path).cache_dir) != stale
